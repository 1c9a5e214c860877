"""The satisfaction survey: the caller rates the call 1 to 5 by key.

:func:`collect_rating` is the reusable part (the YAML flows' ``survey`` node calls it too):
it plays the prompt, takes one key, stores every key in the call's key trail (``node``), and
stores a rating of 1 to 5 with the call; any other key (or none) is tried again, a few times.

:class:`SurveyScript` is the FastAGI route ``survey``: the dialplan's ``[acd-survey]`` runs it
after the agent transferred the caller to the survey, or once the conversation is over when
the agent invited a rating.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

import structlog

from agi.protocol import AgiCommandError, AgiError, AgiHangup

#: "Thank you. Press 1, 2, 3, 4 and 5." (the stock English sounds have no "to")
PROMPT = "auth-thankyou&vm-press&digits/1&digits/2&digits/3&digits/4&vm-and&digits/5"
INVALID = "pm-invalid-option"
THANKS = "auth-thankyou&vm-goodbye"
KEYS = "0123456789*#"
ATTEMPTS = 3
TIMEOUT_MS = 6000


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _files(prompt: str | Sequence[str]) -> list[str]:
    parts = prompt.split("&") if isinstance(prompt, str) else list(prompt)
    return [p for p in (x.strip() for x in parts) if p]


async def play(session: Any, prompt: str | Sequence[str], escape: str = "") -> str | None:
    """Play the sound files one after the other; the key that cut them short, or None. A
    file Asterisk cannot play is logged (``survey.prompt_failed``) and skipped; a hangup
    raises :class:`~agi.protocol.AgiHangup`."""
    for name in _files(prompt):
        try:
            key = await session.stream_file(name, escape)
        except AgiCommandError:
            if await session.channel_gone():
                raise AgiHangup("the caller hung up") from None
            session.log.warning("survey.prompt_failed", prompt=name)
            continue
        if key:
            return key
    return None


async def collect_rating(session: Any, store: Any, uniqueid: str, *,
                         prompt: str | Sequence[str] = PROMPT, node: str = "survey",
                         invalid_prompt: str | Sequence[str] = INVALID,
                         attempts: int = ATTEMPTS, timeout_ms: int = TIMEOUT_MS,
                         clock: Callable[[], datetime] = utcnow) -> int | None:
    """Ask for a rating of 1 to 5 by key; store it with the call and return it. None: no
    valid key after ``attempts`` tries. Every key pressed goes into the key trail (``node``).

    ``prompt``: sound files, joined with ``&`` or as a list (a key cuts them short).
    Raises :class:`~agi.protocol.AgiError` if the caller hangs up (or Asterisk fails), and
    ``LookupError`` if the call has no record."""
    log = getattr(session, "log", None) or structlog.get_logger(component="agi")
    early: str | None = None          # a key pressed during the "invalid" prompt: the answer
    for attempt in range(1, max(1, attempts) + 1):
        key = early or await play(session, prompt, KEYS)
        early = None
        if not key:
            key = await session.wait_for_digit(int(timeout_ms))
        if not key:
            log.info("survey.no_key", call=uniqueid, node=node, attempt=attempt)
            continue
        await store.key_pressed(uniqueid, node=node, keys=key, at=clock())
        if key in "12345":
            rating = int(key)
            await store.call_rating(uniqueid, rating, at=clock())
            log.info("survey.rated", call=uniqueid, node=node, rating=rating)
            return rating
        log.info("survey.invalid_key", call=uniqueid, node=node, attempt=attempt)
        if attempt < attempts:
            early = await play(session, invalid_prompt, KEYS)
    return None


class SurveyScript:
    """The FastAGI route ``survey``."""

    def __init__(self, store: Any, clock: Callable[[], datetime] = utcnow, *,
                 prompt: str | Sequence[str] = PROMPT) -> None:
        self.store = store
        self.clock = clock
        self.prompt = prompt

    async def __call__(self, session: Any) -> None:
        uid = session.request.uniqueid
        log = session.log
        try:
            if await self.store.get_call(uid) is None:
                log.warning("survey.unknown_call", call=uid)
                await play(session, "vm-goodbye")
                await session.hangup()
                return
            await self.store.call_event(uid, "survey_started", at=self.clock())
            rating = await collect_rating(session, self.store, uid, prompt=self.prompt,
                                          clock=self.clock)
            await self.store.call_event(uid, "survey_ended", at=self.clock(),
                                        detail={"rating": rating})
            await play(session, THANKS)
            await session.hangup()
        except AgiHangup:
            log.info("survey.caller_left", call=uid)
        except AgiError as e:
            if await session.channel_gone():
                log.info("survey.caller_left", call=uid)
            else:
                log.warning("survey.command_failed", call=uid, error=str(e))


__all__ = ["collect_rating", "SurveyScript", "play", "PROMPT"]
