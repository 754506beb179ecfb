"""Each gateway's allowlist: the rules of access compiled for the moments the server is out of reach.

:func:`build_allowlists` reads, in a handful of queries for the whole site (not per gateway,
nor per badge), what :func:`server.access.decide` reads on a tap, and says for every
gateway of the site: its machines (and whether a manager locked them out), and one entry
per active badge of an active member who may use at least one of them at some level, or
who is a manager. A machine that asks for a second factor (docs/security.md, "Badges") is
listed but granted to nobody: the confirmation is checked by the server, so offline the
gateway refuses it as ``not_certified``. Validity follows :func:`server.training.expiry.standing`, the one
definition the online decision uses too; a prepaid member's minutes follow
:func:`server.billing.prepaid.prepaid_allowance`, as at the machine.

A grant's ``until_ms`` is when the certifications behind it stop counting at that level:
the earliest, over the skills the machine requires, of the latest end among the member's
best-level certifications in the skill, by date or by disuse (the disuse deadline is
known: the last use is in the database). A grant may therefore lapse offline while a
lower-level certification would still have let the member in: the gateway errs towards
refusing.

Versions are issued by :func:`issue`: one compare-and-set UPDATE on the gateway's row,
committed before the snapshot is signed, so no version is ever issued twice, by two server
processes or across restarts, and a version is issued only by a process that saw the one
before it.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from protocol.allowlist import Allowlist, AllowlistEntry, AllowlistGrant, AllowlistMachine
from protocol.messages import CertificationLevel
from server.billing.invoices import PayerKind
from server.billing.periods import workshop_day
from server.billing.prepaid import prepaid_allowance
from server.billing.store import auxiliary_of, price_version_of
from server.clock import to_ms
from server.db import rowcount, table
from server.models import (
    LEVEL_RANK,
    Badge,
    BillingSettings,
    Certification,
    Gateway,
    Machine,
    Member,
    MemberStatus,
    Organisation,
    PostingRow,
    PriceList,
    PriceVersionRow,
    Skill,
    machine_skills,
)
from server.training.expiry import last_use_if_disuse, standing

log = logging.getLogger(__name__)

NAME_MAX = 120  # AllowlistEntry.member_name

_gateways = table(Gateway).c
_machines = table(Machine).c
_badges = table(Badge).c
_members = table(Member).c
_skills = table(Skill).c
_certifications = table(Certification).c
_required = machine_skills.c
_postings = table(PostingRow).c
_settings = table(BillingSettings).c
_versions = table(PriceVersionRow).c
_lists = table(PriceList).c
_orgs = table(Organisation).c

# The site's gateways, their allowlist state, and their machines (none: one row of nulls).
_GATEWAYS = (
    sa.select(
        _gateways.id,
        _gateways.slug,
        _gateways.allowlist_version,
        _gateways.allowlist_digest,
        _gateways.allowlist_issued_at,
        _machines.id,
        _machines.slug,
        _machines.locked_out,
        _machines.lockout_reason,
        _machines.machine_class,
        _machines.second_factor,
    )
    .select_from(table(Gateway).outerjoin(table(Machine), _machines.gateway_id == _gateways.id))
    .where(_gateways.site == sa.bindparam("site"))
    .order_by(_gateways.slug, _machines.slug)
)

_REQUIRED = sa.select(_required.machine_id, _required.skill_id).where(
    _required.machine_id.in_(sa.bindparam("machines", expanding=True))
)

# Every active badge of an active member, with each of the member's certifications that
# may count (unrevoked, not recorded as lapsed) in a skill some machine here requires (none:
# one row of nulls), and for a skill with a disuse period the member's last use of it.
_HOLDERS = (
    sa.select(
        _badges.uid,
        _members.id,
        _members.name,
        _members.is_manager,
        _members.prepaid,
        _certifications.id,
        _certifications.skill_id,
        _certifications.level,
        _certifications.granted_at,
        _certifications.expires_at,
        _skills.disuse_months,
        last_use_if_disuse(_members.id, _skills.id, _skills.disuse_months),
    )
    .select_from(
        table(Badge)
        .join(table(Member), _members.id == _badges.member_id)
        .outerjoin(
            table(Certification),
            sa.and_(
                _certifications.member_id == _members.id,
                _certifications.revoked_at.is_(None),
                _certifications.lapsed_at.is_(None),
                _certifications.skill_id.in_(sa.bindparam("skills", expanding=True)),
            ),
        )
        .outerjoin(table(Skill), _skills.id == _certifications.skill_id)
    )
    .where(_badges.active.is_(True), _members.status == MemberStatus.ACTIVE)
    .order_by(_badges.uid)
)

# The prepaid side, as server.billing.at_machine reads it for one member and machine,
# here for every prepaid member and machine at once.
_BILLING_SETTINGS = (
    sa.select(_settings.minimum_balance_cents, _settings.default_price_list, _settings.partner_price_list)
    .order_by(_settings.id.desc())
    .limit(1)
)
_BALANCES = (
    sa.select(_postings.auxiliary, sa.func.sum(_postings.debit_cents - _postings.credit_cents))
    .where(
        _postings.account == "411000", _postings.auxiliary.in_(sa.bindparam("auxiliaries", expanding=True))
    )
    .group_by(_postings.auxiliary)
)
_PRICE_LISTS_OF = (
    sa.select(
        _members.id,
        sa.func.coalesce(_orgs.price_list_id, _members.price_list_id),
        _members.partner_association,
    )
    .select_from(table(Member).outerjoin(table(Organisation), _orgs.id == _members.organisation_id))
    .where(_members.id.in_(sa.bindparam("members", expanding=True)))
)
_PRICES = (
    sa.select(_lists.code.label("list_code"), _lists.id.label("list_id"), table(PriceVersionRow))
    .select_from(table(PriceVersionRow).join(table(PriceList), _lists.id == _versions.price_list_id))
    .where(
        sa.or_(
            _versions.machine_id.in_(sa.bindparam("machines", expanding=True)),
            _versions.machine_class.in_(sa.bindparam("classes", expanding=True)),
        ),
        _versions.valid_from <= sa.bindparam("day"),
        sa.or_(_versions.valid_until.is_(None), _versions.valid_until > sa.bindparam("day")),
    )
    .order_by(_versions.valid_from)
)


@dataclass(frozen=True, slots=True)
class _Machine:
    id: int
    slug: str
    locked_out: bool
    lockout_reason: str | None
    machine_class: str
    second_factor: bool


@dataclass(frozen=True, slots=True)
class Issued:
    """What the database says of a gateway's last snapshot."""

    gateway_id: int
    slug: str
    version: int
    digest: str | None
    issued_at: datetime | None


_Level = tuple[str, int | None]
"""What a member may do on a machine: level, until (epoch ms)."""
_GrantRow = tuple[str, str, int | None]
"""A grant as plain data: machine, level, until (epoch ms)."""
_EntryRow = tuple[str, int, str, bool, tuple[_GrantRow, ...], int | None]
"""An entry as plain data: badge, member id, name, manager, grants, max minutes."""
_MachineRow = tuple[str, bool, str | None]
"""A machine as plain data: id, locked out, lockout reason."""


@dataclass(frozen=True, slots=True)
class Content:
    """A gateway's snapshot without its version and times, as plain data; ``digest`` identifies it.

    Recomputed every few seconds, and only turned into messages when it is published.
    """

    machines: tuple[_MachineRow, ...]
    entries: tuple[_EntryRow, ...]
    digest: str

    @classmethod
    def of(cls, machines: tuple[_MachineRow, ...], entries: tuple[_EntryRow, ...]) -> Content:
        # The repr of tuples of str, int, bool and None is exact and stable.
        digest = hashlib.sha256(repr((machines, entries)).encode()).hexdigest()
        return cls(machines, entries, digest)

    def snapshot(
        self, site: str, gateway: str, version: int, issued_at: datetime, ttl: timedelta
    ) -> Allowlist:
        return Allowlist(
            site=site,
            gateway=gateway,
            version=version,
            issued_at_ms=to_ms(issued_at),
            expires_at_ms=to_ms(issued_at + ttl),
            machines=[
                AllowlistMachine(machine=machine, locked_out=locked_out, lockout_reason=reason)
                for machine, locked_out, reason in self.machines
            ],
            entries=[
                AllowlistEntry(
                    badge=badge,
                    member_id=member_id,
                    member_name=name,
                    manager=manager,
                    grants=[
                        AllowlistGrant(machine=machine, level=CertificationLevel(level), until_ms=until)
                        for machine, level, until in grants
                    ],
                    max_minutes=max_minutes,
                )
                for badge, member_id, name, manager, grants, max_minutes in self.entries
            ],
        )


@dataclass(frozen=True, slots=True)
class Compiled:
    """One gateway's content, and the state of its last issue."""

    issued: Issued
    content: Content


@dataclass
class _Holder:
    member_id: int
    name: str
    manager: bool
    prepaid: bool
    badges: list[str]
    valid: dict[int, list[tuple[int, datetime | None]]]
    """Skill id -> (level rank, end) of each of the member's valid certifications in it."""
    read: set[int]
    """The certifications already judged: the member's rows repeat them once per badge."""
    grades: dict[int, tuple[int, int | None]]
    """Skill id -> the best level rank the member holds in it, and when that ends (epoch ms)."""


_SUPERVISED = LEVEL_RANK[CertificationLevel.SUPERVISED]
_TRAINER = LEVEL_RANK[CertificationLevel.TRAINER]


def build_allowlists(
    db: Session, site: str, now: datetime, *, gateways: Collection[str] | None = None
) -> dict[str, Compiled]:
    """The content of every gateway of ``site`` (or of those in ``gateways``) at ``now``, by slug."""
    connection = db.connection()
    machines_of: dict[str, list[_Machine]] = {}
    issued: dict[str, Issued] = {}
    for row in connection.execute(_GATEWAYS, {"site": site}):
        gateway_id, slug, version, digest, issued_at, machine_id, *machine = row
        if gateways is not None and slug not in gateways:
            continue
        if slug not in issued:
            issued[slug] = Issued(gateway_id, slug, int(version), digest, issued_at)
            machines_of[slug] = []
        if machine_id is not None:
            machines_of[slug].append(_Machine(machine_id, *machine))
    if not issued:
        return {}
    every_machine = [machine for listed in machines_of.values() for machine in listed]
    required: dict[int, set[int]] = defaultdict(set)
    if every_machine:
        for machine_id, skill_id in connection.execute(
            _REQUIRED, {"machines": [machine.id for machine in every_machine]}
        ):
            required[machine_id].add(skill_id)
    skills = sorted({skill for needed in required.values() for skill in needed})
    holders = _holders(connection.execute(_HOLDERS, {"skills": skills}), now)

    # Who holds each skill: a machine's grants start from the rarest skill it requires.
    holding: dict[int, list[_Holder]] = defaultdict(list)
    for holder in holders:
        for skill in holder.grades:
            holding[skill].append(holder)
    # Machines requiring the same skills grant the same: judged once per set of skills.
    judged: dict[frozenset[int], dict[int, _Level]] = {}
    for needed in {frozenset(required[machine.id]) for machine in every_machine}:
        judged[needed] = _levels(needed, holders, holding)
    levels = {machine.id: judged[frozenset(required[machine.id])] for machine in every_machine}
    prepaid_members = {holder.member_id for holder in holders if holder.prepaid}
    minutes = _prepaid_minutes(connection, prepaid_members, every_machine, now) if prepaid_members else {}
    return {
        slug: Compiled(issued[slug], _content(machines, holders, levels, minutes))
        for slug, machines in machines_of.items()
    }


def _content(
    machines: list[_Machine],
    holders: list[_Holder],
    levels: dict[int, dict[int, _Level]],
    minutes: dict[tuple[int, int], int | None],
) -> Content:
    """One gateway's snapshot content, from what every holder may do on each of its machines."""
    entries: list[_EntryRow] = []
    for holder in holders:
        member = holder.member_id
        granted = tuple(
            (machine.slug, *found)
            for machine in machines
            # A second factor is confirmed with the server: offline, nobody is granted it.
            if not machine.second_factor and (found := levels[machine.id].get(member)) is not None
        )
        if not granted and not holder.manager:
            continue
        max_minutes = None
        if holder.prepaid:
            usable = {machine for machine, _, _ in granted}
            max_minutes = _least(
                minutes.get((member, machine.id))
                for machine in machines
                if not machine.locked_out and (holder.manager or machine.slug in usable)
            )
        name = holder.name[:NAME_MAX]
        entries.extend((badge, member, name, holder.manager, granted, max_minutes) for badge in holder.badges)
    entries.sort()
    listed = tuple(
        (machine.slug, machine.locked_out, machine.lockout_reason if machine.locked_out else None)
        for machine in machines
    )
    return Content.of(listed, tuple(entries))


def build_allowlist(db: Session, site: str, gateway: str, now: datetime) -> Compiled | None:
    """The content of one gateway; None when ``site`` has no such gateway."""
    return build_allowlists(db, site, now, gateways={gateway}).get(gateway)


def _holders(rows: Iterable[Any], now: datetime) -> list[_Holder]:
    """Every candidate badge holder, with their valid certifications (:data:`_HOLDERS` rows)."""
    by_member: dict[int, _Holder] = {}
    for row in rows:
        uid, member_id, name, manager, prepaid, certification_id, skill_id, level = row[:8]
        granted_at, expires_at, disuse_months, last_used = row[8:]
        holder = by_member.get(member_id)
        if holder is None:
            holder = by_member[member_id] = _Holder(member_id, name, manager, prepaid, [], {}, set(), {})
        if uid not in holder.badges:
            holder.badges.append(uid)
        if certification_id is None or certification_id in holder.read:
            continue
        holder.read.add(certification_id)
        found = standing(
            granted_at=granted_at,
            expires_at=expires_at,
            lapsed_at=None,
            disuse_months=disuse_months,
            last_used=last_used,
            now=now,
        )
        if found.valid:
            holder.valid.setdefault(skill_id, []).append((LEVEL_RANK[level], found.ends_at))
    for holder in by_member.values():
        for skill, certifications in holder.valid.items():
            best = max(rank for rank, _ in certifications)
            ends = [end for rank, end in certifications if rank == best]
            # The best level lasts as long as the last of its certifications; None: for good.
            holder.grades[skill] = (
                best,
                None if None in ends else to_ms(max(e for e in ends if e is not None)),
            )
    return list(by_member.values())


def _levels(
    required: frozenset[int], holders: list[_Holder], holding: dict[int, list[_Holder]]
) -> dict[int, _Level]:
    """Member id -> (level, until) on a machine requiring ``required``, as :func:`server.access.decide`
    would judge it now.

    Granted when every skill required has a valid certification (none required: everyone,
    autonomous); at the lowest of those skills' best levels, until the first of them ends.
    """
    if not required:
        return {holder.member_id: (CertificationLevel.AUTONOMOUS.value, None) for holder in holders}
    rarest = min(required, key=lambda skill: len(holding.get(skill, ())))
    found: dict[int, _Level] = {}
    for holder in holding.get(rarest, ()):
        grades = holder.grades
        if not all(skill in grades for skill in required):
            continue
        ranks = [grades[skill][0] for skill in required]
        ends = [end for skill in required if (end := grades[skill][1]) is not None]
        if _SUPERVISED in ranks:
            level = CertificationLevel.SUPERVISED
        elif all(rank == _TRAINER for rank in ranks):
            level = CertificationLevel.TRAINER
        else:
            level = CertificationLevel.AUTONOMOUS
        found[holder.member_id] = (level.value, min(ends) if ends else None)
    return found


def _least(values: Iterable[int | None]) -> int | None:
    """The smallest limit; None (no limit) only when none of ``values`` is a limit."""
    limits = [value for value in values if value is not None]
    return min(limits) if limits else None


def _prepaid_minutes(
    connection: sa.Connection, members: set[int], machines: list[_Machine], now: datetime
) -> dict[tuple[int, int], int | None]:
    """(member, machine) -> the minutes the balance pays for there (0: refused; None: no limit).

    The same rules as :func:`server.billing.at_machine.prepaid_verdict`, in four queries
    for every member and machine instead of one per pair.
    """
    ordered = sorted(members)
    settings = connection.execute(_BILLING_SETTINGS).first()
    minimum = int(settings[0] or 0) if settings is not None else 0
    default_list = settings[1] if settings is not None else None
    partner_list = settings[2] if settings is not None else None
    auxiliaries = {auxiliary_of(PayerKind.MEMBER, member): member for member in ordered}
    owed = {
        auxiliaries[auxiliary]: int(total or 0)
        for auxiliary, total in connection.execute(_BALANCES, {"auxiliaries": sorted(auxiliaries)})
    }
    lists = {
        member: (own, partner)
        for member, own, partner in connection.execute(_PRICE_LISTS_OF, {"members": ordered})
    }
    prices = connection.execute(
        _PRICES,
        {
            "machines": [machine.id for machine in machines],
            "classes": sorted({machine.machine_class for machine in machines}),
            "day": workshop_day(now),
        },
    ).all()
    found: dict[tuple[int, int], int | None] = {}
    for member in ordered:
        credit = -owed.get(member, 0)
        if credit < minimum:
            for machine in machines:
                found[member, machine.id] = 0
            continue
        own_list_id, partner = lists.get(member, (None, None))
        wanted_code = partner_list if partner else default_list
        for machine in machines:
            candidates = [
                row
                for row in prices
                if (row.machine_id == machine.id or row.machine_class == machine.machine_class)
                and (row.list_id == own_list_id if own_list_id is not None else row.list_code == wanted_code)
            ]
            if not candidates:
                found[member, machine.id] = None
                continue
            # A machine's own price wins over its class's; the latest start wins among them.
            chosen = max(candidates, key=lambda row: (row.machine_id is not None, row.valid_from))
            version = price_version_of(
                chosen, str(chosen.list_code), machine.slug if chosen.machine_id is not None else None
            )
            allowance = prepaid_allowance(max(credit, 0), version, minimum_balance_cents=minimum)
            found[member, machine.id] = allowance.minutes if allowance.allowed else 0
    return found


def issue(db: Session, site: str, compiled: Compiled, now: datetime, ttl: timedelta) -> Allowlist | None:
    """The next version of the snapshot, recorded as issued (committed); None if another issued one first.

    The UPDATE only succeeds if the gateway's version is still the one ``compiled`` was
    read with: a process that lost the race publishes nothing and looks again next time.
    """
    last = compiled.issued
    try:
        updated = rowcount(
            db.execute(
                sa.update(table(Gateway))
                .where(_gateways.id == last.gateway_id, _gateways.allowlist_version == last.version)
                .values(
                    allowlist_version=last.version + 1,
                    allowlist_digest=compiled.content.digest,
                    allowlist_issued_at=now,
                )
            )
        )
        db.commit()
    except BaseException:
        db.rollback()
        raise
    if updated != 1:
        log.debug("allowlist of %s: version %d was superseded by another server", last.slug, last.version)
        return None
    return compiled.content.snapshot(site, last.slug, last.version + 1, now, ttl)


def is_due(
    compiled: Compiled, now: datetime, ttl: timedelta, *, forced_since: datetime | None = None
) -> bool:
    """Whether the gateway needs a new snapshot: its content changed, half its life has passed,
    or one was asked for at ``forced_since`` (a start, a gateway's birth) and none was issued since."""
    last = compiled.issued
    if last.version == 0 or last.issued_at is None or last.digest != compiled.content.digest:
        return True
    if now - last.issued_at >= ttl / 2:
        return True
    return forced_since is not None and last.issued_at < forced_since
