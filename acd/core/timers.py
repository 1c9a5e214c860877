"""The core's timer keys, in one place.

A key is ``"<kind>:<id>"``: the kind says what is due, the id is a call id (or an agent id
for ``wrapup``). The core asks for timers with :class:`~acd.core.StartTimer` and forgets them
with :class:`~acd.core.CancelTimer`; the adapter hands the key back to ``timer_fired``.
Adapters may read a key's kind (e.g. to know an announcement is due) but never build one.
"""
from __future__ import annotations

T_RING = "ring"            # a call rings an agent: no answer when it fires
T_WRAPUP = "wrapup"        # an agent's wrap-up ends (id: the agent)
T_ANNOUNCE = "announce"    # tell a waiting caller their position / wait
T_WIDEN = "widen"          # the next overflow (widening) step of a call
T_MAXWAIT = "maxwait"      # a call's maximum wait
T_FAMILIAR = "familiar"    # a call stops waiting for its familiar agent
T_RETRY = "retry"          # a call may be offered again to agents who did not answer it
T_CB_RETRY = "cbretry"     # a callback's gap between attempts is over
T_CB_EXPIRE = "cbexpire"   # a callback expires
T_XFER = "xfer"            # a transfer or consult target rings too long
T_OBRING = "obring"        # the agent's own phone rings too long for their outbound call
T_PHONE = "phone"          # an agent's phone, unreachable mid-call, is lost (id: the agent)

#: Timers of a caller waiting in a queue (cancelled when answered or moved to another group).
QUEUE_TIMERS = (T_ANNOUNCE, T_WIDEN, T_MAXWAIT, T_FAMILIAR, T_RETRY)
#: Every timer of a call in the ACD (cancelled when it ends).
CALL_TIMERS = (T_RING, *QUEUE_TIMERS, T_CB_RETRY, T_CB_EXPIRE)
#: Timers of call control (transfers, consults, outbound calls).
CONTROL_TIMERS = (T_XFER, T_OBRING)
#: Timers of an agent (the id is the agent's).
AGENT_TIMERS = (T_WRAPUP, T_PHONE)


def timer_key(kind: str, ident: str) -> str:
    """The key of timer ``kind`` for the call (or agent) ``ident``."""
    return f"{kind}:{ident}"


def split_key(key: str) -> tuple[str, str]:
    """``(kind, id)`` of a timer key."""
    kind, _, ident = key.partition(":")
    return kind, ident


__all__ = [
    "T_RING", "T_WRAPUP", "T_ANNOUNCE", "T_WIDEN", "T_MAXWAIT", "T_FAMILIAR", "T_RETRY",
    "T_CB_RETRY", "T_CB_EXPIRE", "T_XFER", "T_OBRING", "T_PHONE", "QUEUE_TIMERS", "CALL_TIMERS",
    "CONTROL_TIMERS", "AGENT_TIMERS", "timer_key", "split_key",
]
