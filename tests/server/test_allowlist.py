"""The allowlist snapshot grants exactly what the online decision grants, in a few queries."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from controller.config import OfflinePolicy
from controller.offline import decide as decide_offline
from protocol.allowlist import Allowlist, AllowlistEntry, AllowlistGrant
from protocol.messages import AccessReply, AccessRequest, CertificationLevel, Reason
from server import workshop as manage
from server.access import decide
from server.allowlist import Compiled, build_allowlist, build_allowlists, is_due, issue
from server.billing.books import PaymentKind, record_payment
from server.billing.invoices import PayerKind
from server.billing.store import add_price_version
from server.clock import to_ms
from server.models import BillingSettings, Gateway, Machine, Member, UsageSession
from tests.server.conftest import NOW, Workshop

TTL = timedelta(days=7)
UNKNOWN_BADGE = "FFFF0000"


@dataclass(frozen=True)
class Shop:
    """The shared workshop, plus who the allowlist has to tell apart."""

    base: Workshop
    manager: int
    manager_badge: str  # a manager, certified for nothing
    pat_badge: str  # prepaid, below the minimum balance, certified for sewing
    quinn: int
    quinn_badge: str  # prepaid with 10 €, certified for sewing
    zoe: int
    zoe_badges: tuple[str, str]  # two badges; sewing as a trainer until +10 d, autonomous until +30 d
    yann: int
    yann_badge: str  # embroidery (6 months' disuse), last used a month ago
    xavier_badge: str  # embroidery, never used for 7 months: lapsed by disuse, not yet swept
    last_use: datetime

    @property
    def badges(self) -> list[str]:
        w = self.base
        return [
            w.alice_badge,
            w.bob_badge,
            w.carol_badge,
            w.dave_badge,
            w.erin_badge,
            w.trainer_badge,
            self.manager_badge,
            self.pat_badge,
            self.quinn_badge,
            *self.zoe_badges,
            self.yann_badge,
            self.xavier_badge,
            UNKNOWN_BADGE,
        ]


def seed(db: Session, w: Workshop) -> Shop:
    manage.add_skill(db, "embroidery", "Embroidery", disuse_months=6)
    manage.add_machine(
        db, "embroidery-1", "Brother PR1055X", machine_class="embroidery", gateway=w.gateway,
        required_skills=["embroidery"],
    )  # fmt: skip
    manager = manage.add_member(db, "Mia Manager", badge="3A4A0001", now=NOW).id
    manage.set_member_roles(db, manager, manager=True)
    pat = manage.add_member(db, "Pat Prepaid", badge="9A1D0001", now=NOW).id
    quinn = manage.add_member(db, "Quinn Prepaid", badge="9A1D0002", now=NOW).id
    for member in (pat, quinn):
        found = db.get(Member, member)
        assert found is not None
        found.prepaid = True
        manage.grant_certification(db, member, "industrial-sewing", now=NOW)
    zoe = manage.add_member(db, "Zoe Double", badge="20E00001", now=NOW).id
    manage.enrol_badge(db, zoe, "20E00002", now=NOW)
    manage.grant_certification(db, zoe, "industrial-sewing", expires_at=NOW + timedelta(days=30), now=NOW)
    manage.grant_certification(
        db, zoe, "industrial-sewing", level=CertificationLevel.TRAINER, expires_at=NOW + timedelta(days=10),
        now=NOW,
    )  # fmt: skip
    manage.grant_certification(db, zoe, "overlocker", level=CertificationLevel.TRAINER, now=NOW)
    yann = manage.add_member(db, "Yann Brodeur", badge="7A770001", now=NOW).id
    manage.grant_certification(db, yann, "embroidery", now=NOW - timedelta(days=60))
    xavier = manage.add_member(db, "Xavier Oublie", badge="7A770002", now=NOW).id
    manage.grant_certification(db, xavier, "embroidery", now=NOW - timedelta(days=214))
    last_use = NOW - timedelta(days=31)
    embroidery = db.scalars(sa.select(Machine).where(Machine.slug == "embroidery-1")).one()
    db.add(
        UsageSession(
            session_id="yann-1", gateway_id=embroidery.gateway_id, machine_id=embroidery.id, member_id=yann,
            started_at=last_use, ended_at=last_use + timedelta(hours=1), unlocked_ms=3_600_000,
            running_ms=3_600_000, idle_ms=0, last_event_seq=1,
        )
    )  # fmt: skip
    # Prepaid: at least 5 € to start; sewing at 6 €/h plus 0.50 a session, capped at 30 € a day.
    db.add(BillingSettings(name="Atelier", siret="12345678900012", minimum_balance_cents=500))
    add_price_version(
        db, "standard", code="std-sewing-2026", machine_class="sewing", valid_from=date(2026, 1, 1),
        running_cents=600, running_per=60, session_fee_cents=50, daily_cap_cents=3000,
    )  # fmt: skip
    record_payment(
        db, kind=PaymentKind.CASH, amount_cents=1000, on=date(2026, 3, 1), reference="CASH-Q",
        payer=(PayerKind.MEMBER, quinn),
    )  # fmt: skip
    db.commit()
    return Shop(
        base=w,
        manager=manager,
        manager_badge="3A4A0001",
        pat_badge="9A1D0001",
        quinn=quinn,
        quinn_badge="9A1D0002",
        zoe=zoe,
        zoe_badges=("20E00001", "20E00002"),
        yann=yann,
        yann_badge="7A770001",
        xavier_badge="7A770002",
        last_use=last_use,
    )


@pytest.fixture
def shop(db: Session, workshop: Workshop) -> Shop:
    return seed(db, workshop)


def request(machine: str, badge: str, at: datetime, supervisor: str | None = None) -> AccessRequest:
    return AccessRequest(
        request_id=f"r-{machine}-{badge}",
        machine=machine,
        badge=badge,
        sent_at_ms=to_ms(at),
        expires_at_ms=to_ms(at) + 500,
        supervisor_badge=supervisor,
    )


def snapshot(db: Session, site: str, gateway: str, at: datetime = NOW) -> Allowlist:
    compiled = build_allowlist(db, site, gateway, at)
    assert compiled is not None
    return compiled.content.snapshot(site, gateway, 1, at, TTL)


def grant(allowlist: Allowlist, badge: str, machine: str) -> AllowlistGrant | None:
    entry = allowlist.entry(badge)
    return None if entry is None else next((g for g in entry.grants if g.machine == machine), None)


def machines_of(db: Session, gateway: str) -> list[str]:
    return list(
        db.scalars(
            sa.select(Machine.slug)
            .join(Gateway, Gateway.id == Machine.gateway_id)
            .where(Gateway.slug == gateway)
        )
    )


def offline_reason(online: Reason, entry: AllowlistEntry | None, locked_out: bool) -> Reason:
    """The refusal the gateway gives, from a snapshot, where the server refuses for ``online``."""
    if locked_out:
        return Reason.MACHINE_LOCKED_OUT  # the gateway looks at the machine before the badge
    if entry is None:
        return Reason.UNKNOWN_BADGE  # unknown, disabled, suspended, or may use nothing here
    if online is Reason.CERTIFICATION_EXPIRED:
        return Reason.NOT_CERTIFIED  # a snapshot lists valid certifications only
    return online


def compare(
    online: AccessReply, offline: AccessReply, entry: AllowlistEntry | None, *, locked_out: bool = False
) -> None:
    case = (online.machine, online.badge, online.reason)
    assert offline.granted == online.granted, case
    if not online.granted:
        assert offline.reason is offline_reason(online.reason, entry, locked_out), (*case, offline.reason)
        return
    assert (offline.member_id, offline.trainer, offline.supervisor_id) == (
        online.member_id,
        online.trainer,
        online.supervisor_id,
    ), case
    assert entry is not None
    # One limit per badge on the wire: the least the balance pays for on any of its machines.
    assert offline.max_minutes == entry.max_minutes
    if online.max_minutes is not None:
        assert offline.max_minutes is not None
        assert offline.max_minutes <= online.max_minutes, case


def test_the_snapshot_grants_exactly_what_the_online_decision_grants(db: Session, shop: Shop) -> None:
    w = shop.base
    granted_online = set()
    for gateway in (w.gateway, w.other_gateway):
        allowlist = snapshot(db, w.site, gateway)
        for machine in machines_of(db, gateway):
            for badge in shop.badges:
                online = decide(db, w.site, gateway, request(machine, badge, NOW), NOW)
                offline = decide_offline(
                    allowlist, OfflinePolicy.CACHE, request(machine, badge, NOW), to_ms(NOW)
                )
                listed = allowlist.machine(machine)
                assert listed is not None
                compare(online, offline, allowlist.entry(badge), locked_out=listed.locked_out)
                if online.granted:
                    granted_online.add((gateway, machine, badge))
    # The cases are all there: a sanity check of the seed rather than of the code.
    assert (w.gateway, "sewing-1", w.alice_badge) in granted_online
    assert (w.gateway, "free-1", w.bob_badge) in granted_online
    assert (w.gateway, "sewing-1", shop.quinn_badge) in granted_online
    assert (w.gateway, "embroidery-1", shop.yann_badge) in granted_online
    assert not {(m, b) for _, m, b in granted_online if m == "cutter-1" or b == shop.pat_badge}


def test_a_second_factor_machine_is_granted_to_nobody_offline(db: Session, shop: Shop) -> None:
    """Online, the badge alone is refused ``second_factor_required``; offline the gateway cannot
    check a confirmation, so the snapshot grants nobody the machine, and it refuses ``not_certified``
    (``unknown_badge`` for a holder with nothing else here). The other machines are unchanged."""
    w = shop.base
    manage.set_second_factor(db, "sewing-1", True, now=NOW)
    db.commit()
    allowlist = snapshot(db, w.site, w.gateway)
    assert allowlist.machine("sewing-1") is not None
    assert all(grant(allowlist, badge, "sewing-1") is None for badge in shop.badges)
    refused = 0
    for machine in machines_of(db, w.gateway):
        for badge in shop.badges:
            online = decide(db, w.site, w.gateway, request(machine, badge, NOW), NOW)
            offline = decide_offline(allowlist, OfflinePolicy.CACHE, request(machine, badge, NOW), to_ms(NOW))
            listed = allowlist.machine(machine)
            assert listed is not None
            refused += online.reason is Reason.SECOND_FACTOR_REQUIRED
            if machine == "sewing-1":
                # Refused both ways; offline always for want of a grant (online, the balance is
                # checked before the second factor).
                assert not online.granted
                assert offline.reason in (Reason.NOT_CERTIFIED, Reason.UNKNOWN_BADGE), (badge, offline.reason)
                continue
            compare(online, offline, allowlist.entry(badge), locked_out=listed.locked_out)
    assert refused >= 2  # Alice and Quinn, at least, would have been granted sewing-1
    assert grant(allowlist, w.alice_badge, "free-1") is not None


def test_who_is_listed_and_how(db: Session, shop: Shop) -> None:
    w = shop.base
    allowlist = snapshot(db, w.site, w.gateway)
    listed = [entry.badge for entry in allowlist.entries]
    assert listed == sorted(listed)
    # Suspended member, disabled badge: not listed. Bob may use the iron and the band knife,
    # which need no skill (the knife is locked out: the machine says so, the grant stays).
    assert {w.carol_badge, w.dave_badge} & set(listed) == set()
    bob = allowlist.entry(w.bob_badge)
    assert bob is not None
    assert [g.machine for g in bob.grants] == ["cutter-1", "free-1"]
    # A manager is listed without any grant; the "managers" policy lets them in.
    manager = allowlist.entry(shop.manager_badge)
    assert manager is not None
    assert (manager.manager, [g.machine for g in manager.grants]) == (True, ["cutter-1", "free-1"])
    assert [(m.machine, m.locked_out, m.lockout_reason) for m in allowlist.machines] == [
        ("cutter-1", True, "blade being replaced"),
        ("embroidery-1", False, None),
        ("free-1", False, None),
        ("overlocker-1", False, None),
        ("sewing-1", False, None),
    ]
    # Prepaid: below the minimum balance, 0; 10 € pays 95 minutes of sewing (the iron is free).
    pat, quinn = allowlist.entry(shop.pat_badge), allowlist.entry(shop.quinn_badge)
    assert (pat and pat.max_minutes, quinn and quinn.max_minutes) == (0, 95)
    alice = allowlist.entry(w.alice_badge)
    assert alice is not None
    assert alice.max_minutes is None
    # Both of Zoe's badges, with the same grants.
    first, second = (allowlist.entry(badge) for badge in shop.zoe_badges)
    assert first is not None
    assert second is not None
    assert first.grants == second.grants
    assert first.member_name == "Zoe Double"
    # Expired, and lapsed by disuse without a sweep yet: no grant.
    assert grant(allowlist, w.erin_badge, "sewing-1") is None
    assert grant(allowlist, shop.xavier_badge, "embroidery-1") is None
    # The other gateway lists its own machine only.
    other = snapshot(db, w.site, w.other_gateway)
    assert [m.machine for m in other.machines] == ["printer-1"]
    assert other.entry(w.bob_badge) is None  # nothing he may use there, and no manager


def test_levels_and_until_follow_the_certifications(db: Session, shop: Shop) -> None:
    w = shop.base
    allowlist = snapshot(db, w.site, w.gateway)
    alice = grant(allowlist, w.alice_badge, "overlocker-1")
    assert alice == AllowlistGrant(
        machine="overlocker-1", level=CertificationLevel.SUPERVISED, until_ms=to_ms(NOW + timedelta(days=365))
    )
    assert grant(allowlist, w.alice_badge, "sewing-1") == AllowlistGrant(
        machine="sewing-1", level=CertificationLevel.AUTONOMOUS
    )
    assert grant(allowlist, w.trainer_badge, "overlocker-1") == AllowlistGrant(
        machine="overlocker-1", level=CertificationLevel.TRAINER
    )
    # Zoe trains sewing until +10 d, and sews on her own until +30 d: the grant says the first.
    zoe = shop.zoe_badges[0]
    assert grant(allowlist, zoe, "sewing-1") == AllowlistGrant(
        machine="sewing-1", level=CertificationLevel.TRAINER, until_ms=to_ms(NOW + timedelta(days=10))
    )
    later = NOW + timedelta(days=10)
    assert decide(db, w.site, w.gateway, request("sewing-1", zoe, later - timedelta(milliseconds=1)),
                  later - timedelta(milliseconds=1)).trainer  # fmt: skip
    at_end = decide(db, w.site, w.gateway, request("sewing-1", zoe, later), later)
    assert (at_end.granted, at_end.trainer) == (True, False)
    assert grant(snapshot(db, w.site, w.gateway, later), zoe, "sewing-1") == AllowlistGrant(
        machine="sewing-1", level=CertificationLevel.AUTONOMOUS, until_ms=to_ms(NOW + timedelta(days=30))
    )
    # Disuse: six months after the last use, which the server knows.
    deadline = shop.last_use.replace(month=shop.last_use.month + 6)
    yann = grant(allowlist, shop.yann_badge, "embroidery-1")
    assert yann == AllowlistGrant(machine="embroidery-1", level=CertificationLevel.AUTONOMOUS,
                                  until_ms=to_ms(deadline))  # fmt: skip
    just_before = deadline - timedelta(milliseconds=1)
    assert decide(
        db, w.site, w.gateway, request("embroidery-1", shop.yann_badge, just_before), just_before
    ).granted
    lapsed = decide(db, w.site, w.gateway, request("embroidery-1", shop.yann_badge, deadline), deadline)
    assert lapsed.reason is Reason.CERTIFICATION_EXPIRED


def test_supervised_use_offline_needs_a_trainer_in_the_snapshot(db: Session, shop: Shop) -> None:
    w = shop.base
    allowlist = snapshot(db, w.site, w.gateway)
    assert decide(db, w.site, w.gateway, request("overlocker-1", w.trainer_badge, NOW), NOW).granted
    for supervisor in (w.trainer_badge, None):
        online = decide(db, w.site, w.gateway, request("overlocker-1", w.alice_badge, NOW, supervisor), NOW)
        offline = decide_offline(
            allowlist,
            OfflinePolicy.CACHE,
            request("overlocker-1", w.alice_badge, NOW, supervisor),
            to_ms(NOW),
        )
        compare(online, offline, allowlist.entry(w.alice_badge))
    assert offline.reason is Reason.SUPERVISION_REQUIRED


def test_a_change_changes_the_digest_and_nothing_else_does(db: Session, shop: Shop) -> None:
    w = shop.base
    first = build_allowlist(db, w.site, w.gateway, NOW)
    again = build_allowlist(db, w.site, w.gateway, NOW + timedelta(hours=1))
    assert first is not None
    assert again is not None
    assert again.content.digest == first.content.digest
    manage.grant_certification(db, w.bob, "industrial-sewing", now=NOW)
    db.commit()
    granted = build_allowlist(db, w.site, w.gateway, NOW)
    assert granted is not None
    assert granted.content.digest != first.content.digest
    manage.set_lockout(db, "sewing-1", True, "needle broken")
    db.commit()
    locked = build_allowlist(db, w.site, w.gateway, NOW)
    assert locked is not None
    assert locked.content.digest not in {first.content.digest, granted.content.digest}
    # Time alone changes it when a grant runs out.
    expired = build_allowlist(db, w.site, w.gateway, NOW + timedelta(days=365))
    assert expired is not None
    assert expired.content.digest != locked.content.digest


@pytest.fixture
def statements(db: Session) -> Iterator[list[str]]:
    seen: list[str] = []
    engine = db.get_bind()

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    yield seen
    sa.event.remove(engine, "before_cursor_execute", count)


def test_a_few_queries_for_the_whole_site_however_many_members(
    db: Session, shop: Shop, statements: list[str]
) -> None:
    w = shop.base
    build_allowlists(db, w.site, NOW)
    db.rollback()
    few = len(statements)
    assert few <= 8
    for number in range(40):
        member = manage.add_member(db, f"Member {number}", badge=f"AB{number:06X}", now=NOW)
        manage.grant_certification(db, member.id, "industrial-sewing", now=NOW)
        manage.grant_certification(db, member.id, "embroidery", now=NOW)
        member.prepaid = number % 2 == 0
    db.commit()
    statements.clear()
    compiled = build_allowlists(db, w.site, NOW)
    db.rollback()
    assert len(statements) == few
    assert len(compiled[w.gateway].content.entries) > 40


def test_unknown_gateways_and_sites_get_nothing(db: Session, shop: Shop) -> None:
    w = shop.base
    assert build_allowlist(db, w.site, "gw-nowhere", NOW) is None
    assert build_allowlists(db, "another-site", NOW) == {}
    assert set(build_allowlists(db, w.site, NOW)) == {w.gateway, w.other_gateway}


def compiled(db: Session, shop: Shop, at: datetime = NOW) -> Compiled:
    found = build_allowlist(db, shop.base.site, shop.base.gateway, at)
    assert found is not None
    return found


def test_versions_are_issued_once_each_and_only_by_who_saw_the_last(db: Session, shop: Shop) -> None:
    w = shop.base
    first = compiled(db, shop)
    assert (first.issued.version, first.issued.digest) == (0, None)
    assert is_due(first, NOW, TTL)
    issued = issue(db, w.site, first, NOW, TTL)
    assert issued is not None
    assert (issued.version, issued.issued_at_ms, issued.expires_at_ms) == (1, to_ms(NOW), to_ms(NOW + TTL))
    # Another server that read version 0 too loses the race, and issues nothing.
    assert issue(db, w.site, first, NOW, TTL) is None
    second = compiled(db, shop)
    assert (second.issued.version, second.issued.digest) == (1, first.content.digest)
    assert not is_due(second, NOW + TTL / 2 - timedelta(seconds=1), TTL)
    assert is_due(second, NOW + TTL / 2, TTL)  # half its life: issued again, unchanged
    assert is_due(second, NOW, TTL, forced_since=NOW + timedelta(seconds=1))  # a birth after it
    assert not is_due(second, NOW, TTL, forced_since=NOW)
    again = issue(db, w.site, second, NOW + timedelta(seconds=5), TTL)
    assert again is not None
    assert again.version == 2
    # The other gateway has its own count.
    other = build_allowlist(db, w.site, w.other_gateway, NOW)
    assert other is not None
    assert other.issued.version == 0
