"""Errors a user, a caller or a remote system can cause: a stable id and a plain message.

Bugs stay ordinary exceptions. Only the edges (CLI, HTTP) map ids to exit codes or statuses.
"""
from __future__ import annotations


class UserError(Exception):
    """An error with a stable id (e.g. ``config.unknown_key``) and a message for a person."""

    def __init__(self, error_id: str, message: str) -> None:
        super().__init__(f"{error_id}: {message}")
        self.id = error_id
        self.message = message
