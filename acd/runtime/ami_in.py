"""AMI events -> facts: what happened to a channel, a bridge, a phone or Asterisk itself.

Pure translation, no state: :func:`translate` names the fact an event carries, in the
runtime's words; the runtime's loop (:mod:`acd.runtime.service`) routes each fact by its type.
Reconcile (:mod:`acd.runtime.restore`) reports what it finds with the same facts.
"""
from __future__ import annotations

from dataclasses import dataclass

from acd.ami import events as ev
from acd.asterisk import dialplan as dp
from acd.runtime.channels import LEG_PREFIX, MONITOR_PREFIX

#: SoftHangupRequest's Cause is Asterisk's soft hangup flag; this one is a shutdown.
SOFTHANGUP_SHUTDOWN = 4
#: OriginateResponse Reason 4: answered.
ORIGINATE_ANSWERED = 4


@dataclass(frozen=True, slots=True)
class ChannelCreated:
    uid: str
    channel: str


@dataclass(frozen=True, slots=True)
class ChannelRinging:
    """The far end rings (Newstate Ringing), or any other state change of a channel."""
    uid: str
    channel: str
    ringing: bool


@dataclass(frozen=True, slots=True)
class OriginateAnswered:
    uid: str
    channel: str


@dataclass(frozen=True, slots=True)
class OriginateFailed:
    uid: str
    reason: int | None


@dataclass(frozen=True, slots=True)
class HangupCause:
    """A hangup was asked for the channel with this Q.850 cause (the Hangup follows)."""
    uid: str
    cause: int


@dataclass(frozen=True, slots=True)
class ChannelHungUp:
    uid: str
    channel: str
    cause: int | None


@dataclass(frozen=True, slots=True)
class AsteriskStopping:
    """Asterisk is shutting down: every channel in it is going."""


@dataclass(frozen=True, slots=True)
class ContactChanged:
    endpoint: str
    uri: str
    status: str


@dataclass(frozen=True, slots=True)
class BridgeEntered:
    uid: str
    bridge: str


@dataclass(frozen=True, slots=True)
class BridgeLeft:
    uid: str
    bridge: str
    channel: str


@dataclass(frozen=True, slots=True)
class ChannelRenamed:
    uid: str
    channel: str


@dataclass(frozen=True, slots=True)
class VoicemailLeft:
    call_id: str
    file: str
    mailbox: str


@dataclass(frozen=True, slots=True)
class KeyPressed:
    """A caller in ``[acd-queue]`` pressed a key (the callback key, perhaps)."""
    uid: str
    digit: str


@dataclass(frozen=True, slots=True)
class CallerWaiting:
    """A caller (re)started waiting in ``[acd-queue]`` (music on hold, in Asterisk)."""
    uid: str


Fact = (KeyPressed | CallerWaiting | ChannelCreated | ChannelRinging | OriginateAnswered | OriginateFailed | HangupCause
        | ChannelHungUp | AsteriskStopping | ContactChanged | BridgeEntered | BridgeLeft
        | ChannelRenamed | VoicemailLeft)

FACT_TYPES = (KeyPressed, CallerWaiting, ChannelCreated, ChannelRinging, OriginateAnswered, OriginateFailed, HangupCause,
              ChannelHungUp, AsteriskStopping, ContactChanged, BridgeEntered, BridgeLeft,
              ChannelRenamed, VoicemailLeft)


#: The creator Asterisk names for a BridgeWait holding bridge (AMI ``BridgeCreator``).
HOLDING_CREATOR = "BridgeWait"

#: The AMI events :func:`translate` reads, and nothing else: the server's AMI session asks
#: Asterisk for these only (``AmiClient(event_filter=...)``); a UserEvent only by its name,
#: a key only from a channel in ``[acd-queue]`` (a waiting caller's: no key of an IVR or a
#: conversation), a state change only to Ringing (an agent's phone rings), no channel's
#: leaving a holding bridge (a move on, or a hangup, which Hangup says). An Originate's
#: outcome only when it failed, or for a supervisor's monitoring channel (whose answer is
#: all there is to know of it); a hangup's cause only for our own legs (their uniqueids
#: start with ``acd-``), and Asterisk's shutdown from any channel. Responses to
#: actions (and the event lists of CoreShowChannels, PJSIPShowContacts...) are not events
#: of the queue and are never filtered.
AMI_EVENTS: tuple[str | tuple[str, ...], ...] = (
    "Newchannel", ("Newstate", "ChannelState", str(ev.CHANNEL_STATE_RINGING)),
    ("OriginateResponse", "Response", "Failure"),
    ("OriginateResponse", "Uniqueid", MONITOR_PREFIX, "starts_with"),
    "Hangup", ("HangupRequest", "Uniqueid", LEG_PREFIX, "starts_with"),
    ("SoftHangupRequest", "Uniqueid", LEG_PREFIX, "starts_with"),
    ("SoftHangupRequest", "Cause", str(SOFTHANGUP_SHUTDOWN)),
    "Shutdown", "ContactStatus", "BridgeEnter", "BridgeLeave", "Rename",
    ("UserEvent", "UserEvent", "AcdVoicemail"), ("UserEvent", "UserEvent", "AcdWaiting"),
    ("DTMFEnd", "Context", dp.QUEUE_CONTEXT),
    ("BridgeLeave", "BridgeCreator", HOLDING_CREATOR, "exclude"))


#: Where a leg we originate waits first (context, exten): its BridgeEnter there says it is up.
LEG_WAITS = frozenset({(dp.AGENT_CONTEXT, "s"), (dp.CUSTOMER_CONTEXT, "s"),
                       (dp.HOLD_CONTEXT, dp.HOLD_TARGET_EXTEN)})


def as_int(x: object, default: int = 0) -> int:
    """An AMI header (or channel variable) as an integer; ``default`` if it is none."""
    try:
        return int(str(x).strip())
    except (TypeError, ValueError):
        return default


def translate(e: ev.AmiEvent) -> Fact | None:
    """The fact an AMI event carries, or None (an event the ACD does not need)."""
    if isinstance(e, ev.DTMFEnd):
        if (e.context == dp.QUEUE_CONTEXT and (e.direction or "").lower() == "received"
                and e.uniqueid):
            return KeyPressed(e.uniqueid, (e.digit or "")[:1])
        return None
    if isinstance(e, ev.Newstate):
        return ChannelRinging(e.uniqueid or "", e.channel or "",
                              e.channel_state == ev.CHANNEL_STATE_RINGING)
    if isinstance(e, ev.Newchannel):
        return ChannelCreated(e.uniqueid or "", e.channel or "")
    if isinstance(e, ev.OriginateResponse):
        if (e.response or "").lower() == "success" and e.reason == ORIGINATE_ANSWERED:
            # Answered, but its dialplan may not have started yet: the leg's entering its
            # holding bridge (below) says it is up and may be bridged. A supervisor's
            # monitoring channel has no holding bridge: answered is all there is to know.
            if (e.uniqueid or "").startswith(MONITOR_PREFIX):
                return OriginateAnswered(e.uniqueid or "", e.channel or "")
            return None
        return OriginateFailed(e.uniqueid or "", e.reason)
    if isinstance(e, ev.Hangup):
        return ChannelHungUp(e.uniqueid or "", e.channel or "", e.cause)
    if (e.name == "SoftHangupRequest"
            and as_int(e.fields.get("Cause"), -1) == SOFTHANGUP_SHUTDOWN) or e.name == "Shutdown":
        return AsteriskStopping()
    if e.name in ("HangupRequest", "SoftHangupRequest"):
        cause = as_int(e.fields.get("Cause"), -1)
        return HangupCause(str(e.fields.get("Uniqueid", "")), cause) if cause > 0 else None
    if isinstance(e, ev.ContactStatus):
        return ContactChanged(e.endpoint_name or e.aor or "", e.uri or "", e.contact_status or "")
    if isinstance(e, ev.BridgeEnter):
        if e.bridge_creator == HOLDING_CREATOR:
            # A channel waits for the ACD in a holding bridge of its own: no conversation. A
            # leg we originated that enters its first one is up and may be bridged.
            if e.uniqueid and (e.context, e.exten) in LEG_WAITS:
                return OriginateAnswered(e.uniqueid, e.channel or "")
            return None
        return BridgeEntered(e.uniqueid or "", e.bridge_uniqueid or "")
    if isinstance(e, ev.BridgeLeave):
        if e.bridge_creator == HOLDING_CREATOR:
            return None
        return BridgeLeft(e.uniqueid or "", e.bridge_uniqueid or "", e.channel or "")
    if isinstance(e, ev.Rename):
        name = e.new_name or ""
        if not name or "<ZOMBIE>" in name or name.startswith("Surrogate/"):
            return None
        return ChannelRenamed(e.uniqueid or "", name)
    if isinstance(e, ev.UserEvent) and e.user_event == "AcdWaiting":
        call_id = str(e.headers.get("Call", "") or e.uniqueid or "")
        return CallerWaiting(call_id) if call_id else None
    if isinstance(e, ev.UserEvent) and e.user_event == "AcdVoicemail":
        call_id = str(e.headers.get("Call", "") or e.uniqueid or "")
        if call_id:
            return VoicemailLeft(call_id, str(e.headers.get("File", "")),
                                 str(e.headers.get("Mailbox", "")))
    return None


__all__ = ["translate", "as_int", "AMI_EVENTS", "Fact", "FACT_TYPES", "ChannelCreated", "ChannelRinging",
           "OriginateAnswered", "OriginateFailed", "HangupCause", "ChannelHungUp",
           "AsteriskStopping", "ContactChanged", "BridgeEntered", "BridgeLeft",
           "ChannelRenamed", "VoicemailLeft", "KeyPressed", "CallerWaiting", "SOFTHANGUP_SHUTDOWN"]
