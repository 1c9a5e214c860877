"""The softphone harness lives in the package (``acd.tools.softphone``) so `acd phone` and load runs
use the same code; tests import it from here as before."""
from acd.tools.softphone import ROOT, WAIT, PhoneError, SoftPhone, write_tone  # noqa: F401
