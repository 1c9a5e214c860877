"""Logging: structlog, readable on a terminal or JSON lines, every line bound to what it is about.

Use ``get_logger(call=uniqueid)`` or ``log.bind(agent=...)``; never build messages by string
formatting of ids, so that the JSON output keeps them as fields.
"""
from __future__ import annotations

import logging
import sys

import structlog


def configure(level: str = "info", fmt: str = "console") -> None:
    """Set up structlog and the standard library logging once, at start-up."""
    lvl = logging.getLevelName(level.upper())
    if not isinstance(lvl, int):
        raise ValueError(f"unknown log level {level!r}")
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    # Libraries that log through the standard library (aiohttp, panoramisk, alembic).
    logging.basicConfig(level=max(lvl, logging.WARNING), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def get_logger(**bound):
    return structlog.get_logger().bind(**bound)
