"""Machines behind a relay, and the skills each one requires."""

from sqlalchemy import Column, ForeignKey, String, Table, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.db import Base
from server.models.gateway import Gateway
from server.models.skill import Skill

machine_skills = Table(
    "machine_skills",
    Base.metadata,
    Column("machine_id", ForeignKey("machines.id", ondelete="CASCADE"), primary_key=True),
    # "Which machines need this skill?" is asked too: the key only serves machine_id first.
    Column("skill_id", ForeignKey("skills.id"), primary_key=True, index=True),
)


class Machine(Base):
    """``slug`` is the machine's id in topics and payloads (a protocol ``Ident``)."""

    __tablename__ = "machines"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    machine_class: Mapped[str] = mapped_column(String(40))
    # Null while the machine is wired to no gateway (in storage, being repaired).
    gateway_id: Mapped[int | None] = mapped_column(ForeignKey("gateways.id"), index=True)
    locked_out: Mapped[bool] = mapped_column(default=False)
    lockout_reason: Mapped[str | None] = mapped_column(String(200))
    second_factor: Mapped[bool] = mapped_column(default=False, server_default=false())
    """A badge alone is not enough: the member confirms in the web app first (docs/security.md,
    "Badges"); never granted from the offline allowlist."""

    gateway: Mapped[Gateway | None] = relationship(back_populates="machines")
    required_skills: Mapped[list[Skill]] = relationship(secondary=machine_skills, order_by=Skill.slug)
