"""A finished call's record and the agents' state rows as report facts: plain Python, no I/O.

History reports do not read whole timelines: they add up small fact rows kept beside the
records (:mod:`acd.reports.indexer` writes them, :mod:`acd.reports.history` adds them up).
All times are UNIX seconds; a fact belongs to the 15-minute UTC bucket it started in
(:data:`BUCKET`). Every time zone in use today is offset from UTC by a whole number of
quarter hours, so 15-minute UTC buckets add up exactly to any zone's 15, 30 or 60-minute
intervals, days, weeks and months.

The facts:

* :class:`Offer`: one entry of a call into a skill group's queue (a call that overflows or
  is transferred to a group is offered there too, as the wall board counts). Its outcome is
  the first thing that ended its wait: ``answered`` (by ``agent`` after ``wait`` seconds),
  ``abandoned`` (the caller hung up waiting or ringing), ``overflow`` (queued in another
  group), ``sent`` (to a destination: maximum wait, queue full, closed...), ``callback``
  (the caller hung up to be called back and was not), or ``other`` (the call ended another
  way, e.g. while our server was down). Handle time (talk, hold, wrap-up) is the answering
  agent's leg. The whole offer belongs to the bucket it was offered in.
* :class:`LegFact`: one agent's part of a call (answer, callback, transfer, consult,
  outbound), with the transfers and consults that agent gave during it.
* :func:`state_spans`: an agent's time in a state (and break reason) cut at bucket edges.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

BUCKET = 15 * 60

OUTCOMES = ("answered", "abandoned", "overflow", "sent", "callback", "other")

#: Leg roles whose agent took the caller from a queue (the offer's answering leg).
_ANSWER_ROLES = ("answer", "callback", "transfer", "consult")
#: A call's end reason -> the outcome of an offer still waiting when it ended.
_END_OUTCOME = {"abandoned": "abandoned", "overflow": "overflow", "closed": "sent",
                "no_agents": "sent", "callback_expired": "callback",
                "callback_failed": "callback"}


def bucket_of(at: float) -> int:
    """The start of the 15-minute UTC bucket ``at`` is in."""
    return int(at // BUCKET) * BUCKET


@dataclass(frozen=True, slots=True)
class Offer:
    seq: int
    bucket: int
    group: str
    number: str                 # the number the caller dialled
    offered_at: float
    outcome: str
    wait: float                 # to the answer, or until the wait ended another way
    agent: str | None           # who answered
    within_sl: bool             # answered within the group's service level
    talk: float
    hold: float
    wrapup: float
    rating: int | None
    verified: bool
    callback: bool              # the caller asked to be called back during this offer


@dataclass(frozen=True, slots=True)
class LegFact:
    seq: int
    bucket: int
    agent: str
    group: str                  # the group the caller came through ("" when none)
    role: str
    talk: float
    hold: float
    wrapup: float
    reason: str
    transfers_given: int
    consults_given: int


@dataclass(frozen=True, slots=True)
class CallInput:
    """What the facts of one call are made from (times in UNIX seconds)."""
    did: str
    end_reason: str | None
    rating: int | None
    verification: str | None
    events: Sequence[tuple[str, float, Mapping[str, Any]]]     # (kind, at, detail), in order
    legs: Sequence[Mapping[str, Any]]    # agent_id, role, started_at, ended_at, talk_seconds,
    #                                      hold_seconds, wrapup_seconds, reason (times: UNIX s)


def _group(detail: Mapping[str, Any]) -> str | None:
    g = detail.get("group")
    return g if isinstance(g, str) and g else None


def _walk(call: CallInput) -> tuple[list[dict[str, Any]], dict[str, list[tuple[float, str]]]]:
    """The call's timeline read once: its offers with their outcomes, and the transfers and
    consults each agent gave (agent -> [(at, "transfer" | "consult")])."""
    offers: list[dict[str, Any]] = []
    open_offer: dict[str, Any] | None = None
    given: dict[str, list[tuple[float, str]]] = {}      # agent -> [(at, transfer|consult)]

    def close(outcome: str, at: float) -> None:
        nonlocal open_offer
        if open_offer is not None:
            open_offer["outcome"] = outcome
            open_offer["wait"] = max(0.0, at - open_offer["offered_at"])
            open_offer = None

    for kind, at, detail in call.events:
        if kind == "queued":
            group = _group(detail)
            if group is None:
                continue
            close("overflow", at)
            open_offer = {"group": group, "offered_at": at, "outcome": None, "wait": 0.0,
                          "agent": None, "callback": False}
            offers.append(open_offer)
        elif kind == "answered" and open_offer is not None:
            agent = detail.get("agent")
            offer = open_offer
            close("answered", at)
            offer["agent"] = agent if isinstance(agent, str) else None
        elif kind == "callback_requested" and open_offer is not None:
            open_offer["callback"] = True
        elif kind == "sent" and open_offer is not None:
            close("sent", at)
        elif kind == "ended":
            reason = detail.get("reason") or call.end_reason or ""
            close(_END_OUTCOME.get(reason, "other"), at)
        elif kind in ("transfer_completed", "consult_completed", "consult_answered"):
            agent = detail.get("agent")
            if isinstance(agent, str):
                what = "consult" if kind == "consult_answered" else "transfer"
                given.setdefault(agent, []).append((at, what))
    if open_offer is not None:          # no end on the timeline: a record cut short
        close(_END_OUTCOME.get(call.end_reason or "", "other"),
              call.events[-1][1] if call.events else open_offer["offered_at"])
    return offers, given


def call_facts(call: CallInput, sl_seconds: Mapping[str, float],
               default_sl: float = 20.0) -> tuple[list[Offer], list[LegFact]]:
    """The offers and legs of one call whose record is complete (ended)."""
    offers, given = _walk(call)
    legs = sorted(call.legs, key=lambda g: g["started_at"])
    used: set[int] = set()
    rated = call.rating if call.rating is not None and 1 <= call.rating <= 5 else None
    out_offers: list[Offer] = []
    answered_offers = [o for o in offers if o["outcome"] == "answered"]
    for seq, o in enumerate(offers):
        talk = hold = wrapup = 0.0
        if o["outcome"] == "answered":
            answer_at = o["offered_at"] + o["wait"]
            for i, leg in enumerate(legs):
                if (i not in used and leg["agent_id"] == o["agent"]
                        and leg["role"] in _ANSWER_ROLES
                        and leg["started_at"] >= answer_at - 1.0):
                    used.add(i)
                    talk, hold = float(leg["talk_seconds"]), float(leg["hold_seconds"])
                    wrapup = float(leg.get("wrapup_seconds") or 0.0)
                    break
        # a rating is the call's: credited to its last answered offer
        rating = rated if answered_offers and o is answered_offers[-1] else None
        sl = sl_seconds.get(o["group"], default_sl)
        out_offers.append(Offer(
            seq=seq, bucket=bucket_of(o["offered_at"]), group=o["group"], number=call.did,
            offered_at=o["offered_at"], outcome=o["outcome"], wait=round(o["wait"], 3),
            agent=o["agent"], within_sl=o["outcome"] == "answered" and o["wait"] <= sl,
            talk=round(talk, 3), hold=round(hold, 3), wrapup=round(wrapup, 3), rating=rating,
            verified=call.verification == "verified", callback=o["callback"]))

    out_legs: list[LegFact] = []
    for seq, leg in enumerate(legs):
        start, end = leg["started_at"], leg["ended_at"]
        mine = [w for at, w in given.get(leg["agent_id"], ()) if start - 1.0 <= at <= end + 1.0]
        group = ""
        for o in offers:
            if o["agent"] == leg["agent_id"] and o["offered_at"] <= start + 1.0:
                group = o["group"]
        out_legs.append(LegFact(
            seq=seq, bucket=bucket_of(start), agent=leg["agent_id"], group=group,
            role=leg["role"], talk=round(float(leg["talk_seconds"]), 3),
            hold=round(float(leg["hold_seconds"]), 3),
            wrapup=round(float(leg.get("wrapup_seconds") or 0.0), 3), reason=leg["reason"],
            transfers_given=mine.count("transfer"), consults_given=mine.count("consult")))
    return out_offers, out_legs


def state_spans(state: str, reason: str, start: float,
                end: float) -> Iterable[tuple[int, str, str, float]]:
    """(bucket, state, reason, seconds) for time spent in ``state`` from ``start`` to
    ``end``, cut at bucket edges. Only break-like states keep their reason."""
    reason = reason if state in ("break", "meeting", "busy") else ""
    t = start
    while t < end:
        b = bucket_of(t)
        stop = min(end, b + BUCKET)
        yield b, state, reason, stop - t
        t = stop


__all__ = ["BUCKET", "OUTCOMES", "Offer", "LegFact", "CallInput", "bucket_of", "call_facts",
           "state_spans"]
