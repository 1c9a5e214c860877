"""Reading a request's JSON body: one place for what every route that takes one checks."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from acd.errors import UserError


async def json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object; ``http.bad_request`` for anything else (not JSON, not UTF-8,
    nested too deep for the parser, or not an object)."""
    try:
        data = await request.json()
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise UserError("http.bad_request", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise UserError("http.bad_request", "the body must be a JSON object")
    return data
