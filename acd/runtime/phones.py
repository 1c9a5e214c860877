"""The agents' phones as Asterisk shows them: their contacts (registrations) and the channels
each phone has up. Pure: each method returns what changed, for the core to hear.

The facts derived here (a phone is reachable: one of its contacts is; a phone is in use: it
has a channel up) are fed to the core, which owns them from there on
(:meth:`acd.core.Acd.phone_reachable`); nothing else keeps a copy.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

#: ContactStatus values (and PJSIPShowContacts' Status) that mean the phone can ring.
REACHABLE = frozenset({"reachable", "nonqualified", "unqualified", "created", "updated",
                       "unknown"})   # "Unqualified": the AMI docs' name for NonQualified
#: Every ContactStatus Asterisk sends (res_pjsip); any other is ignored (and logged).
CONTACT_STATUSES = REACHABLE | {"unreachable", "removed"}

PhoneEvent = tuple[str, str, bool]     # (endpoint, channel uniqueid, up)


class Phones:
    """Contacts and channels in use, per agent endpoint."""

    def __init__(self, endpoints: Mapping[str, str]) -> None:
        self.endpoints = dict(endpoints)                          # agent id -> endpoint
        self.agent_of = {ep: a for a, ep in self.endpoints.items()}
        self.contacts: dict[str, dict[str, bool]] = {}   # endpoint -> contact uri -> reachable
        self.calls: dict[str, set[str]] = {}              # endpoint -> its channels up
        self._phone_of: dict[str, str] = {}               # and back: Uniqueid -> endpoint
        self._logs: list[list[PhoneEvent]] = []           # seen while a channel list is read

    def set_endpoints(self, endpoints: Mapping[str, str]) -> None:
        """Agents created or removed while running: their phones are watched, or no more."""
        self.endpoints = dict(endpoints)
        self.agent_of = {ep: a for a, ep in self.endpoints.items()}
        for ep in [e for e in self.contacts if e not in self.agent_of]:
            del self.contacts[ep]

    # ---- contacts
    def contact_status(self, endpoint: str, uri: str, status: str) -> bool | None:
        """A ContactStatus event: the endpoint's reachability from its contacts now, or
        None if the endpoint is no agent's. ValueError: the status or the contact is not
        Asterisk's (nothing changed)."""
        if endpoint not in self.agent_of:
            return None
        s = status.strip().lower()
        if s not in CONTACT_STATUSES or not uri:
            raise ValueError(s)
        contacts = self.contacts.setdefault(endpoint, {})
        if s == "removed":
            contacts.pop(uri, None)
        else:
            contacts[uri] = s in REACHABLE
        return self.reachable(endpoint)

    def reachable(self, endpoint: str) -> bool:
        return any(self.contacts.get(endpoint, {}).values())

    def load_contacts(self, contacts: Iterable[Mapping[str, Any]],
                      proven: bool = False) -> dict[str, bool]:
        """The agents' phones from PJSIPShowContacts: every agent endpoint -> reachable.
        ``proven``: right after Asterisk came back from a crash, count only contacts a
        qualify answered (a registration younger than astdb's next commit is lost, and the
        one read back may be an older address of the phone)."""
        self.contacts = {}
        for c in contacts:
            ep = str(c.get("Endpoint") or c.get("AOR") or "")
            if ep in self.agent_of:
                status = str(c.get("Status", "")).lower()
                self.contacts.setdefault(ep, {})[str(c.get("Uri", ""))] = (
                    status == "reachable" if proven else status in REACHABLE)
        return {ep: self.reachable(ep) for ep in self.agent_of}

    def forget_contacts(self) -> None:
        """Asterisk is going away: no contact counts until it is read again."""
        self.contacts = {}

    # ---- channels in use
    def endpoint_of(self, channel: str) -> str | None:
        """The agent endpoint a channel belongs to (``PJSIP/1001-0000002a``), or None."""
        if not channel.startswith("PJSIP/"):
            return None
        ep = channel[6:].rpartition("-")[0]
        return ep if ep in self.agent_of else None

    def channel(self, channel: str, uid: str, up: bool) -> tuple[str, bool] | None:
        """A channel came (``up``) or went. If it is an agent phone's and the phone's use
        changed: (endpoint, in use now). A hangup finds its phone by the channel's Uniqueid,
        whatever the channel is named by then."""
        if not uid:
            return None
        ep = self._phone_of.get(uid) if not up else None
        ep = ep or self.endpoint_of(channel)
        if ep is None:
            return None
        for seen in self._logs:
            seen.append((ep, uid, up))
        calls = self.calls.setdefault(ep, set())
        before = bool(calls)
        if up:
            calls.add(uid)
            self._phone_of[uid] = ep
        else:
            calls.discard(uid)
            self._phone_of.pop(uid, None)
        return (ep, bool(calls)) if bool(calls) != before else None

    def watch(self) -> list[PhoneEvent]:
        """Start recording the phones' channel events (while CoreShowChannels is read)."""
        seen: list[PhoneEvent] = []
        self._logs.append(seen)
        return seen

    def unwatch(self, seen: list[PhoneEvent]) -> None:
        self._logs.remove(seen)

    def take_channels(self, channels: Iterable[Mapping[str, Any]],
                      since: Sequence[PhoneEvent] = ()) -> list[tuple[str, bool]]:
        """Take the phones' channels from CoreShowChannels, then what was seen while it was
        read (``since``: a Hangup that overtook the list is not undone by it). Returns each
        (endpoint, in use) whose use changed."""
        now: dict[str, set[str]] = {}
        for c in channels:
            ep = self.endpoint_of(str(c.get("Channel") or ""))
            if ep is not None and c.get("Uniqueid"):
                now.setdefault(ep, set()).add(str(c["Uniqueid"]))
        for ep, uid, up in since:
            if up:
                now.setdefault(ep, set()).add(uid)
            else:
                now.get(ep, set()).discard(uid)
        self._phone_of = {uid: ep for ep, uids in now.items() for uid in uids}
        changed = []
        for ep in set(now) | set(self.calls):
            was = bool(self.calls.get(ep))
            self.calls[ep] = now.get(ep, set())
            if was != bool(now.get(ep)):
                changed.append((ep, bool(now.get(ep))))
        return changed

    def busy_agents(self) -> list[str]:
        """Agents whose phone has a channel up."""
        return [self.agent_of[ep] for ep, calls in self.calls.items() if calls]


__all__ = ["Phones", "REACHABLE", "CONTACT_STATUSES", "PhoneEvent"]
