"""The database schema. Changes go through a new Alembic migration in ``migrations/versions``."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Call(Base):
    """One call as the caller lived it: arrival, IVR, queue, agent legs, and one end reason."""

    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uniqueid: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    linkedid: Mapped[str | None] = mapped_column(String(64), index=True)
    channel: Mapped[str] = mapped_column(String(255))
    caller_number: Mapped[str] = mapped_column(String(256), default="")
    caller_name: Mapped[str] = mapped_column(String(256), default="")
    did: Mapped[str] = mapped_column(String(64), default="")
    skill_group: Mapped[str | None] = mapped_column(String(64))
    verification: Mapped[str | None] = mapped_column(String(16))
    verification_method: Mapped[str | None] = mapped_column(String(32))
    arrived_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    end_reason: Mapped[str | None] = mapped_column(String(32), index=True)
    direction: Mapped[str | None] = mapped_column(String(8))      # None: inbound; "outbound"
    rating: Mapped[int | None] = mapped_column(Integer)           # the caller's survey: 1-5
    rated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    key_trail: Mapped[list["KeyPress"]] = relationship(
        back_populates="call", order_by="KeyPress.seq", cascade="all, delete-orphan")
    events: Mapped[list["CallEvent"]] = relationship(
        back_populates="call", order_by="CallEvent.id", cascade="all, delete-orphan")


class CallLeg(Base):
    """One agent's part of a call (migration 0003): the call's first agent, a transfer or
    consult target, an outbound caller. Talk and hold seconds when it ends; wrap-up seconds
    once the agent's wrap-up is over."""

    __tablename__ = "call_legs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    agent_id: Mapped[str] = mapped_column(String(40), index=True)
    role: Mapped[str] = mapped_column(String(16))  # answer, callback, transfer, consult, outbound
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    talk_seconds: Mapped[float] = mapped_column(Float)
    hold_seconds: Mapped[float] = mapped_column(Float)
    wrapup_seconds: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(String(32))  # why it ended: caller_hangup, transferred...


class KeyPress(Base):
    """One entry of the key trail: what the caller keyed in, and the IVR node it answered."""

    __tablename__ = "key_presses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    node: Mapped[str] = mapped_column(String(64))
    keys: Mapped[str] = mapped_column(String(256))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    call: Mapped[Call] = relationship(back_populates="key_trail")


class CallEvent(Base):
    """The call's timeline: ivr, queued, ringing, no_answer, answered, wrap_up, ended, ..."""

    __tablename__ = "call_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict] = mapped_column(JSON, default=dict)

    call: Mapped[Call] = relationship(back_populates="events")


class AgentStateChange(Base):
    """Every agent state change with its time, so occupancy can be computed. The newest row of
    an agent is where a restarted server takes them up again."""

    __tablename__ = "agent_state_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(40), index=True)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    previous: Mapped[str | None] = mapped_column(String(16))
    call_uniqueid: Mapped[str | None] = mapped_column(String(64))   # ringing, talking, wrap-up


class AgentPending(Base):
    """A state an agent asked for during a call, applied after it (``state`` None: none any
    more). The newest row of an agent is the truth; kept so that a restart keeps it."""

    __tablename__ = "agent_pending"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(40), index=True)
    state: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Customer(Base):
    """The customer directory that IVR flows verify callers against (``acd directory import``).
    ``phone`` holds digits only (a leading + kept); ``id_number`` is upper case."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_number: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    name: Mapped[str] = mapped_column(String(256), default="")
    phone: Mapped[str] = mapped_column(String(64), index=True, default="")
    id_number: Mapped[str] = mapped_column(String(64), index=True, default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# --- the web pages (migration 0005) ---------------------------------------------------------

class WebUser(Base):
    """A web login: an agent (bound to ``agent_id``), a supervisor or an admin. Passwords come
    from the configuration (or data/secrets.yaml) and are kept here as argon2 hashes only."""

    __tablename__ = "web_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(40), unique=True, index=True)
    role: Mapped[str] = mapped_column(String(16))
    agent_id: Mapped[str | None] = mapped_column(String(40))
    password_hash: Mapped[str] = mapped_column(String(255))
    # HMAC of the user and the configured password under the data folder's key: a start
    # tells an unchanged password without argon2 (acd.web.auth.check_key).
    password_check: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WebSession(Base):
    """A logged-in browser. The cookie holds a random token; only its SHA-256 is stored."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    username: Mapped[str] = mapped_column(String(40), index=True)
    role: Mapped[str] = mapped_column(String(16))
    agent_id: Mapped[str | None] = mapped_column(String(40))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    address: Mapped[str] = mapped_column(String(64), default="")


class AuditEntry(Base):
    """Who changed what, when: every state-changing web request, refused ones included."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    username: Mapped[str] = mapped_column(String(40))
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(128))
    target: Mapped[str] = mapped_column(String(255))
    status: Mapped[int] = mapped_column(Integer)
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    address: Mapped[str] = mapped_column(String(64), default="")


class CallNote(Base):
    """An agent's note on a call (one per agent and call)."""

    __tablename__ = "call_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_uniqueid: Mapped[str] = mapped_column(String(64))
    agent_id: Mapped[str] = mapped_column(String(40))
    text: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AgentHiddenCall(Base):
    """A call an agent took off their recent-calls list (the record itself stays)."""

    __tablename__ = "agent_hidden_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(40))
    call_uniqueid: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Recording(Base):
    """One agent's part of a call as a recording (migration 0007): started when the leg was
    bridged, finished (or failed) once Asterisk closed the file. ``name`` is the file's name
    while Asterisk writes it; ``path`` the finished WAV's, relative to the recordings folder.
    Linked to its leg by the call, the agent and the time (the leg is in ``call_legs``)."""

    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    agent_id: Mapped[str] = mapped_column(String(40), index=True)
    name: Mapped[str] = mapped_column(String(160), unique=True)
    status: Mapped[str] = mapped_column(String(16))    # recording, done, failed, deleted
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    path: Mapped[str | None] = mapped_column(String(200))
    seconds: Mapped[float | None] = mapped_column(Float)
    bytes: Mapped[int | None] = mapped_column(Integer)
    sha256: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(String(200))
    paused: Mapped[list] = mapped_column(JSON, default=list)   # [[from, to or null], ...] s


# --- history reports (migration 0008): facts kept beside the records -----------------------

class ReportDirty(Base):
    """A call whose report facts must be made again (it ended, a wrap-up or a rating came).
    The same call may be listed more than once; the indexer takes each once."""

    __tablename__ = "report_dirty"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(Integer, index=True)


class ReportOffer(Base):
    """One entry of a call into a skill group's queue, with its outcome (acd.reports.facts)."""

    __tablename__ = "report_offers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    bucket: Mapped[int] = mapped_column(Integer, index=True)   # UNIX s, 15-minute UTC start
    skill_group: Mapped[str] = mapped_column(String(64))
    number: Mapped[str] = mapped_column(String(64), default="")
    outcome: Mapped[str] = mapped_column(String(16))
    wait: Mapped[float] = mapped_column(Float)
    agent_id: Mapped[str | None] = mapped_column(String(40))
    within_sl: Mapped[int] = mapped_column(Integer)
    talk: Mapped[float] = mapped_column(Float)
    hold: Mapped[float] = mapped_column(Float)
    wrapup: Mapped[float] = mapped_column(Float)
    rating: Mapped[int | None] = mapped_column(Integer)
    verified: Mapped[int] = mapped_column(Integer)
    callback: Mapped[int] = mapped_column(Integer)


class ReportLeg(Base):
    """One agent's part of a call, with the transfers and consults they gave in it."""

    __tablename__ = "report_legs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    bucket: Mapped[int] = mapped_column(Integer, index=True)
    agent_id: Mapped[str] = mapped_column(String(40))
    skill_group: Mapped[str] = mapped_column(String(64), default="")
    role: Mapped[str] = mapped_column(String(16))
    talk: Mapped[float] = mapped_column(Float)
    hold: Mapped[float] = mapped_column(Float)
    wrapup: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(String(32))
    transfers_given: Mapped[int] = mapped_column(Integer)
    consults_given: Mapped[int] = mapped_column(Integer)


class ReportSum(Base):
    """The offers of a 15-minute bucket added up per skill group, dialled number or answering
    agent (``dim``: group, number, agent): made again from ``report_offers`` for each bucket
    the indexer touches, so a report over a year reads thousands of rows, not millions."""

    __tablename__ = "report_sums"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer)
    dim: Mapped[str] = mapped_column(String(8))
    key: Mapped[str] = mapped_column(String(64))
    offered: Mapped[int] = mapped_column(Integer)
    answered: Mapped[int] = mapped_column(Integer)
    abandoned: Mapped[int] = mapped_column(Integer)
    overflowed: Mapped[int] = mapped_column(Integer)
    sent: Mapped[int] = mapped_column(Integer)
    callbacks: Mapped[int] = mapped_column(Integer)
    within_sl: Mapped[int] = mapped_column(Integer)
    answer_wait: Mapped[float] = mapped_column(Float)
    wait: Mapped[float] = mapped_column(Float)
    wait_max: Mapped[float] = mapped_column(Float)
    talk: Mapped[float] = mapped_column(Float)
    hold: Mapped[float] = mapped_column(Float)
    wrapup: Mapped[float] = mapped_column(Float)
    ratings: Mapped[int] = mapped_column(Integer)
    satisfied: Mapped[int] = mapped_column(Integer)
    verified: Mapped[int] = mapped_column(Integer)


class ReportAgentTime(Base):
    """Seconds an agent spent in a state (break and meeting: with the reason) in a bucket."""

    __tablename__ = "report_agent_time"

    agent_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[str] = mapped_column(String(16), primary_key=True)
    reason: Mapped[str] = mapped_column(String(256), primary_key=True)
    seconds: Mapped[float] = mapped_column(Float)


class ReportAgentHour(Base):
    """An agent's figures in one UTC hour (migration 0012): their legs, the ratings of the
    calls they answered and their time in each state (``in_<state>``), made again from
    report_legs, report_sums (``dim`` agent) and report_agent_time whenever the indexer
    touches the hour; what reports by 60 minutes, day, week or month read in zones whole
    hours from UTC (a row per agent and hour, not per leg and quarter hour)."""

    __tablename__ = "report_agent_hours"

    agent_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    hour: Mapped[int] = mapped_column(Integer, primary_key=True, index=True)  # UNIX s, UTC
    calls_handled: Mapped[int] = mapped_column(Integer, default=0)
    transfers_taken: Mapped[int] = mapped_column(Integer, default=0)
    consults_taken: Mapped[int] = mapped_column(Integer, default=0)
    transfers_given: Mapped[int] = mapped_column(Integer, default=0)
    consults_given: Mapped[int] = mapped_column(Integer, default=0)
    outbound: Mapped[int] = mapped_column(Integer, default=0)
    talk: Mapped[float] = mapped_column(Float, default=0.0)
    hold: Mapped[float] = mapped_column(Float, default=0.0)
    wrapup: Mapped[float] = mapped_column(Float, default=0.0)
    ratings: Mapped[int] = mapped_column(Integer, default=0)
    satisfied: Mapped[int] = mapped_column(Integer, default=0)
    in_offline: Mapped[float] = mapped_column(Float, default=0.0)
    in_idle: Mapped[float] = mapped_column(Float, default=0.0)
    in_busy: Mapped[float] = mapped_column(Float, default=0.0)
    in_break: Mapped[float] = mapped_column(Float, default=0.0)
    in_meeting: Mapped[float] = mapped_column(Float, default=0.0)
    in_ringing: Mapped[float] = mapped_column(Float, default=0.0)
    in_talking: Mapped[float] = mapped_column(Float, default=0.0)
    in_wrapup: Mapped[float] = mapped_column(Float, default=0.0)


class ReportAgentReason(Base):
    """Seconds an agent spent with a break, meeting or busy reason in one UTC hour
    (migration 0012), made again with :class:`ReportAgentHour`."""

    __tablename__ = "report_agent_reasons"

    agent_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    hour: Mapped[int] = mapped_column(Integer, primary_key=True, index=True)
    reason: Mapped[str] = mapped_column(String(256), primary_key=True)
    seconds: Mapped[float] = mapped_column(Float)


class ReportAgentOpen(Base):
    """Each agent's current state as far as the indexer has read: counted when it ends."""

    __tablename__ = "report_agent_open"

    agent_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[float] = mapped_column(Float)      # UNIX s


class ReportMark(Base):
    """How far the indexer has read a table (``agent_state_changes``: the last row id)."""

    __tablename__ = "report_marks"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[int] = mapped_column(Integer)


class GroupMember(Base):
    """A skill-group membership in force (migration 0009; acd.memberships): seeded from
    config.yaml, changed on the admin page. ``level`` None: removed on the page."""

    __tablename__ = "group_members"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    skill_group: Mapped[str] = mapped_column(String(64))
    agent_id: Mapped[str] = mapped_column(String(40))
    level: Mapped[int | None] = mapped_column(Integer)
    seeded: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_by: Mapped[str] = mapped_column(String(40), default="")


class AdminEntry(Base):
    """An agent, skill group or web user in force (migration 0010; acd.admin_config): seeded
    from config.yaml, changed on the admin page. ``doc`` (JSON) None: removed on the page;
    ``seeded``: the entry as the file gave it when last seeded (None: made on the page)."""

    __tablename__ = "admin_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(64))
    doc: Mapped[str | None] = mapped_column(Text)
    seeded: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_by: Mapped[str] = mapped_column(String(40), default="")


class HaLease(Base):
    """The leader's lease (migration 0011; acd.leader): who holds it, the fencing token,
    when it expires (the database server's clock, epoch seconds)."""

    __tablename__ = "ha_lease"

    name: Mapped[str] = mapped_column(String(16), primary_key=True)
    holder: Mapped[str] = mapped_column(String(120))
    token: Mapped[int] = mapped_column(Integer)
    expires: Mapped[float] = mapped_column(Float)
