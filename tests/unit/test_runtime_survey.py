"""The satisfaction survey (agi/survey.py) on a scripted FastAGI session and a real store:
ratings, retries on keys that are no rating, the key trail, missing prompts, hangups."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
import structlog

from acd.store.db import Store, migrate_async
from agi.protocol import AgiCommandError, AgiHangup, AgiReply
from agi.survey import PROMPT, SurveyScript, collect_rating

AT = datetime(2026, 11, 22, 9, 0, tzinfo=timezone.utc)


class Session:
    """Answers STREAM FILE / WAIT FOR DIGIT from a script of keys: each entry is the key the
    caller presses during that command ("" = none, "!" = the command fails, "x" = hangup)."""

    def __init__(self, keys: list[str], uniqueid: str = "c1", gone: bool = False) -> None:
        self.keys = list(keys)
        self.played: list[str] = []
        self.hung_up = False
        self.gone = gone
        self.log = structlog.get_logger(component="test")

        class Req:
            pass
        self.request = Req()
        self.request.uniqueid = uniqueid

    def _next(self) -> str | None:
        key = self.keys.pop(0) if self.keys else ""
        if key == "x":
            raise AgiHangup("511")
        if key == "!":
            raise AgiCommandError(AgiReply(200, "-1"))
        return key or None

    async def stream_file(self, name: str, escape: str = "") -> str | None:
        self.played.append(name)
        return self._next()

    async def wait_for_digit(self, timeout_ms: int) -> str | None:
        self.played.append(f"wait {timeout_ms}")
        return self._next()

    async def channel_gone(self) -> bool:
        return self.gone

    async def hangup(self) -> None:
        self.hung_up = True


@pytest.fixture
async def store(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'acd.db'}"
    await migrate_async(url)
    s = Store(url)
    await s.call_arrived(uniqueid="c1", channel="PJSIP/x", caller_number="111",
                         caller_name="", did="7000", at=AT)
    yield s
    await s.close()


def files(prompt: str) -> list[str]:
    return prompt.split("&")


async def test_a_key_during_the_prompt_is_the_rating(store):
    s = Session(["", "4"])                          # pressed during the second file
    assert await collect_rating(s, store, "c1", clock=lambda: AT) == 4
    assert s.played == files(PROMPT)[:2]
    call = await store.get_call("c1")
    assert call["rating"] == 4 and call["rated_at"] is not None
    assert [(k["node"], k["keys"]) for k in call["key_trail"]] == [("survey", "4")]


async def test_keys_that_are_no_rating_are_asked_again_and_kept_in_the_key_trail(store):
    n = len(files(PROMPT))
    # "9" cuts the question short; "*" cuts the "invalid option" prompt and counts as the
    # next answer; then silence during the question and the wait; then "2" while waiting.
    s = Session(["9", "*"] + [""] * (n + 1) + ["2"])
    rating = await collect_rating(s, store, "c1", node="rate_us", attempts=4,
                                  clock=lambda: AT)
    assert rating == 2
    call = await store.get_call("c1")
    assert [(k["node"], k["keys"]) for k in call["key_trail"]] == [
        ("rate_us", "9"), ("rate_us", "*"), ("rate_us", "2")]
    assert s.played.count("pm-invalid-option") == 2


async def test_no_rating_after_the_attempts(store):
    s = Session([""] * 100)
    assert await collect_rating(s, store, "c1", attempts=2, clock=lambda: AT) is None
    assert s.played.count("wait 6000") == 2
    call = await store.get_call("c1")
    assert call["rating"] is None and call["key_trail"] == []


async def test_a_prompt_asterisk_cannot_play_is_skipped(store):
    s = Session(["!", "5"])                          # the first file is missing
    assert await collect_rating(s, store, "c1", clock=lambda: AT) == 5


async def test_hangup_during_the_survey_raises_and_stores_no_rating(store):
    with pytest.raises(AgiHangup):
        await collect_rating(Session(["", "x"]), store, "c1", clock=lambda: AT)
    with pytest.raises(AgiHangup):                   # -1 and the channel is gone
        await collect_rating(Session(["!"], gone=True), store, "c1", clock=lambda: AT)
    assert (await store.get_call("c1"))["rating"] is None


async def test_survey_route_records_the_survey_and_thanks(store):
    s = Session(["3"])
    await SurveyScript(store, clock=lambda: AT)(s)
    call = await store.get_call("c1")
    assert call["rating"] == 3
    kinds = [e["kind"] for e in call["events"]]
    assert kinds.index("survey_started") < kinds.index("rated") < kinds.index("survey_ended")
    assert s.played[-2:] == ["auth-thankyou", "vm-goodbye"] and s.hung_up


async def test_survey_route_for_an_unknown_call_says_goodbye(store):
    s = Session(["3"], uniqueid="nobody")
    await SurveyScript(store, clock=lambda: AT)(s)
    assert s.played == ["vm-goodbye"] and s.hung_up
    assert await store.get_call("nobody") is None


async def test_a_rating_out_of_range_is_refused_by_the_store(store):
    with pytest.raises(ValueError):
        await store.call_rating("c1", 6, at=AT)
