"""The database schema. Changes go through a new Alembic migration in ``migrations/versions``."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text
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

    key_trail: Mapped[list["KeyPress"]] = relationship(
        back_populates="call", order_by="KeyPress.seq", cascade="all, delete-orphan")
    events: Mapped[list["CallEvent"]] = relationship(
        back_populates="call", order_by="CallEvent.id", cascade="all, delete-orphan")


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
