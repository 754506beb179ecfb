"""``atelier token ...`` and ``atelier member ...``: API tokens, members, roles, passwords,
a member's data and their erasure (registered by :mod:`server.cli`).

These run on the server's host, as whoever may read its database: the audit trail records
them with no actor (a command-line tool), the way it records the server's own changes.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from datetime import timedelta
from pathlib import Path

from server.cli import _database, _failing


def _token_create(args: argparse.Namespace) -> int:
    from server.auth.scopes import format_scopes, parse_scopes  # noqa: PLC0415
    from server.auth.tokens import create_token  # noqa: PLC0415
    from server.clock import utc_now  # noqa: PLC0415

    try:
        scopes = parse_scopes(args.scope or ["read"])
    except ValueError as error:
        print(f"atelier: {error}", file=sys.stderr)
        return 2
    now = utc_now()
    expires_at = now + timedelta(days=args.expires_days) if args.expires_days else None
    with _database() as db:
        issued = create_token(
            db, args.member, scopes=scopes, now=now, label=args.label, expires_at=expires_at
        )
        db.commit()
    until = f", until {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else ""
    print(
        f"API token {issued.id} for member {issued.member_id}"
        f"{f' ({issued.label})' if issued.label else ''}, scopes {format_scopes(issued.scopes)}{until}. "
        "It is shown once: keep it now.",
        file=sys.stderr,
    )
    print(issued.token)
    return 0


def _token_revoke(args: argparse.Namespace) -> int:
    from server.auth.tokens import revoke_token  # noqa: PLC0415
    from server.clock import utc_now  # noqa: PLC0415

    with _database() as db:
        revoke_token(db, args.token_id, now=utc_now())
        db.commit()
    print(f"API token {args.token_id} revoked", file=sys.stderr)
    return 0


def _token_list(args: argparse.Namespace) -> int:
    from server.auth.tokens import list_tokens  # noqa: PLC0415
    from server.clock import utc_now  # noqa: PLC0415

    now = utc_now()
    with _database() as db:
        for token in list_tokens(db, args.member):
            if token.revoked_at:
                state = f"revoked {token.revoked_at:%Y-%m-%d %H:%M}"
            elif token.expires_at and token.expires_at <= now:
                state = f"expired {token.expires_at:%Y-%m-%d %H:%M}"
            elif token.expires_at:
                state = f"active until {token.expires_at:%Y-%m-%d %H:%M}"
            else:
                state = "active"
            print(
                f"{token.id}\tmember {token.member_id}\t{state}\t{token.scopes}\t"
                f"{token.created_at:%Y-%m-%d}\t{token.label}"
            )
    return 0


def _member_add(args: argparse.Namespace) -> int:
    from server import workshop  # noqa: PLC0415

    with _database() as db:
        member = workshop.add_member(db, args.name, email=args.email, badge=args.badge)
        db.commit()
        print(f"member {member.id} ({member.name})", file=sys.stderr)
        print(member.id)
    return 0


def _member_role(args: argparse.Namespace) -> int:
    from server import workshop  # noqa: PLC0415

    with _database() as db:
        member = workshop.set_member_roles(db, args.member, manager=args.manager, treasurer=args.treasurer)
        db.commit()
        roles = [
            role
            for role, held in (("manager", member.is_manager), ("treasurer", member.is_treasurer))
            if held
        ]
        print(f"member {member.id} ({member.name}): {', '.join(roles) or 'no role'}")
    return 0


def _read_password() -> str:
    """A password typed twice at a terminal, or the first line of the standard input."""
    if sys.stdin.isatty():
        first = getpass.getpass("New password (10 characters at least): ")
        if getpass.getpass("Again: ") != first:
            raise ValueError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def _member_password(args: argparse.Namespace) -> int:
    from server.auth.passwords import set_password  # noqa: PLC0415
    from server.auth.sessions import revoke_sessions  # noqa: PLC0415
    from server.clock import utc_now  # noqa: PLC0415

    try:
        password = _read_password()
    except (ValueError, EOFError) as error:
        print(f"atelier: {error or 'no password given'}", file=sys.stderr)
        return 1
    now = utc_now()
    with _database() as db:
        member = set_password(db, args.member, password, now=now, by=None)
        ended = revoke_sessions(db, member.id, now=now)
        db.commit()
    print(f"member {args.member}: password set; {ended} session(s) ended", file=sys.stderr)
    return 0


def _member_export(args: argparse.Namespace) -> int:
    from server.clock import utc_now  # noqa: PLC0415
    from server.privacy import export_member  # noqa: PLC0415

    with _database() as db:
        data = json.dumps(export_member(db, args.member, now=utc_now()), ensure_ascii=False, indent=2)
    if args.out is None:
        print(data)
        return 0
    # Personal data: readable by its owner only, from the moment it exists.
    try:
        descriptor = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as error:
        print(f"atelier: cannot write {args.out}: {error.strerror} (it must not exist yet)", file=sys.stderr)
        return 1
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(data + "\n")
    print(f"member {args.member}: their data is in {args.out}", file=sys.stderr)
    return 0


def _member_erase(args: argparse.Namespace) -> int:
    from server import workshop  # noqa: PLC0415
    from server.clock import utc_now  # noqa: PLC0415
    from server.privacy import erase_member, reasons_not_to_erase  # noqa: PLC0415

    with _database() as db:
        if not args.yes:
            member = workshop.check_not_erased(workshop.get_member(db, args.member))
            reasons = reasons_not_to_erase(db, member)
            print(
                f"This pseudonymises {member.name} (member {member.id}) for good: name, e-mail, address, "
                "badges, mandates; their invoices, ledger entries and usage stay. "
                + (
                    f"Not possible yet: {'; '.join(reasons)}."
                    if reasons
                    else "Run again with --yes to do it."
                ),
                file=sys.stderr,
            )
            return 1 if reasons else 2
        erasure = erase_member(db, args.member, now=utc_now(), by=None)
        db.commit()
    print(
        f"member {erasure.member_id} erased: {erasure.badges} badge(s), {erasure.mandates} mandate(s) "
        f"pseudonymised; {erasure.tokens} token(s) and {erasure.sessions} session(s) ended",
        file=sys.stderr,
    )
    return 0


def _on_off(value: str) -> bool:
    if value not in ("on", "off"):
        raise argparse.ArgumentTypeError("say on or off")
    return value == "on"


def add_account_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = subparsers.add_parser("token", help="API tokens: a member's key to the REST API")
    commands = token.add_subparsers(dest="token_command", required=True, metavar="COMMAND")
    create = commands.add_parser(
        "create",
        help="make a token for a member and print it, once",
        description="A token does what both its scopes and its member's roles allow: read (every "
        "GET), training (certify, revoke), billing (prices, plans, consumables, sales, who pays), "
        "manage (members, badges, skills, machines, gateways, lockouts, passwords, erasure). "
        "Each scope includes read.",
    )
    create.add_argument("--member", type=int, required=True, help="the member id the token acts as")
    create.add_argument("--label", default="", help="what the token is for, e.g. 'Tess laptop'")
    create.add_argument(
        "--scope",
        action="append",
        metavar="SCOPE",
        help="read, training, billing or manage; repeat it or separate with commas (default: read)",
    )
    create.add_argument("--expires-days", type=int, metavar="DAYS", help="stop working after DAYS days")
    create.set_defaults(func=_failing(_token_create))
    revoke = commands.add_parser("revoke", help="stop a token from working")
    revoke.add_argument("token_id", type=int, help="the token's id, as printed by create or list")
    revoke.set_defaults(func=_failing(_token_revoke))
    listing = commands.add_parser("list", help="list tokens (never the tokens themselves)")
    listing.add_argument("--member", type=int, help="only this member's")
    listing.set_defaults(func=_failing(_token_list))

    member = subparsers.add_parser("member", help="members: add, roles, passwords, their data, erasure")
    commands = member.add_subparsers(dest="member_command", required=True, metavar="COMMAND")
    add = commands.add_parser(
        "add", help="add a member (the first manager of a new site, say); prints its id"
    )
    add.add_argument("--name", required=True)
    add.add_argument("--email")
    add.add_argument("--badge", help="a badge UID (hex) to enrol at once")
    add.set_defaults(func=_failing(_member_add))
    role = commands.add_parser(
        "role",
        help="give or take the manager and treasurer roles (trainers are made by certifying them)",
    )
    role.add_argument("--member", type=int, required=True, help="the member id")
    role.add_argument("--manager", type=_on_off, metavar="on|off", help="manager role")
    role.add_argument("--treasurer", type=_on_off, metavar="on|off", help="treasurer role")
    role.set_defaults(func=_failing(_member_role))
    password = commands.add_parser(
        "password",
        help="set a member's password, typed twice, or the first line of the standard input",
        description="At least 10 characters. The member's browser sessions end.",
    )
    password.add_argument("--member", type=int, required=True, help="the member id")
    password.set_defaults(func=_failing(_member_password))
    export = commands.add_parser("export", help="everything about a member, as JSON (their right of access)")
    export.add_argument("--member", type=int, required=True, help="the member id")
    export.add_argument(
        "--out", type=Path, help="a new file to write (mode 600) instead of the standard output"
    )
    export.set_defaults(func=_failing(_member_export))
    erase = commands.add_parser(
        "erase",
        help="pseudonymise a member's personal data for good (invoices, ledger and usage stay)",
        description="Without --yes, says what it would do, or what must be settled first.",
    )
    erase.add_argument("--member", type=int, required=True, help="the member id")
    erase.add_argument("--yes", action="store_true", help="do it")
    erase.set_defaults(func=_failing(_member_erase))
