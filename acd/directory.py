"""The customer directory that IVR flows check a caller's identity against.

Two sources, one interface (``await directory.lookup(kind, value)``):

- :class:`DatabaseDirectory`: the ``customers`` table of the project's database, filled from
  CSV with ``acd directory import FILE`` (:func:`import_csv`);
- :class:`HttpDirectory`: a business system asked over HTTP, ``GET URL?kind=phone&value=...``,
  answering ``{"found": true, "customer": {"customer_number": ..., "name": ...}}`` (or 404
  for "not found"), within ``timeout`` seconds.

``kind`` is ``phone``, ``id_number`` or ``customer_number``. A lookup that fails (timeout,
refused connection, a 5xx, an answer that is not JSON) raises :class:`DirectoryError`: the
flow then takes its failure branch, it never waits on.
"""
from __future__ import annotations

import asyncio
import csv
import io
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from sqlalchemy import and_, false, func, literal, or_, select

from acd.errors import UserError
from acd.store.models import Customer

KINDS = ("phone", "id_number", "customer_number")
#: A calling number as carriers write it. Only such a caller ID is looked up as a phone (the
#: IVR's match_caller, the agent page's pop and region): a caller ID of HTML or SQL that
#: merely contains a customer's digits finds nobody.
PHONE_LIKE = re.compile(r"\+?[0-9 ()./-]{3,40}")
MAX_VALUE = 64
CSV_COLUMNS = ("customer_number", "name", "phone", "id_number")


class DirectoryError(UserError):
    """The directory could not answer (timeout, unreachable, bad answer)."""


@dataclass(frozen=True)
class CustomerRecord:
    customer_number: str
    name: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"customer_number": self.customer_number, "name": self.name}


class Directory(Protocol):
    async def lookup(self, kind: str, value: str) -> CustomerRecord | None: ...


def normalize(kind: str, value: str) -> str:
    """Phone numbers: digits only (a leading + kept). ID numbers: upper case, and a * keyed
    on the phone stands for the letter X (Chinese ID numbers end in X). Customer numbers: as
    given, trimmed."""
    value = (value or "").strip()[:MAX_VALUE]
    if kind == "phone":
        plus = value.startswith("+")
        digits = re.sub(r"\D", "", value)
        return ("+" if plus else "") + digits if digits else ""
    if kind == "id_number":
        return value.replace("*", "X").upper()
    return value


def _phone_variants(phone: str) -> list[str]:
    """Exact forms of a calling number (with and without + and 00); the lookup also matches
    when one number ends with the other (a country code on one side only), from 8 digits."""
    digits = phone.lstrip("+")
    out = {phone, digits, "+" + digits}
    if digits.startswith("00"):
        out |= {digits[2:], "+" + digits[2:]}
    return [v for v in out if v]


class DatabaseDirectory:
    def __init__(self, store: Any) -> None:
        self.store = store

    async def lookup(self, kind: str, value: str) -> CustomerRecord | None:
        if kind not in KINDS:
            raise ValueError(f"unknown lookup kind {kind!r}")
        v = normalize(kind, value)
        if not v:
            return None
        async with self.store.session() as s:
            if kind == "phone":
                variants = _phone_variants(v)
                digits = v.lstrip("+")
                cond = or_(Customer.phone.in_(variants),
                           # the directory has the number with a country code, the caller not
                           Customer.phone.like(f"%{digits}") if len(digits) >= 8 else false(),
                           # the caller's number has a country code, the directory's not
                           and_(func.length(Customer.phone) >= 8,
                                literal(digits).like(literal("%") + Customer.phone)))
                row = await s.scalar(select(Customer).where(cond).order_by(Customer.id).limit(1))
            else:
                col = Customer.id_number if kind == "id_number" else Customer.customer_number
                row = await s.scalar(select(Customer).where(col == v).order_by(Customer.id).limit(1))
        return CustomerRecord(row.customer_number, row.name) if row else None


class HttpDirectory:
    """A business system's lookup. ``session``: an aiohttp ClientSession (owned by the app)."""

    def __init__(self, url: str, timeout: float, session: Any) -> None:
        self.url = url
        self.timeout = timeout
        self.session = session

    async def lookup(self, kind: str, value: str) -> CustomerRecord | None:
        import aiohttp
        if kind not in KINDS:
            raise ValueError(f"unknown lookup kind {kind!r}")
        v = normalize(kind, value)
        if not v:
            return None
        try:
            async with asyncio.timeout(self.timeout):
                async with self.session.get(self.url, params={"kind": kind, "value": v},
                                            allow_redirects=False) as r:
                    if r.status == 404:
                        return None
                    if r.status != 200:
                        raise DirectoryError("directory.bad_status",
                                             f"the directory answered HTTP {r.status}")
                    data = await r.json(content_type=None)
        except TimeoutError:
            raise DirectoryError("directory.timeout",
                                 f"no answer from the directory within {self.timeout:g} s") from None
        except (aiohttp.ClientError, OSError) as e:
            raise DirectoryError("directory.unreachable", f"the directory failed: {e}") from None
        except ValueError:
            raise DirectoryError("directory.bad_answer", "the directory's answer is not JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("found"), bool):
            raise DirectoryError("directory.bad_answer", 'the directory\'s answer has no "found"')
        if not data["found"]:
            return None
        cust = data.get("customer") if isinstance(data.get("customer"), dict) else {}
        number = str(cust.get("customer_number", "") or "")[:64]
        return CustomerRecord(number or v, str(cust.get("name", "") or "")[:256])


# --------------------------------------------------------------------------- CSV import

def parse_csv(text: str, source: str = "CSV") -> list[dict[str, str]]:
    """Rows of ``customer_number,name,phone,id_number`` (a header line names the columns,
    in any order; customer_number is required, the others may be left out). Every bad row is
    reported with its line, and then nothing is imported."""
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    if "customer_number" not in header:
        raise UserError("directory.bad_csv", f"{source}, line 1: the header needs customer_number "
                        f"(columns: {', '.join(CSV_COLUMNS)})")
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if unknown:
        raise UserError("directory.bad_csv", f"{source}, line 1: unknown column {unknown[0]!r} "
                        f"(columns: {', '.join(CSV_COLUMNS)})")
    reader.fieldnames = header
    rows, problems, seen = [], [], {}
    for row in reader:
        line = reader.line_num
        if None in row:
            problems.append(f"{source}, line {line}: more fields than columns")
            continue
        rec = {c: (row.get(c) or "").strip() for c in CSV_COLUMNS}
        if not rec["customer_number"] or len(rec["customer_number"]) > 64:
            problems.append(f"{source}, line {line}: customer_number is empty or too long")
            continue
        if rec["customer_number"] in seen:
            problems.append(f"{source}, line {line}: customer_number {rec['customer_number']!r} "
                            f"is also on line {seen[rec['customer_number']]}")
            continue
        if rec["phone"] and not re.fullmatch(r"\+?[0-9 ()./-]{3,40}", rec["phone"]):
            problems.append(f"{source}, line {line}: phone {rec['phone']!r} is not a phone number")
            continue
        if len(rec["id_number"]) > 64 or len(rec["name"]) > 256:
            problems.append(f"{source}, line {line}: a value is too long")
            continue
        seen[rec["customer_number"]] = line
        rec["phone"] = normalize("phone", rec["phone"])
        rec["id_number"] = normalize("id_number", rec["id_number"])
        rows.append(rec)
    if problems:
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise UserError("directory.bad_csv", "; ".join(problems[:10]) + more)
    return rows


async def import_rows(store: Any, rows: list[dict[str, str]]) -> dict[str, int]:
    """Insert or update (by customer_number) in one transaction."""
    now = datetime.now(timezone.utc)
    added = updated = 0
    async with store.session() as s, s.begin():
        existing = {c.customer_number: c for c in await s.scalars(
            select(Customer).where(Customer.customer_number.in_([r["customer_number"] for r in rows])))}
        for r in rows:
            c = existing.get(r["customer_number"])
            if c is None:
                s.add(Customer(**r, updated_at=now))
                added += 1
            else:
                c.name, c.phone, c.id_number, c.updated_at = r["name"], r["phone"], r["id_number"], now
                updated += 1
    return {"added": added, "updated": updated}
