"""Typed AMI events: frozen dataclasses and ``parse_event``. Pure: no I/O, no logging.

``parse_event(fields)`` turns the headers of one AMI event into the matching dataclass
(``Hangup``, ``DialEnd``...) or a ``GenericEvent`` for names we do not model. It never
raises: missing headers become ``None``, integers that do not parse become ``None``,
header names are matched case-insensitively, and a header repeated on the wire (a list
of values) gives its first value to the typed attribute. Every event keeps the raw
headers, unchanged, as ``.fields`` (read-only), and has ``.name``.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

# Asterisk channel states (ChannelState header, enum ast_channel_state).
CHANNEL_STATE_DOWN = 0
CHANNEL_STATE_RING = 4      # inbound channel, not yet answered
CHANNEL_STATE_RINGING = 5   # remote end is ringing
CHANNEL_STATE_UP = 6
CHANNEL_STATE_BUSY = 7

def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


_INT_RE = re.compile(r"[+-]?[0-9]+")


def _s(header: str) -> Any:
    """A str attribute filled from ``header``."""
    return field(default=None, metadata={"header": header, "int": False})


def _i(header: str) -> Any:
    """An int attribute filled from ``header`` (None when missing or not an integer)."""
    return field(default=None, metadata={"header": header, "int": True})


@dataclass(frozen=True, kw_only=True)
class AmiEvent:
    name: str = ""
    # Raw headers as received (values are str, or a list of str for a repeated header).
    fields: Mapping[str, Any] = field(default_factory=_empty, repr=False, hash=False)


@dataclass(frozen=True, kw_only=True)
class GenericEvent(AmiEvent):
    """Any event without a dedicated class; use ``.name`` and ``.fields``."""


@dataclass(frozen=True, kw_only=True)
class ChannelEvent(AmiEvent):
    """Base of events that carry an Asterisk channel snapshot."""
    channel: str | None = _s("Channel")
    uniqueid: str | None = _s("Uniqueid")
    linkedid: str | None = _s("Linkedid")
    caller_id_num: str | None = _s("CallerIDNum")
    caller_id_name: str | None = _s("CallerIDName")
    context: str | None = _s("Context")
    exten: str | None = _s("Exten")
    priority: int | None = _i("Priority")
    channel_state: int | None = _i("ChannelState")


@dataclass(frozen=True, kw_only=True)
class Newchannel(ChannelEvent):
    name: str = "Newchannel"


@dataclass(frozen=True, kw_only=True)
class Newstate(ChannelEvent):
    name: str = "Newstate"


@dataclass(frozen=True, kw_only=True)
class Hangup(ChannelEvent):
    name: str = "Hangup"
    cause: int | None = _i("Cause")
    cause_txt: str | None = _s("Cause-txt")


@dataclass(frozen=True, kw_only=True)
class DialBegin(ChannelEvent):
    """Caller side in the channel fields (absent when Originate dials), callee in dest_*."""
    name: str = "DialBegin"
    dest_channel: str | None = _s("DestChannel")
    dest_uniqueid: str | None = _s("DestUniqueid")
    dest_caller_id_num: str | None = _s("DestCallerIDNum")
    dial_string: str | None = _s("DialString")


@dataclass(frozen=True, kw_only=True)
class DialEnd(ChannelEvent):
    name: str = "DialEnd"
    dest_channel: str | None = _s("DestChannel")
    dest_uniqueid: str | None = _s("DestUniqueid")
    dial_status: str | None = _s("DialStatus")   # ANSWER, BUSY, NOANSWER, CANCEL, CHANUNAVAIL...
    forward: str | None = _s("Forward")


@dataclass(frozen=True, kw_only=True)
class BridgeEnter(ChannelEvent):
    name: str = "BridgeEnter"
    bridge_uniqueid: str | None = _s("BridgeUniqueid")
    bridge_type: str | None = _s("BridgeType")
    bridge_creator: str | None = _s("BridgeCreator")     # BridgeWait: a holding bridge
    bridge_num_channels: int | None = _i("BridgeNumChannels")
    swap_uniqueid: str | None = _s("SwapUniqueid")


@dataclass(frozen=True, kw_only=True)
class BridgeLeave(ChannelEvent):
    name: str = "BridgeLeave"
    bridge_uniqueid: str | None = _s("BridgeUniqueid")
    bridge_type: str | None = _s("BridgeType")
    bridge_creator: str | None = _s("BridgeCreator")
    bridge_num_channels: int | None = _i("BridgeNumChannels")


@dataclass(frozen=True, kw_only=True)
class ContactStatus(AmiEvent):
    name: str = "ContactStatus"
    uri: str | None = _s("URI")
    contact_status: str | None = _s("ContactStatus")   # Reachable, Unreachable, Created, Removed...
    aor: str | None = _s("AOR")
    endpoint_name: str | None = _s("EndpointName")
    roundtrip_usec: int | None = _i("RoundtripUsec")


@dataclass(frozen=True, kw_only=True)
class DeviceStateChange(AmiEvent):
    name: str = "DeviceStateChange"
    device: str | None = _s("Device")
    state: str | None = _s("State")   # NOT_INUSE, INUSE, RINGING, UNAVAILABLE...


@dataclass(frozen=True, kw_only=True)
class OriginateResponse(ChannelEvent):
    name: str = "OriginateResponse"
    action_id: str | None = _s("ActionID")
    response: str | None = _s("Response")   # Success / Failure
    reason: int | None = _i("Reason")       # 4 answered, 5 busy, 3 no answer, 8 congestion, 0 failed


@dataclass(frozen=True, kw_only=True)
class MusicOnHoldStart(ChannelEvent):
    name: str = "MusicOnHoldStart"
    moh_class: str | None = _s("Class")


@dataclass(frozen=True, kw_only=True)
class MusicOnHoldStop(ChannelEvent):
    name: str = "MusicOnHoldStop"


@dataclass(frozen=True, kw_only=True)
class DTMFBegin(ChannelEvent):
    name: str = "DTMFBegin"
    digit: str | None = _s("Digit")
    direction: str | None = _s("Direction")   # Received / Sent


@dataclass(frozen=True, kw_only=True)
class DTMFEnd(ChannelEvent):
    name: str = "DTMFEnd"
    digit: str | None = _s("Digit")
    direction: str | None = _s("Direction")
    duration_ms: int | None = _i("DurationMs")


@dataclass(frozen=True, kw_only=True)
class VarSet(ChannelEvent):
    name: str = "VarSet"
    variable: str | None = _s("Variable")
    value: str | None = _s("Value")


@dataclass(frozen=True, kw_only=True)
class UserEvent(ChannelEvent):
    """``UserEvent(name,Key: value,...)`` from the dialplan: ``headers`` holds the custom
    headers (everything but Event, Privilege, UserEvent and the channel snapshot)."""
    name: str = "UserEvent"
    user_event: str | None = _s("UserEvent")
    headers: Mapping[str, Any] = field(default_factory=_empty, hash=False)


@dataclass(frozen=True, kw_only=True)
class FullyBooted(AmiEvent):
    name: str = "FullyBooted"
    status: str | None = _s("Status")


@dataclass(frozen=True, kw_only=True)
class Rename(ChannelEvent):
    """``channel`` is the old name, ``new_name`` the new one."""
    name: str = "Rename"
    new_name: str | None = _s("Newname")


_CLASSES: dict[str, type[AmiEvent]] = {
    cls.__name__.lower(): cls
    for cls in (Newchannel, Newstate, Hangup, DialBegin, DialEnd, BridgeEnter, BridgeLeave,
                ContactStatus, DeviceStateChange, OriginateResponse, MusicOnHoldStart,
                MusicOnHoldStop, DTMFBegin, DTMFEnd, VarSet, UserEvent, FullyBooted, Rename)
}

# Headers that belong to the channel snapshot (not a UserEvent's own headers).
_SNAPSHOT_HEADERS = frozenset(h.lower() for h in (
    "Event", "Privilege", "UserEvent", "Channel", "ChannelState", "ChannelStateDesc",
    "CallerIDNum", "CallerIDName", "ConnectedLineNum", "ConnectedLineName", "Language",
    "AccountCode", "Context", "Exten", "Priority", "Uniqueid", "Linkedid", "SystemName"))


def _text(value: Any) -> str | None:
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    text = _text(value)
    if text is None:
        return None
    text = text.strip()
    if not _INT_RE.fullmatch(text):
        return None
    try:
        return int(text)
    except ValueError:  # more digits than Python converts
        return None


#: Per event class: (attribute, header, the header in lower case, an int?), read once.
_SPECS: dict[type[AmiEvent], tuple[tuple[str, str, str, bool], ...]] = {}


def _spec(cls: type[AmiEvent]) -> tuple[tuple[str, str, str, bool], ...]:
    spec = _SPECS.get(cls)
    if spec is None:
        spec = _SPECS[cls] = tuple(
            (f.name, f.metadata["header"], f.metadata["header"].lower(), f.metadata["int"])
            for f in dataclasses.fields(cls) if f.metadata.get("header") is not None)
    return spec


def parse_event(fields: Mapping[str, Any]) -> AmiEvent:
    """Turn the headers of one AMI event into a typed event. Never raises.

    Asterisk writes header names in one case: each is looked up as written first; the
    case-insensitive map is made only for an event where a lookup misses and whose ``Event``
    header is not spelt as Asterisk spells it (in one that is, a header not found is not
    there)."""
    try:
        raw = dict(fields)
    except Exception:
        raw = {}
    lower: dict[str, Any] | None = None
    as_asterisk_writes = "Event" in raw

    def get(header: str, header_lower: str) -> Any:
        nonlocal lower
        value = raw.get(header)
        if value is not None or as_asterisk_writes:
            return value
        if lower is None:
            lower = {}
            for key, v in raw.items():
                if isinstance(key, str):
                    lower.setdefault(key.lower(), v)
        return lower.get(header_lower)

    frozen_fields = MappingProxyType(raw)
    name = (_text(get("Event", "event")) or "").strip()
    cls = _CLASSES.get(name.lower())
    if cls is None:
        return GenericEvent(name=name, fields=frozen_fields)
    kwargs: dict[str, Any] = {}
    if as_asterisk_writes:          # every event Asterisk sends: headers looked up as written
        for attr, header, _lower, is_int in _spec(cls):
            value = raw.get(header)
            if value.__class__ is not str:
                value = _text(value)
            kwargs[attr] = _int(value) if is_int else value
    else:
        for attr, header, header_lower, is_int in _spec(cls):
            value = get(header, header_lower)
            kwargs[attr] = _int(value) if is_int else _text(value)
    if cls is UserEvent:
        kwargs["headers"] = MappingProxyType({
            k: v for k, v in raw.items()
            if isinstance(k, str) and k.lower() not in _SNAPSHOT_HEADERS})
    return cls(fields=frozen_fields, **kwargs)
