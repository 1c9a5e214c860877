"""The page a browser gets when it opens a page its role may not see (the API answers JSON)."""
from __future__ import annotations

import html

from aiohttp import web


def forbidden_page(role: str, path: str, home: str) -> web.Response:
    """A page (not JSON) for a browser that opened a page its role may not see, with the
    way back to the user's own page. Nothing of the request is shown unescaped."""
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Not for your role</title>
<link rel="stylesheet" href="/static/app.css"></head>
<body><main class="page-error"><h1>This page is not for your role</h1>
<p>You are logged in as {html.escape(role)}; <code>{html.escape(path)}</code> is for other
roles (error <code>auth.forbidden</code>).</p>
<p><a id="home" href="{html.escape(home, quote=True)}">Back to your page</a></p></main>
</body></html>
"""
    resp = web.Response(text=body, content_type="text/html", status=403)
    resp.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'self'"
    resp.headers["Cache-Control"] = "no-store"
    return resp


def wants_html(request: web.Request) -> bool:
    return not request.path.startswith("/api/") and request.path != "/metrics"
