"""The demo's workshop: a shared textile atelier with a small fablab corner.

Two gateways: ``textile`` drives two industrial sewing machines, an overlocker
and an embroidery machine; ``fablab`` drives a 3D printer. The members are
chosen so that every rule of access shows up: trained members are granted,
an untrained one, an expired certification, a suspended member and an unknown
badge are refused, each with its reason. A member, a trainer, a treasurer and a
manager get a fresh password and API token at every start, printed by the demo.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server import workshop
from server.auth.passwords import set_password
from server.auth.scopes import Scope
from server.auth.sessions import revoke_sessions
from server.auth.tokens import create_token
from server.db import make_engine, make_session_factory, upgrade_database
from server.models.certification import CertificationLevel
from server.models.gateway import Gateway
from server.models.member import Member, MemberStatus

SITE = "demo"


@dataclass(frozen=True)
class DemoMachine:
    id: str
    name: str
    machine_class: str
    skills: tuple[str, ...]
    running_above_a: float  # current when it works, for the simulated clamp
    working_a: float
    offline_policy: str = "cache"  # who may start it while the server does not answer


@dataclass(frozen=True)
class DemoGateway:
    id: str
    name: str
    machines: tuple[DemoMachine, ...]


GATEWAYS = (
    DemoGateway(
        "textile",
        "Atelier textile",
        (
            DemoMachine(
                "sew-1",
                "Piqueuse plate Juki DDL-8700 n°1",
                "industrial-sewing",
                ("industrial-sewing",),
                0.5,
                2.4,
            ),
            DemoMachine(
                "sew-2",
                "Piqueuse plate Juki DDL-8700 n°2",
                "industrial-sewing",
                ("industrial-sewing",),
                0.5,
                2.2,
            ),
            DemoMachine(
                "overlock-1",
                "Surjeteuse Juki MO-6814",
                "overlocker",
                ("industrial-sewing", "overlocker"),
                0.4,
                1.6,
            ),
            DemoMachine("embroidery-1", "Brodeuse Brother PR680W", "embroidery", ("embroidery",), 0.3, 1.1),
        ),
    ),
    DemoGateway(
        "fablab",
        "Fablab",
        # A print runs for hours: without the server, only a manager may start one.
        (
            DemoMachine(
                "printer-1", "Imprimante 3D Prusa MK4", "fdm-printer", ("fdm-printer",), 0.4, 1.3, "managers"
            ),
        ),
    ),
)

SKILLS = {
    "industrial-sewing": ("Couture industrielle", "Piqueuse plate: enfilage, réglage du point, sécurité."),
    "overlocker": ("Surjeteuse", "Enfilage 4 fils, réglage du différentiel, changement des couteaux."),
    "embroidery": ("Broderie machine", "Préparation des fichiers, cadres, entoilage."),
    "fdm-printer": ("Impression 3D FDM", "Tranchage, plateau, changement de filament."),
}


@dataclass(frozen=True)
class DemoMember:
    name: str
    badge: str
    skills: dict[str, CertificationLevel] = field(default_factory=dict)
    expired: tuple[str, ...] = ()
    suspended: bool = False
    manager: bool = False
    treasurer: bool = False
    email: str | None = None


AUTONOMOUS = CertificationLevel.AUTONOMOUS
MEMBERS = (
    DemoMember(
        "Maëlle Laurent",
        "04A0B1C2D3",
        {"industrial-sewing": CertificationLevel.TRAINER},
        email="maelle@atelier.example",
    ),
    DemoMember("Amina Diallo", "04A1B2C3D4", {"industrial-sewing": AUTONOMOUS, "overlocker": AUTONOMOUS}),
    # A member who keeps the books too: the treasurer.
    DemoMember(
        "Lucas Martin",
        "04B2C3D4E5",
        {"industrial-sewing": AUTONOMOUS, "embroidery": AUTONOMOUS},
        treasurer=True,
        email="lucas@atelier.example",
    ),
    DemoMember("Léa Moreau", "04C3D4E5F6", {"industrial-sewing": AUTONOMOUS}),
    DemoMember("Hugo Petit", "04D4E5F607", {"fdm-printer": AUTONOMOUS}),
    DemoMember(
        "Chloé Bernard", "04E5F60718", email="chloe@atelier.example"
    ),  # joined last week, not trained yet
    DemoMember("Sofia Rossi", "04F6071829", expired=("embroidery",)),
    DemoMember("Karim Haddad", "0407182930", {"industrial-sewing": AUTONOMOUS}, suspended=True),
    # A beginner: may sew only while a trainer is at the machine.
    DemoMember("Inès Garnier", "0418293A4B", {"industrial-sewing": CertificationLevel.SUPERVISED}),
    # The workshop's animator: runs machines, badges and members.
    DemoMember("Nadia Benali", "04293A4B5C", manager=True, email="nadia@atelier.example"),
)

ACCOUNTS = (
    ("member", "Chloé", frozenset({Scope.READ})),
    ("trainer", "Maëlle", frozenset({Scope.READ, Scope.TRAINING})),
    ("treasurer", "Lucas", frozenset({Scope.READ, Scope.BILLING})),
    ("manager", "Nadia", frozenset(Scope)),
)
"""The members the demo signs in as, one per role, with the scopes of the API token it prints for each."""

UNKNOWN_BADGE = "0DEADBEEF0"


def badge_of(name: str) -> str:
    return next(member.badge for member in MEMBERS if member.name.startswith(name))


def machine(machine_id: str) -> DemoMachine:
    return next(m for g in GATEWAYS for m in g.machines if m.id == machine_id)


@dataclass(frozen=True)
class DemoAccount:
    """How to act as one role: sign in with ``login`` and ``password``, or send ``token``."""

    role: str
    name: str
    login: str
    password: str
    token: str


@dataclass(frozen=True)
class Seeded:
    created: bool  # False: the workshop was already in the database
    accounts: tuple[DemoAccount, ...]
    own_token: str  # the demo's own: it reads sessions and members, and locks machines out

    @property
    def tokens(self) -> dict[str, str]:
        """Member name -> the API token printed for them."""
        return {account.name: account.token for account in self.accounts}


def demo_password() -> str:
    # Made afresh at every start and printed: a demo database left somewhere has no known password.
    return "demo-" + secrets.token_urlsafe(9)


def seed(database_url: str, *, now: datetime | None = None) -> Seeded:
    """Create the workshop in the database unless it is there, and issue fresh passwords and tokens."""
    now = now or datetime.now(UTC)
    upgrade_database(database_url)
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as db:
            created = db.scalar(sa.select(Gateway.id).where(Gateway.slug == GATEWAYS[0].id)) is None
            if created:
                _seed(db, now)
            accounts = []
            for role, first_name, scopes in ACCOUNTS:
                member = db.scalars(sa.select(Member).where(Member.name.startswith(first_name))).one()
                password = demo_password()
                set_password(db, member.id, password, now=now, by=None)
                revoke_sessions(db, member.id, now=now)
                token = create_token(db, member.id, scopes=scopes, now=now, label=f"demo {role}").token
                login = member.email or str(member.id)
                accounts.append(DemoAccount(role, member.name, login, password, token))
            manager = db.scalars(sa.select(Member).where(Member.name.startswith(ACCOUNTS[-1][1]))).one()
            own = create_token(
                db, manager.id, scopes={Scope.READ, Scope.MANAGE}, now=now, label="demo narrator"
            ).token
            db.commit()
            return Seeded(created, tuple(accounts), own)
    finally:
        engine.dispose()


def _seed(db: Session, now: datetime) -> None:
    for slug, (name, description) in SKILLS.items():
        workshop.add_skill(db, slug, name, description)
    for gateway in GATEWAYS:
        workshop.add_gateway(db, gateway.id, site=SITE, name=gateway.name)
        for m in gateway.machines:
            workshop.add_machine(
                db, m.id, m.name, machine_class=m.machine_class, gateway=gateway.id, required_skills=m.skills
            )
    trainer = None
    for person in MEMBERS:
        status = MemberStatus.SUSPENDED if person.suspended else MemberStatus.ACTIVE
        member = workshop.add_member(
            db, person.name, email=person.email, badge=person.badge, status=status, now=now
        )
        if person.manager or person.treasurer:
            workshop.set_member_roles(
                db, member.id, manager=person.manager or None, treasurer=person.treasurer or None, now=now
            )
        trainer = trainer or member.id
        for skill, level in person.skills.items():
            granted_by = None if member.id == trainer else trainer
            workshop.grant_certification(db, member.id, skill, level=level, granted_by=granted_by, now=now)
        for skill in person.expired:
            workshop.grant_certification(
                db,
                member.id,
                skill,
                granted_by=trainer,
                now=now - timedelta(days=400),
                expires_at=now - timedelta(days=35),
            )


def gateway_config(
    gateway: DemoGateway, mqtt_url: str, state_dir: Path, allowlist_keys: dict[str, str] | None = None
) -> dict[str, Any]:
    """The TOML-shaped config of a simulated gateway, with times shortened for the demo.

    ``allowlist_keys``: the site's public key(s), so that the gateway decides offline from
    the allowlist the server signs."""
    pins = iter(range(2, 28))
    return {
        "gateway": {
            "id": gateway.id,
            "site": SITE,
            "mqtt_url": mqtt_url,
            "state_dir": str(state_dir / gateway.id),
            "request_timeout_ms": 500,
            "sample_interval_ms": 50,
            "telemetry_interval_s": 5,
            "pin_factory": "mock",
            "allowlist_keys": allowlist_keys or {},
        },
        "machine": [
            {
                "id": m.id,
                "name": m.name,
                # Minutes in a real workshop; seconds here, so that a session ends while you watch.
                "idle_timeout_s": 6,
                "offline_policy": m.offline_policy,
                "reader": {"type": "simulated"},
                "current": {
                    "type": "simulated",
                    "running_above_a": m.running_above_a,
                    "idle_below_a": m.running_above_a * 0.6,
                    "running_after_s": 0.3,
                    "idle_after_s": 1.0,
                },
                "switch": {"type": "gpio", "pin": next(pins), "active_high": False},
                "indicator": {"type": "gpio", "green_pin": next(pins), "red_pin": next(pins)},
            }
            for m in gateway.machines
        ],
    }
