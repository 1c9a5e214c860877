"""Report export (acd/reports/export.py): CSV read back with the csv module, XLSX read back
with zipfile and an XML parser, hostile text included."""
from __future__ import annotations

import csv
import io
import re
import zipfile
from xml.etree import ElementTree as ET

import pytest

from acd.reports import export

NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
HOSTILE = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "\tTAB", "\rCR",
           "<script>alert(1)</script>", "Zoë 李雷 🙂 \"quoted\", comma", "line\nbreak",
           "a\x01b"]

COLUMNS = [{"key": "interval", "label": "Interval", "kind": "time"},
           {"key": "key", "label": "Group", "kind": "text"},
           {"key": "offered", "label": "Offered", "kind": "count"},
           {"key": "asa", "label": "ASA (s)", "kind": "seconds"},
           {"key": "service_level", "label": "Service level", "kind": "ratio"}]
ROWS = [{"interval": "2026-11-22T00:00:00+01:00", "key": "sales", "offered": 12, "asa": 7.5,
         "service_level": 0.8333},
        {"interval": "2026-11-22T00:15:00+01:00", "key": "support", "offered": 0,
         "asa": None, "service_level": None},
        {"interval": "2026-11-22T00:30:00+01:00", "key": "+4930123456", "offered": 3.0,
         "asa": 12, "service_level": 1}]


def _csv(data: bytes) -> list[list[str]]:
    assert not data.startswith(b"\xef\xbb\xbf")                    # no byte order mark
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


# ------------------------------------------------------------------------------------- CSV

def test_csv_has_a_header_of_labels_and_numbers_as_numbers():
    data = export.to_csv(COLUMNS, ROWS)
    assert data.count(b"\r\n") == 4                                # header + 3 rows, CRLF
    assert _csv(data) == [
        ["Interval", "Group", "Offered", "ASA (s)", "Service level"],
        ["2026-11-22T00:00:00+01:00", "sales", "12", "7.5", "0.8333"],
        ["2026-11-22T00:15:00+01:00", "support", "0", "", ""],     # None: an empty cell
        ["2026-11-22T00:30:00+01:00", "+4930123456", "3", "12", "1"]]


def test_csv_defuses_text_a_spreadsheet_would_run():
    rows = [{"key": text, "offered": 1} for text in HOSTILE]
    got = [r[1] for r in _csv(export.to_csv(COLUMNS, rows))[1:]]
    assert got == ["'=cmd|' /C calc'!A0", "'+1+1", "'-2+3", "'@SUM(A1)", "'\tTAB", "'\rCR",
                   "<script>alert(1)</script>", "Zoë 李雷 🙂 \"quoted\", comma", "line\nbreak",
                   "a\x01b"]


def test_csv_missing_keys_and_non_finite_numbers_are_empty_cells():
    rows = [{"offered": float("nan"), "asa": float("inf")}]
    assert _csv(export.to_csv(COLUMNS, rows))[1] == ["", "", "", "", ""]


def test_a_text_in_a_number_column_is_still_defused():
    rows = [{"offered": "=1+1"}]
    assert _csv(export.to_csv(COLUMNS, rows))[1][2] == "'=1+1"


def test_csv_cell_is_the_one_the_calls_export_uses():
    from acd.web import webdb
    assert webdb._csv_cell is export.csv_cell
    assert export.csv_cell("+8613800138000") == "+8613800138000"   # a number stays a number
    assert export.csv_cell(None) == ""


# ------------------------------------------------------------------------------------ XLSX

def _unescape(text: str) -> str:
    """OOXML's escape for characters XML cannot carry (``_x000D_`` is a carriage return)."""
    return re.sub(r"_x([0-9A-Fa-f]{4})_", lambda m: chr(int(m.group(1), 16)), text)


def _col(ref: str) -> int:
    n = 0
    for ch in re.match(r"[A-Z]+", ref).group(0):
        n = n * 26 + ord(ch) - 64
    return n - 1


class Sheet:
    """An XLSX read back: cells (value, type, style) by (row, column), from 0."""

    def __init__(self, data: bytes) -> None:
        self.zip = zipfile.ZipFile(io.BytesIO(data))
        self.xml = self.zip.read("xl/worksheets/sheet1.xml").decode("utf-8")
        root = ET.fromstring(self.xml)
        strings = []
        if "xl/sharedStrings.xml" in self.zip.namelist():
            for si in ET.fromstring(self.zip.read("xl/sharedStrings.xml")).findall("m:si", NS):
                strings.append(_unescape("".join(t.text or "" for t in si.iter(f"{{{NS['m']}}}t"))))
        self.cells: dict[tuple[int, int], tuple[object, str, int]] = {}
        for c in root.iter(f"{{{NS['m']}}}c"):
            ref = c.get("r")
            row = int(re.search(r"[0-9]+", ref).group(0)) - 1
            v = c.find("m:v", NS)
            kind = c.get("t") or "n"
            if kind == "s":
                value: object = strings[int(v.text)]
            elif kind == "inlineStr":
                value = _unescape("".join(t.text or "" for t in c.iter(f"{{{NS['m']}}}t")))
            else:
                value = float(v.text)
            self.cells[(row, _col(ref))] = (value, kind, int(c.get("s") or 0))
        self.root = root
        styles = ET.fromstring(self.zip.read("xl/styles.xml"))
        self.formats = {int(f.get("numFmtId")): f.get("formatCode")
                        for f in styles.iter(f"{{{NS['m']}}}numFmt")}
        self.fonts = list(styles.find("m:fonts", NS))
        self.xfs = list(styles.find("m:cellXfs", NS))

    def value(self, row: int, col: int) -> object:
        return self.cells[(row, col)][0]

    def number_format(self, row: int, col: int) -> str:
        xf = self.xfs[self.cells[(row, col)][2]]
        return self.formats.get(int(xf.get("numFmtId")), f"builtin {xf.get('numFmtId')}")

    def bold(self, row: int, col: int) -> bool:
        xf = self.xfs[self.cells[(row, col)][2]]
        return self.fonts[int(xf.get("fontId"))].find("m:b", NS) is not None


def test_xlsx_header_is_bold_and_frozen_and_numbers_are_numbers():
    s = Sheet(export.to_xlsx(COLUMNS, ROWS, sheet="By group"))
    assert [s.value(0, x) for x in range(5)] == ["Interval", "Group", "Offered", "ASA (s)",
                                                 "Service level"]
    assert all(s.bold(0, x) for x in range(5)) and not s.bold(1, 1)
    pane = s.root.find(".//m:pane", NS)
    assert pane.get("state") == "frozen" and pane.get("ySplit") == "1"
    assert s.cells[(1, 0)][:2] == ("2026-11-22T00:00:00+01:00", "s")   # a time: text
    assert s.cells[(1, 1)][:2] == ("sales", "s")
    assert s.cells[(1, 2)][:2] == (12.0, "n")
    assert s.cells[(1, 3)][:2] == (7.5, "n")
    assert s.cells[(1, 4)][:2] == (0.8333, "n")
    assert s.number_format(1, 4).endswith("%")                    # ratios as percentages
    assert s.number_format(1, 3) == "0.0"                          # seconds, one decimal
    assert s.cells[(3, 1)][:2] == ("+4930123456", "s")             # a number's text stays text
    assert (2, 3) not in s.cells and (2, 4) not in s.cells         # None: no cell
    assert 'name="By group"' in s.zip.read("xl/workbook.xml").decode()


def test_xlsx_writes_hostile_text_as_plain_strings_never_formulas():
    rows = [{"key": text, "offered": "=1+1"} for text in HOSTILE]
    data = export.to_xlsx(COLUMNS, rows)
    s = Sheet(data)
    assert "<f>" not in s.xml and s.root.find(".//m:f", NS) is None
    got = [s.cells[(y, 1)] for y in range(1, len(HOSTILE) + 1)]
    assert all(kind == "s" for _, kind, _ in got)
    values = [v for v, _, _ in got]
    assert values == HOSTILE                                # as typed: no apostrophe needed
    assert [s.cells[(y, 2)][:2] for y in (1, 2)] == [("=1+1", "s")] * 2


@pytest.mark.parametrize("name, expect", [
    ("By group", "By group"), ("a/b[c]:d*e?f\\g", "a_b_c__d_e_f_g"), ("", "Report"),
    ("x" * 40, "x" * 31), ("History", "History_"), ("'quoted'", "quoted")])
def test_sheet_names_are_ones_excel_accepts(name, expect):
    assert export.sheet_name(name) == expect
    data = export.to_xlsx(COLUMNS, [], sheet=name)
    book = ET.fromstring(zipfile.ZipFile(io.BytesIO(data)).read("xl/workbook.xml"))
    assert [e.get("name") for e in book.iter(f"{{{NS['m']}}}sheet")] == [expect]


def test_an_unknown_column_kind_is_refused():
    with pytest.raises(ValueError, match="kind 'money' is not one of text, count"):
        export.to_csv([{"key": "k", "label": "K", "kind": "money"}], [])
    with pytest.raises(ValueError, match="kind 'money'"):
        export.to_xlsx([{"key": "k", "label": "K", "kind": "money"}], [])
