"""The ACD runtime: the adapter between the pure core (:mod:`acd.core`) and Asterisk.

Start with :mod:`acd.runtime.service` (the public API and the one loop, with its two tables);
the parts are leaves it routes between:

==================  ======================================================================
module              its one job
==================  ======================================================================
service.py          the public API; the loop: fact -> core -> decisions -> handler
ami_in.py           AMI events -> facts (pure)
tracking.py         what the facts mean for our legs, callers and phones -> core events
channels.py         ledgers: our legs, the callers, the bridges (pure)
phones.py           the agents' phones: contacts, channels in use (pure)
telephony.py        the core's telephony decisions, carried out over AMI
ami_out.py          AMI actions, one ordered chain per call
effects.py          timers, the pages' pushes, the records
queue.py            waiting callers: registered by the queue script, held by Asterisk
overload.py         how late the event loop runs; new callers turned away while overloaded
plan.py             restore planning (pure): a reading of Asterisk and the store -> a plan
restore.py          reads Asterisk and the store, applies the plan; reconcile -> facts
==================  ======================================================================
"""
from acd.asterisk.dialplan import CUSTOMER_DIAL
from acd.core.numbers import NUMBER
from acd.runtime.plan import ENDED_WHILE_DOWN
from acd.runtime.service import AcdRuntime

__all__ = ["AcdRuntime", "CUSTOMER_DIAL", "NUMBER", "ENDED_WHILE_DOWN"]
