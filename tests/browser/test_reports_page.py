"""The history reports page in a real Chromium, against our whole server: known calls of
yesterday written into the store as the runtime writes them, a report by hour run by the
supervisor; the page shows the seeded calls' figures, a dialled number made of HTML shows as
text, an impossible range shows the API's message and id, and the CSV and the XLSX downloaded
from the page's links hold the figures of the page's table."""
from __future__ import annotations

import csv
import io
import math
import re
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from datetime import datetime, timedelta
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

from playwright.async_api import expect

from tests.browser.conftest import SUPERVISOR, open_as, web_password

MS = 20000
HOSTILE = "<img src=x onerror=alert(1)>"
SHORT = 5                      # short_abandon: abandoned within 5 s leave the service level
SL = 20.0                      # the test groups' service_level_seconds (the default)


@dataclass(frozen=True)
class Seed:
    """One known call: offered at ``start`` (seconds after yesterday's midnight); answered
    after ``wait`` seconds by ``agent``, or abandoned after ``wait`` when ``agent`` is None."""
    uid: str
    group: str
    did: str
    start: int
    wait: float
    agent: str | None = None
    talk: float = 0.0
    hold: float = 0.0
    wrapup: float = 0.0
    rating: int | None = None


def _seeds() -> list[Seed]:
    """sales (7101): calls every hour from 08:00 to 17:00, every fourth abandoned (some
    within SHORT seconds), the others answered in turn by 1001, 1002 and 1003, far enough
    apart that no agent has two at once; rr: two calls to a dialled number made of HTML."""
    out: list[Seed] = []
    agents = ("1001", "1002", "1003")
    taken = 0
    for hour, n in zip(range(8, 18), (3, 5, 8, 6, 4, 7, 9, 5, 3, 2)):
        for i in range(n):
            start = hour * 3600 + i * (3600 // n) + 17
            uid = f"rep-{hour:02d}-{i}"
            if i % 4 == 3:
                out.append(Seed(uid, "sales", "7101", start, wait=3.0 if hour % 2 else 41.0))
                continue
            agent = agents[taken % 3]
            taken += 1
            out.append(Seed(uid, "sales", "7101", start, wait=float((hour * 7 + i * 11) % 37 + 1),
                            agent=agent, talk=60.0 + (i * 23) % 120, hold=5.0 * (i % 3),
                            wrapup=10.0 * (i % 2), rating=(i % 5) + 1 if i % 2 == 0 else None))
    out.append(Seed("rep-html-1", "rr", HOSTILE, 17 * 3600 + 2700, wait=12.0, agent="1002",
                    talk=40.0))
    out.append(Seed("rep-html-2", "rr", HOSTILE, 15 * 3600 + 900, wait=50.0))
    return out


async def _write(store, day: datetime, s: Seed) -> None:
    """The records of one call, as the runtime writes them (tests/unit/test_reports_history.py)."""
    at = lambda secs: day + timedelta(seconds=secs)  # noqa: E731
    arrived, queued = s.start, s.start + 5
    await store.call_arrived(uniqueid=s.uid, channel=f"PJSIP/trunk-{s.uid}",
                             caller_number="13800138000", caller_name="", did=s.did,
                             at=at(arrived))
    await store.call_event(s.uid, "queued", at=at(queued), detail={"group": s.group})
    if s.agent is None:
        await store.call_ended(s.uid, reason="abandoned", at=at(queued + s.wait))
        return
    answered = queued + s.wait
    end = answered + s.talk + s.hold
    await store.call_event(s.uid, "answered", at=at(answered),
                           detail={"group": s.group, "agent": s.agent})
    await store.call_leg(s.uid, agent_id=s.agent, role="answer", started_at=at(answered),
                         ended_at=at(end), talk=s.talk, hold=s.hold, reason="caller_hangup")
    await store.call_ended(s.uid, reason="caller_hangup", at=at(end))
    if s.wrapup:
        await store.call_leg_wrapup(s.uid, s.agent, s.wrapup)
    if s.rating is not None:
        await store.call_rating(s.uid, s.rating, at=at(end + 20))


def _agent_days(seeds: list[Seed]) -> dict[str, list[tuple[int | float, str]]]:
    """Each agent's states yesterday: idle from 08:00, talking from each answer, wrap-up
    after it, offline at 18:00."""
    days: dict[str, list[tuple[int | float, str]]] = {a: [(8 * 3600, "idle")]
                                                     for a in ("1001", "1002", "1003")}
    for s in sorted(seeds, key=lambda s: s.start):
        if s.agent is None:
            continue
        answered = s.start + 5 + s.wait
        end = answered + s.talk + s.hold
        days[s.agent] += [(answered, "talking")] + ([(end, "wrapup"), (end + s.wrapup, "idle")]
                                                    if s.wrapup else [(end, "idle")])
    for spans in days.values():
        spans.append((18 * 3600, "offline"))
        assert [t for t, _ in spans] == sorted(t for t, _ in spans), spans   # one call at once
    return days


async def seed(store, day: datetime) -> tuple[list[Seed], dict[str, list]]:
    seeds = _seeds()
    for s in seeds:
        await _write(store, day, s)
    days = _agent_days(seeds)
    for agent, spans in days.items():
        for secs, state in spans:
            await store.agent_state(agent, state, reason="", at=day + timedelta(seconds=secs))
    return seeds, days


def expected_by_hour(seeds: list[Seed], group: str) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for s in seeds:
        if s.group != group:
            continue
        row = out[(s.start + 5) // 3600]
        row["offered"] += 1
        row["answered" if s.agent else "abandoned"] += 1
        row["short_abandoned"] += int(s.agent is None and s.wait < SHORT)
        row["answered_within_sl"] += int(s.agent is not None and s.wait <= SL)
    return out


# --------------------------------------------------------------------------- the page's formats

def duration(sec: float | None) -> str:
    """As the page shows seconds (common.js fmtDuration): m:ss, or h:mm:ss."""
    if sec is None:
        return "–"
    sec = max(0, math.floor(sec))
    h, m, s = sec // 3600, sec % 3600 // 60, sec % 60
    return (f"{h}:{m:02d}" if h else str(m)) + f":{s:02d}"


def percent(x: float | None) -> str:
    """As common.js fmtPercent: (x * 100).toFixed(1), which rounds a half up."""
    if x is None:
        return "–"
    return f"{Decimal(x * 100).quantize(Decimal('0.1'), ROUND_HALF_UP)} %"


def shown(kind: str, value, by: str) -> str:
    """A figure as the page shows it (reports.js fmtCell)."""
    if kind == "time":
        return value[:10] if by in ("day", "week") else value[:10] + " " + value[11:16]
    if kind == "seconds":
        return duration(None if value in (None, "") else float(value))
    if kind == "ratio":
        return percent(None if value in (None, "") else float(value))
    if value in (None, ""):
        return "–" if kind == "count" else ""
    if kind == "count":
        return str(int(value)) if float(value) == int(float(value)) else str(float(value))
    return str(value)


# --------------------------------------------------------------------------- the downloads

def read_xlsx(data: bytes) -> list[list[str]]:
    """The first sheet's rows as text (shared or inline strings, numbers as written)."""
    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        shared = []
        if "xl/sharedStrings.xml" in z.namelist():
            for si in ElementTree.fromstring(z.read("xl/sharedStrings.xml")).findall("m:si", ns):
                shared.append("".join(t.text or "" for t in si.iter(f"{{{ns['m']}}}t")))
        sheet = ElementTree.fromstring(z.read("xl/worksheets/sheet1.xml"))
    rows = []
    for row in sheet.iter(f"{{{ns['m']}}}row"):
        cells: dict[int, str] = {}
        for c in row.findall("m:c", ns):
            col = 0
            for ch in re.match(r"[A-Z]+", c.get("r", "A")).group(0):
                col = col * 26 + ord(ch) - 64
            kind, v = c.get("t"), c.find("m:v", ns)
            if kind == "inlineStr":
                text = "".join(t.text or "" for t in c.iter(f"{{{ns['m']}}}t"))
            elif kind == "s":
                text = shared[int(v.text)]
            else:
                text = v.text if v is not None and v.text is not None else ""
            cells[col - 1] = text
        rows.append([cells.get(i, "") for i in range(max(cells, default=-1) + 1)])
    return rows


async def download(page, link: str) -> tuple[str, bytes]:
    async with page.expect_download() as info:
        await page.click(link)
    dl = await info.value
    path = await dl.path()
    return dl.suggested_filename, path.read_bytes()


async def table(page, selector: str) -> list[list[str]]:
    return await page.eval_on_selector_all(
        selector + " tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))")


def as_shown(rows: list[list[str]], columns: list[dict], by: str) -> list[list[str]]:
    """A download's rows (header first) as the page shows them, in the page's columns."""
    header, *body = rows
    labels = [c["label"] for c in columns]
    assert header[:len(labels)] == labels, header
    out = []
    for r in body:
        cells = []
        for i, c in enumerate(columns):
            v = r[i] if i < len(r) else ""
            v = _text(v) if c["kind"] == "text" else v
            cells.append(shown(c["kind"], v, by))
        out.append(cells)
    return out


def _text(v: str) -> str:
    """A CSV cell as the page shows it: a formula-like text loses the apostrophe that defused it."""
    return v[1:] if re.match(r"'[=+\-@\t\r]", v) else v


# --------------------------------------------------------------------------- the test

async def choose(form, name: str, value: str) -> None:
    """Choose in one of the form's lists (its choices may still be loading)."""
    await expect(form.locator(f"select[name={name}] option[value='{value}']")).to_have_count(
        1, timeout=MS)
    await form.locator(f"select[name={name}]").select_option(value)


async def run(page, runs: list[int]) -> None:
    """Press Run and wait for that report's answer (the page counts its runs)."""
    runs[0] += 1
    await page.click("#run")
    await expect(page.locator("body")).to_have_attribute("data-runs", str(runs[0]), timeout=MS)


async def test_a_report_by_hour_shows_the_seeded_calls_and_downloads_the_same_figures(
        web_server, browser):
    srv, base, cfg = web_server
    zone = ZoneInfo(cfg.web.timezone)
    today = datetime.now(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    day = (today.replace(tzinfo=None) - timedelta(days=1)).replace(tzinfo=zone)
    seeds, days = await seed(srv.store, day)
    ymd = day.strftime("%Y-%m-%d")
    tomorrow = (today.replace(tzinfo=None) + timedelta(days=1)).strftime("%Y-%m-%d")

    sup = await open_as(browser, base, SUPERVISOR[0], web_password(cfg, SUPERVISOR[0]),
                        "/reports")
    page = sup.page
    runs = [1]                                   # the page runs the last 7 days at once
    await expect(page.locator("body")).to_have_attribute("data-report", "ready", timeout=MS)
    sales_total = page.locator("#totals tr[data-key='sales'] td[data-f='offered']")
    await expect(sales_total).to_have_text(str(sum(s.group == "sales" for s in seeds)))

    # By hour, yesterday and today, the sales group, short abandons within 5 s.
    form = page.locator("#report-form")
    await form.locator("input[name=since]").fill(ymd)
    await form.locator("input[name=until]").fill(tomorrow)
    await choose(form, "by", "60m")
    await choose(form, "key", "sales")
    await form.locator("input[name=short_abandon]").fill(str(SHORT))
    await run(page, runs)
    await expect(page.locator("body")).to_have_attribute("data-report", "ready")
    assert "key=sales" in page.url and "by=60m" in page.url      # the address is the report
    await expect(page.locator("#rows tbody tr")).to_have_count(48)
    want = expected_by_hour(seeds, "sales")
    for hour in range(24):
        row = page.locator(f"#rows tr[data-key='sales'][data-interval^='{ymd}T{hour:02d}:00']")
        w = want.get(hour, {})
        for f in ("offered", "answered", "abandoned", "short_abandoned", "answered_within_sl"):
            await expect(row.locator(f"td[data-f='{f}']")).to_have_text(str(w.get(f, 0)))
        offered = w.get("offered", 0) - w.get("short_abandoned", 0)
        await expect(row.locator("td[data-f='service_level']")).to_have_text(
            percent(round(w["answered_within_sl"] / offered, 4) if offered > 0 else None))
    totals = page.locator("#totals tr[data-key='sales']")
    for f in ("offered", "answered", "abandoned"):
        await expect(totals.locator(f"td[data-f='{f}']")).to_have_text(
            str(sum(w.get(f, 0) for w in want.values())))
    offered_head = page.locator("#rows th[data-f='offered']")
    assert "Entries into the group's queue" in (await offered_head.get_attribute("title"))
    await expect(page.locator("#chart svg rect.offered")).to_have_count(len(want))
    await expect(page.locator("#chart svg path.sl")).to_have_count(1)

    # The downloads hold the table's figures.
    shown_rows = await table(page, "#rows")
    rep = await _report(page, page.url.split("?", 1)[1])
    name, data = await download(page, "#csv-link")
    assert name.endswith(".csv"), name
    text = data.decode("utf-8-sig")
    assert as_shown(list(csv.reader(io.StringIO(text))), rep["columns"], "60m") == shown_rows
    name, data = await download(page, "#xlsx-link")
    assert name.endswith(".xlsx") and data[:2] == b"PK", name
    assert as_shown(read_xlsx(data), rep["columns"], "60m") == shown_rows

    # Per agent, yesterday by day: calls handled and occupancy from the seeded states.
    await form.locator("input[name=until]").fill(today.strftime("%Y-%m-%d"))
    await choose(form, "by", "day")
    await choose(form, "dimension", "agent")
    await expect(form.locator("select[name=key] option[value='1003']")).to_have_count(1, timeout=MS)
    await run(page, runs)
    for agent, spans in days.items():
        secs: dict[str, float] = defaultdict(float)
        for (at, state), (nxt, _) in zip(spans, spans[1:]):
            secs[state] += nxt - at
        handling = secs["idle"] + secs["talking"] + secs["wrapup"]
        row = page.locator(f"#totals tr[data-key='{agent}']")
        await expect(row.locator("td[data-f='calls_handled']")).to_have_text(
            str(sum(s.agent == agent for s in seeds)))
        await expect(row.locator("td[data-f='logged_in']")).to_have_text(duration(10 * 3600))
        await expect(row.locator("td[data-f='occupancy']")).to_have_text(
            percent(round((secs["talking"] + secs["wrapup"]) / handling, 4)))
    await expect(page.locator("#chart svg rect.handled")).to_have_count(1)

    # Per dialled number: a number made of HTML is text, in the table, the totals, the chart.
    await choose(form, "dimension", "number")
    await expect(form.locator("input[name=key]")).to_be_enabled()
    await run(page, runs)
    cell = page.locator("#totals tr td[data-f='key']", has_text="onerror")
    await expect(cell).to_have_text(HOSTILE)
    await expect(page.locator("#rows td[data-f='key']", has_text="onerror")).to_have_text(HOSTILE)
    await expect(page.locator("#totals tr", has_text="onerror").locator(
        "td[data-f='offered']")).to_have_text("2")
    assert await page.locator("main img").count() == 0
    assert sup.dialogs == []

    # A range that ends before it starts: the API's message and id, the old report gone.
    await form.locator("input[name=since]").fill(tomorrow)
    await run(page, runs)
    await expect(page.locator("#report-msg")).to_have_text(
        "until must be after since [report.bad_range]")
    await expect(page.locator("#rows-panel")).to_be_hidden()
    await expect(page.locator("#downloads")).to_be_hidden()

    # At 1366 and at 700 px: the page never scrolls sideways, the table does at 700.
    await form.locator("input[name=since]").fill(ymd)
    await choose(form, "dimension", "group")
    await choose(form, "by", "60m")
    await choose(form, "key", "sales")
    await run(page, runs)
    await expect(page.locator("#rows tbody tr")).to_have_count(24)
    for width in (1366, 700):
        await page.set_viewport_size({"width": width, "height": 900})
        await page.wait_for_timeout(400)                      # the chart follows the width
        wide = await page.evaluate("document.documentElement.scrollWidth")
        assert wide <= width, (width, wide)
        chart = await page.eval_on_selector("#chart svg", "s => s.getBoundingClientRect().right")
        assert chart <= width
        await sup.shot(f"reports-{width}")
    scroller = await page.eval_on_selector(
        "#rows-panel .table-scroll", "d => [d.scrollWidth, d.clientWidth]")
    assert scroller[0] > scroller[1]                          # the table scrolls inside
    assert sup.errors == []


async def _report(page, query: str) -> dict:
    """The JSON report of the page's query, read with the page's session (its columns)."""
    return await page.evaluate(
        "async (q) => (await fetch('/api/reports/history?' + q)).json()", query)
