"""Errors the core raises when an event is refused: a stable id and a plain message.

They are :class:`acd.errors.UserError` s, so the edges (HTTP, CLI) map them like any other.
When a core method raises one of them, the core's state is unchanged and no decision was
made. Bugs stay ordinary exceptions.

Stable ids:

=============================  =======================================================
``agent.illegal_transition``   the agent's state machine has no move for this event
``agent.not_logged_in``        the agent must log in first (state ``offline``)
``agent.already_logged_in``    login while logged in
``agent.not_a_manual_state``   set_agent_state with ringing, talking or wrap-up
``agent.endpoint_in_use``      another logged-in agent is bound to this endpoint
``agent.endpoint_missing``     login without an endpoint
``call.illegal_transition``    the call's state machine has no move for this event
``call.unknown``               no such call (never seen, or ended long ago)
``call.duplicate``             call_arrived with an id already in use
``call.callback_disabled``     the call's skill group does not offer callbacks
``call.callback_number_missing``  callback requested without a number
``group.unknown``              no skill group of that name
``core.config_invalid``        the skill group configuration is inconsistent
``core.restore_invalid``       a restore_* call that cannot be honoured
=============================  =======================================================
"""
from __future__ import annotations

from acd.errors import UserError


class AcdError(UserError):
    """Base of the core's errors. ``id`` is stable, ``message`` is for a person."""


class ConfigInvalid(AcdError):
    def __init__(self, message: str) -> None:
        super().__init__("core.config_invalid", message)


class GroupHasCalls(AcdError):
    def __init__(self, group: str, calls: int) -> None:
        super().__init__("group.has_calls", f"Skill group {group!r} has {calls} call(s) "
                                            "waiting or connected: it can go once they end.")
        self.group = group


class AgentLoggedIn(AcdError):
    def __init__(self, agent_id: str, state: str) -> None:
        super().__init__("agent.logged_in", f"Agent {agent_id!r} is logged in ({state}): "
                                            "log them out first.")
        self.agent_id = agent_id


class RestoreInvalid(AcdError):
    def __init__(self, message: str) -> None:
        super().__init__("core.restore_invalid", message)


class UnknownGroup(AcdError):
    def __init__(self, group: str) -> None:
        super().__init__("group.unknown", f"There is no skill group {group!r}.")
        self.group = group


class UnknownCall(AcdError):
    def __init__(self, call_id: str) -> None:
        super().__init__("call.unknown", f"There is no call {call_id!r}.")
        self.call_id = call_id


class DuplicateCall(AcdError):
    def __init__(self, call_id: str) -> None:
        super().__init__("call.duplicate", f"A call with id {call_id!r} already exists.")
        self.call_id = call_id


class CallbackDisabled(AcdError):
    def __init__(self, call_id: str, group: str) -> None:
        super().__init__("call.callback_disabled",
                         f"Call {call_id!r}: skill group {group!r} does not offer callbacks.")


class CallbackNumberMissing(AcdError):
    def __init__(self, call_id: str) -> None:
        super().__init__("call.callback_number_missing",
                         f"Call {call_id!r}: a callback needs a number to call.")


class EndpointInUse(AcdError):
    def __init__(self, endpoint: str, agent_id: str) -> None:
        super().__init__("agent.endpoint_in_use",
                         f"Endpoint {endpoint!r} is already used by agent {agent_id!r}.")


class EndpointMissing(AcdError):
    def __init__(self, agent_id: str) -> None:
        super().__init__("agent.endpoint_missing",
                         f"Agent {agent_id!r}: logging in needs a phone endpoint.")


class NotAManualState(AcdError):
    def __init__(self, agent_id: str, state: str) -> None:
        super().__init__("agent.not_a_manual_state",
                         f"Agent {agent_id!r}: {state!r} is set by the system, not by hand "
                         "(choose idle, busy, break, meeting or offline).")


class IllegalTransition(AcdError):
    """A state machine has no move for ``event`` in ``state``. The message names both."""

    what = "object"

    def __init__(self, error_id: str, subject: str, state: str, event: str,
                 message: str | None = None) -> None:
        super().__init__(error_id, message or (
            f"{self.what.capitalize()} {subject!r}: event {event!r} is not allowed "
            f"in state {state!r}."))
        self.subject = subject
        self.state = state
        self.event = event


class IllegalAgentTransition(IllegalTransition):
    what = "agent"

    def __init__(self, agent_id: str, state: str, event: str,
                 error_id: str = "agent.illegal_transition", message: str | None = None) -> None:
        super().__init__(error_id, agent_id, state, event, message)


class NotLoggedIn(IllegalAgentTransition):
    def __init__(self, agent_id: str, state: str, event: str) -> None:
        super().__init__(agent_id, state, event, "agent.not_logged_in",
                         f"Agent {agent_id!r} is not logged in "
                         f"(state {state!r}, event {event!r}).")


class AlreadyLoggedIn(IllegalAgentTransition):
    def __init__(self, agent_id: str, state: str, event: str) -> None:
        super().__init__(agent_id, state, event, "agent.already_logged_in",
                         f"Agent {agent_id!r} is already logged in "
                         f"(state {state!r}, event {event!r}).")


class IllegalCallTransition(IllegalTransition):
    what = "call"

    def __init__(self, call_id: str, state: str, event: str) -> None:
        super().__init__("call.illegal_transition", call_id, state, event)
