"""The report routes on a real aiohttp server with a real store: the history report as JSON,
CSV and XLSX, the queue_log export, who may read them, bad queries with stable ids, and the
call-record export's handle times, legs and notes."""
from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
import zipfile
from datetime import datetime, timedelta, timezone

from tests.integration.test_web_api import web  # noqa: F401  (the fixture)
from tests.conftest import BOTH_DATABASES

pytestmark = BOTH_DATABASES

T0 = datetime.now(timezone.utc).replace(hour=9, minute=0, second=0, microsecond=0) \
    - timedelta(days=1)
DAY = T0.date().isoformat()
NEXT = (T0.date() + timedelta(days=1)).isoformat()


async def _seed(web):
    s = web.store
    await web.add_call("r1", agent="1001")                      # answered in 3 s, today
    for uid, number, agent, answer in (("h1", "7000", "1001", 4), ("h2", "<img src=x>", "1002", 30),
                                       ("h3", "=cmd|' /C calc'!A0", None, None)):
        await s.call_arrived(uniqueid=uid, channel="c", caller_number="139|0001\n", caller_name="",
                             did=number, at=T0)
        await s.call_event(uid, "queued", at=T0, detail={"group": "sales"})
        if agent:
            await s.call_event(uid, "answered", at=T0 + timedelta(seconds=answer),
                               detail={"group": "sales", "agent": agent})
            await s.call_leg(uid, agent_id=agent, role="answer",
                             started_at=T0 + timedelta(seconds=answer),
                             ended_at=T0 + timedelta(seconds=answer + 60), talk=50, hold=10,
                             reason="caller_hangup")
            await s.call_ended(uid, reason="caller_hangup", at=T0 + timedelta(seconds=answer + 60))
            await s.call_leg_wrapup(uid, agent, 12)
        else:
            await s.call_ended(uid, reason="abandoned", at=T0 + timedelta(seconds=9))
    await s.agent_state("1001", "idle", reason="", at=T0 - timedelta(minutes=5))
    await s.agent_state("1001", "break", reason="lunch|x", at=T0 + timedelta(hours=1))


def _xlsx_rows(body: bytes) -> list[list[str]]:
    z = zipfile.ZipFile(io.BytesIO(body))
    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    shared = []
    if "xl/sharedStrings.xml" in z.namelist():
        for si in ET.fromstring(z.read("xl/sharedStrings.xml")).findall("m:si", ns):
            shared.append("".join(t.text or "" for t in si.iter(f"{{{ns['m']}}}t")))
    out = []
    for row in ET.fromstring(z.read("xl/worksheets/sheet1.xml")).iter(f"{{{ns['m']}}}row"):
        cells = []
        for c in row.findall("m:c", ns):
            v = c.find("m:v", ns)
            if c.get("t") == "s":
                cells.append(shared[int(v.text)])
            elif c.get("t") == "inlineStr":
                cells.append("".join(t.text or "" for t in c.iter(f"{{{ns['m']}}}t")))
            else:
                cells.append(v.text if v is not None else "")
        out.append(cells)
    return out


async def test_history_json_csv_and_xlsx_agree(web):
    await _seed(web)
    sup = await web.as_user("sup")
    q = f"since={DAY}&until={NEXT}&by=day&tz=UTC"
    r = await sup.get(web.url(f"/api/reports/history?{q}"))
    assert r.status == 200
    rep = await r.json()
    assert rep["complete"] is True
    [sales] = rep["totals"]
    assert (sales["key"], sales["offered"], sales["answered"], sales["abandoned"]) == (
        "sales", 3, 2, 1)
    assert sales["answered_within_sl"] == 1 and sales["aht"] == 72.0
    r = await sup.get(web.url(f"/api/reports/history.csv?{q}"))
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in r.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO((await r.read()).decode("utf-8"))))
    labels = [c["label"] for c in rep["columns"]]
    assert rows[0] == labels and len(rows) == 2
    assert rows[1][labels.index("Offered")] == "3"
    r = await sup.get(web.url(f"/api/reports/history.xlsx?{q}"))
    assert r.status == 200 and "spreadsheetml" in r.headers["Content-Type"]
    sheet = _xlsx_rows(await r.read())
    assert sheet[0] == labels
    assert float(sheet[1][labels.index("Answered")]) == 2


async def test_by_number_a_hostile_number_is_data(web):
    await _seed(web)
    sup = await web.as_user("sup")
    r = await sup.get(web.url(f"/api/reports/history.csv?since={DAY}&until={NEXT}&by=day"
                              "&dimension=number&tz=UTC"))
    rows = list(csv.reader(io.StringIO((await r.read()).decode("utf-8"))))
    keys = sorted(row[1] for row in rows[1:])
    assert keys == ["'=cmd|' /C calc'!A0", "7000", "<img src=x>"]   # not run by a spreadsheet


async def test_queue_log_lines(web):
    await _seed(web)
    sup = await web.as_user("sup")
    r = await sup.get(web.url(f"/api/reports/queue_log?since={DAY}&until={NEXT}&tz=UTC"))
    assert r.status == 200
    lines = (await r.text()).splitlines()
    events = [ln.split("|")[4] for ln in lines]
    assert events.count("ENTERQUEUE") == 3 and events.count("CONNECT") == 2
    assert events.count("ABANDON") == 1 and "PAUSE" in events
    for ln in lines:
        assert len(ln.split("|")) >= 5                 # a | in a caller id split nothing
    enter = [ln.split("|") for ln in lines if "|h1|" in ln and "|ENTERQUEUE|" in ln][0]
    assert enter[2] == "sales" and enter[6] == "139_0001_"


async def test_who_may_read_reports_and_bad_queries(web):
    agent = await web.as_user("1001")
    r = await agent.get(web.url(f"/api/reports/history?since={DAY}&until={NEXT}"))
    assert r.status == 403
    sup = await web.as_user("sup")
    for query, error in ((f"since={NEXT}&until={DAY}", "report.bad_range"),
                         (f"since={DAY}&until={NEXT}&key=nope", "report.unknown_group"),
                         (f"since={DAY}&until={NEXT}&tz=Nowhere/Land", "report.bad_timezone"),
                         (f"since=2020-01-01&until={NEXT}&by=15m", "report.bad_range")):
        r = await sup.get(web.url(f"/api/reports/history?{query}"))
        assert r.status == 400 and (await r.json())["error"] == error, query
    r = await sup.get(web.url(f"/api/reports/queue_log?since=2026-01-01&until=2026-03-01"))
    assert r.status == 400 and (await r.json())["error"] == "report.bad_range"


async def test_the_call_export_has_handle_times_legs_and_notes(web):
    await _seed(web)
    await web.store.call_rating("h1", 4, at=T0 + timedelta(minutes=5))
    from acd.web.webdb import WebDb
    await WebDb(web.store).set_note("1001", "h1", "=SUM(A1) asked for a refund",
                                    T0 + timedelta(minutes=6))
    admin = await web.as_user("admin")
    r = await admin.get(web.url(f"/api/admin/calls.csv?since={DAY}&until={NEXT}"))
    rows = {row["uniqueid"]: row for row in csv.DictReader(io.StringIO(await r.text()))}
    h1 = rows["h1"]
    assert (h1["wait_seconds"], h1["talk_seconds"], h1["hold_seconds"], h1["wrapup_seconds"],
            h1["rating"]) == ("4.0", "50.0", "10.0", "12.0", "4")
    assert h1["legs"] == "1001 answer talk 50.0 hold 10.0 wrapup 12.0 caller_hangup"
    assert h1["notes"] == "1001: =SUM(A1) asked for a refund"
    assert rows["h3"]["wait_seconds"] == "9.0" and rows["h3"]["legs"] == ""
