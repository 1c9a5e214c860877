"""A report's table as a file: CSV or XLSX bytes. Plain Python, no I/O.

``columns`` say what each column is: ``{"key", "label", "kind"}``, the kind one of
:data:`KINDS`. ``rows`` are dicts by column key; a missing key or ``None`` is an empty cell,
and so is a number that is not finite (NaN, infinity).

* text, time: written as text (``time`` is an ISO 8601 string with its offset, kept as text so
  that the two 01:00-02:00 intervals of a daylight-saving change stay apart);
* count, seconds, ratio: numbers (a value that is not a number is written as text).

CSV (:func:`to_csv`): UTF-8 without a byte order mark, a header row of the labels, CRLF line
ends (RFC 4180). Text a spreadsheet would read as a formula is defused by :func:`csv_cell`.
Ratios are fractions (0.8 for 80%), seconds and counts plain numbers.

XLSX (:func:`to_xlsx`, with XlsxWriter): one sheet, a bold header row that stays in view
(frozen), numbers as numbers (ratios shown as percentages, seconds with one decimal), and
every text cell written with ``write_string``: never a formula, whatever it starts with.
"""
from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import xlsxwriter

KINDS = ("text", "count", "seconds", "ratio", "time")
NUMERIC = ("count", "seconds", "ratio")

#: Excel's limits on a sheet name: 31 characters, none of these, no leading or trailing '.
_SHEET_BAD = re.compile(r"[\[\]:*?/\\]")
_NUMBER_FORMATS = {"count": "0", "seconds": "0.0", "ratio": "0.0%"}


def csv_cell(value: Any) -> str:
    """A cell a spreadsheet will not run: text starting with = + - @ (or a tab, a carriage
    return) gets a leading apostrophe. Caller names and numbers are caller-controlled."""
    text = "" if value is None else str(value)
    if re.fullmatch(r"[+-]?[0-9][0-9.]*", text):      # a plain number, e.g. +8613800138000
        return text
    if text and text[0] in "=+-@\t\r":
        return "'" + text
    return text


def _check(columns: Sequence[Mapping[str, str]]) -> None:
    for i, col in enumerate(columns):
        kind = col.get("kind")
        if kind not in KINDS:
            raise ValueError(f"column {i} ({col.get('key')!r}): kind {kind!r} is not one of "
                             f"{', '.join(KINDS)}")
        if not isinstance(col.get("key"), str) or not isinstance(col.get("label"), str):
            raise ValueError(f"column {i}: needs a key and a label (strings), not {col!r}")


def _number(value: Any) -> int | float | None:
    """``value`` as a finite number, or None if it is not one."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _number_text(v: int | float) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v) if isinstance(v, float) else str(v)


def _csv_value(kind: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    if kind in NUMERIC and (n := _number(value)) is not None:
        return _number_text(n)
    return csv_cell(value)


def to_csv(columns: list[dict], rows: list[dict]) -> bytes:
    """The report as CSV: a header of labels, then one line per row (UTF-8)."""
    _check(columns)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([csv_cell(c["label"]) for c in columns])
    for row in rows:
        w.writerow([_csv_value(c["kind"], row.get(c["key"])) for c in columns])
    return buf.getvalue().encode("utf-8")


def sheet_name(name: str) -> str:
    """``name`` as Excel accepts a sheet's name (forbidden characters become _)."""
    clean = _SHEET_BAD.sub("_", name or "")[:31].strip("'")
    if not clean.strip():
        return "Report"
    if clean.lower() == "history":                  # Excel keeps that name for itself
        return clean + "_"
    return clean


def to_xlsx(columns: list[dict], rows: list[dict], *, sheet: str = "Report") -> bytes:
    """The report as an XLSX workbook of one sheet."""
    _check(columns)
    buf = io.BytesIO()
    book = xlsxwriter.Workbook(buf, {"in_memory": True, "strings_to_formulas": False,
                                     "strings_to_urls": False, "strings_to_numbers": False})
    ws = book.add_worksheet(sheet_name(sheet))
    bold = book.add_format({"bold": True})
    fmt = {kind: book.add_format({"num_format": f}) for kind, f in _NUMBER_FORMATS.items()}
    for x, col in enumerate(columns):
        ws.write_string(0, x, col["label"], bold)
        ws.set_column(x, x, max(10, min(40, len(col["label"]) + 2)))
    ws.freeze_panes(1, 0)
    for y, row in enumerate(rows, start=1):
        for x, col in enumerate(columns):
            value = row.get(col["key"])
            if value is None:
                continue
            kind = col["kind"]
            if kind in NUMERIC and (n := _number(value)) is not None:
                ws.write_number(y, x, n, fmt[kind])
            elif isinstance(value, float) and not math.isfinite(value):
                continue
            else:
                ws.write_string(y, x, str(value))
    book.close()
    return buf.getvalue()


__all__ = ["KINDS", "csv_cell", "sheet_name", "to_csv", "to_xlsx"]
