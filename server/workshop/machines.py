"""Gateways and the machines wired to them: the skills a machine requires, its second factor
and its lockouts."""

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.audit import audit
from server.models import Gateway, Machine, SecondFactorConfirmation
from server.workshop.errors import AlreadyExists, InvalidValue, NotFound
from server.workshop.records import added, check_slug, utc, when
from server.workshop.skills import get_skill


def add_gateway(db: Session, slug: str, *, site: str, name: str = "") -> Gateway:
    """Register a gateway for ``site``: until then the server refuses to answer it."""
    check_slug(slug, "gateway")
    check_slug(site, "site")
    if db.scalar(sa.select(Gateway.id).where(Gateway.slug == slug)) is not None:
        raise AlreadyExists(f"gateway {slug} exists already")
    return added(db, Gateway(slug=slug, site=site, name=name or slug))


def get_gateway(db: Session, slug: str) -> Gateway:
    gateway = db.scalar(sa.select(Gateway).where(Gateway.slug == slug))
    if gateway is None:
        raise NotFound(f"no gateway {slug}")
    return gateway


def add_machine(
    db: Session,
    slug: str,
    name: str,
    *,
    machine_class: str,
    gateway: str | None = None,
    required_skills: Iterable[str] = (),
) -> Machine:
    """A machine, wired to ``gateway`` (a slug) and requiring ``required_skills`` (slugs)."""
    check_slug(slug, "machine")
    if db.scalar(sa.select(Machine.id).where(Machine.slug == slug)) is not None:
        raise AlreadyExists(f"machine {slug} exists already")
    # Sorted as the relationship reads them back, so the new object looks the same as a loaded one.
    skills = sorted((get_skill(db, skill) for skill in set(required_skills)), key=lambda skill: skill.slug)
    return added(
        db,
        Machine(
            slug=slug,
            name=name,
            machine_class=machine_class,
            gateway=get_gateway(db, gateway) if gateway is not None else None,
            required_skills=skills,
        ),
    )


def get_machine(db: Session, slug: str) -> Machine:
    machine = db.scalar(sa.select(Machine).where(Machine.slug == slug))
    if machine is None:
        raise NotFound(f"no machine {slug}")
    return machine


def set_second_factor(
    db: Session, slug: str, second_factor: bool, *, by: int | None = None, now: datetime | None = None
) -> Machine:
    """Ask (or stop asking) for a confirmation in the web app on top of the badge (docs/security.md, "Badges")."""
    machine = get_machine(db, slug)
    machine.second_factor = second_factor
    db.flush()
    audit(
        db, "machine.second_factor", "machine", machine.slug, actor_id=by, at=when(now),
        details={"second_factor": second_factor},
    )  # fmt: skip
    return machine


def confirm_at_machine(db: Session, member_id: int, slug: str, *, now: datetime) -> Machine:
    """Record a member's "I am at this machine" (signed in to the web app): their badge is then
    granted on it once, within the second-factor window (:func:`server.access.decide`)."""
    machine = get_machine(db, slug)
    if not machine.second_factor:
        raise InvalidValue(f"machine {slug} asks for no confirmation")
    db.add(SecondFactorConfirmation(member_id=member_id, machine_id=machine.id, confirmed_at=utc(now, "now")))
    db.flush()
    return machine


def set_lockout(
    db: Session,
    slug: str,
    locked_out: bool,
    reason: str | None = None,
    *,
    by: int | None = None,
    now: datetime | None = None,
) -> Machine:
    """Lock a machine out (broken, being serviced) or back in; badge taps are refused meanwhile."""
    machine = get_machine(db, slug)
    machine.locked_out = locked_out
    machine.lockout_reason = reason if locked_out else None
    db.flush()
    audit(
        db, "machine.lockout" if locked_out else "machine.lockout_lift", "machine", machine.slug, actor_id=by,
        at=when(now), details={"reason": machine.lockout_reason},
    )  # fmt: skip
    return machine
