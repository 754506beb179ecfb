"""Skills that machines require and that members are certified in."""

from sqlalchemy import Column, ForeignKey, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.db import Base

skill_prerequisites = Table(
    "skill_prerequisites",
    Base.metadata,
    Column("skill_id", ForeignKey("skills.id", ondelete="CASCADE"), primary_key=True),
    # "Which skills build on this one?" is asked too: the key only serves skill_id first.
    Column("prerequisite_id", ForeignKey("skills.id"), primary_key=True, index=True),
)
"""A skill may be certified only to a member who already holds each of its prerequisites."""


class Skill(Base):
    """E.g. "industrial-sewing", "overlocker", "fdm-printer"."""

    __tablename__ = "skills"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    disuse_months: Mapped[int | None]
    """A certification in this skill lapses after this many months without a session on
    any machine requiring it (counted from the later of the last session and the grant).
    None: it never lapses by disuse."""

    prerequisites: Mapped[list["Skill"]] = relationship(
        secondary=skill_prerequisites,
        primaryjoin=lambda: Skill.id == skill_prerequisites.c.skill_id,
        secondaryjoin=lambda: Skill.id == skill_prerequisites.c.prerequisite_id,
        order_by=lambda: Skill.slug,
    )
