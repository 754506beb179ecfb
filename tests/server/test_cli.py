"""``atelier db upgrade`` and ``atelier server``, as the console script will run them."""

from __future__ import annotations

import argparse
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import pytest
import sqlalchemy as sa

from protocol.allowlist import public_key_text
from server.cli import add_commands
from server.db import make_engine
from server.signing import load_private_key
from tests.server.conftest import Workshop
from tests.server.mqtt.fake_gateway import FakeGateway
from tests.services import Mosquitto, free_port

# The console script's shape: `atelier <command> ...` with each command's func.
ATELIER = """
import argparse, sys
from server.cli import add_commands
parser = argparse.ArgumentParser(prog="atelier")
add_commands(parser.add_subparsers(required=True))
args = parser.parse_args()
sys.exit(args.func(args))
"""


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="atelier")
    add_commands(parser.add_subparsers(required=True))
    return parser


def test_arguments() -> None:
    args = parser().parse_args(["server", "--host", "0.0.0.0", "--port", "9000"])  # noqa: S104
    assert (args.host, args.port, callable(args.func)) == ("0.0.0.0", 9000, True)  # noqa: S104
    assert parser().parse_args(["db", "upgrade"]).revision == "head"
    with pytest.raises(SystemExit):
        parser().parse_args(["db"])


def test_db_upgrade(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATELIER_DATABASE_URL", database_url)
    args = parser().parse_args(["db", "upgrade"])
    assert args.func(args) == 0
    engine = make_engine(database_url)
    with engine.connect() as connection:
        tables = set(sa.inspect(connection).get_table_names())
    engine.dispose()
    assert {"members", "machines", "usage_sessions", "alembic_version"} <= tables


def test_server_answers_api_and_gateways(database_url: str, broker: Mosquitto, workshop: Workshop) -> None:
    port = free_port()
    env = {
        **os.environ,
        "ATELIER_DATABASE_URL": database_url,
        "ATELIER_MQTT_URL": broker.url,
        "ATELIER_SITE": workshop.site,
    }
    command = [sys.executable, "-c", ATELIER, "server", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        health = wait_until_ready(port, process)
        assert health == {"status": "ok", "database": "ok", "mqtt": "connected"}
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/members").status_code == 401
        members = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/members", headers=manager_token(database_url)
        ).json()
        assert len(members) == 7  # and the manager
        gateway = FakeGateway(broker.url, workshop.site, workshop.gateway)
        try:
            assert gateway.ask("sewing-1", workshop.alice_badge).granted
        finally:
            gateway.close()
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output.decode(errors="replace")


def manager_token(database_url: str) -> dict[str, str]:
    from server import workshop as manage  # noqa: PLC0415
    from server.auth.scopes import Scope  # noqa: PLC0415
    from server.auth.tokens import create_token  # noqa: PLC0415
    from server.db import make_session_factory  # noqa: PLC0415
    from tests.server.conftest import NOW  # noqa: PLC0415

    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as db:
            manager = manage.add_member(db, "Manon Manager").id
            manage.set_member_roles(db, manager, manager=True)
            issued = create_token(db, manager, scopes={Scope.READ}, now=NOW)
            db.commit()
    finally:
        engine.dispose()
    return {"Authorization": f"Bearer {issued.token}"}


def wait_until_ready(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode(errors="replace") if process.stdout else ""
            raise AssertionError(f"the server exited with {process.returncode}:\n{output}")
        try:
            health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).json()
        except httpx.TransportError:
            health = None
        if health is not None and health.get("mqtt") == "connected":
            return health
        time.sleep(0.05)
    raise AssertionError(f"the server was not ready within {timeout} s")


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    code: int = args.func(args)
    return code


def test_token_create_list_and_revoke(
    database_url: str, workshop: Workshop, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from server.auth.tokens import member_for_token  # noqa: PLC0415
    from server.clock import utc_now  # noqa: PLC0415
    from server.db import make_session_factory  # noqa: PLC0415

    monkeypatch.setenv("ATELIER_DATABASE_URL", database_url)
    assert (
        run(
            [
                "token",
                "create",
                "--member",
                str(workshop.trainer),
                "--label",
                "Tess laptop",
                "--scope",
                "training",
                "--expires-days",
                "30",
            ]
        )
        == 0
    )
    out, err = capsys.readouterr()
    token = out.strip()
    assert token.startswith("atl_")
    assert "It is shown once" in err
    assert "scopes read training, until" in err
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as db:
            member = member_for_token(db, token, utc_now())
            assert member is not None
            assert member.id == workshop.trainer
        assert run(["token", "list", "--member", str(workshop.trainer)]) == 0
        listed = capsys.readouterr().out
        assert "\tactive until " in listed
        assert "\tread training\t" in listed
        assert "Tess laptop" in listed
        assert token not in listed
        token_id = listed.split("\t")[0]
        assert run(["token", "revoke", token_id]) == 0
        with make_session_factory(engine)() as db:
            assert member_for_token(db, token, utc_now()) is None
        assert run(["token", "revoke", token_id]) == 1
        assert "already revoked" in capsys.readouterr().err
        assert run(["token", "create", "--member", "999"]) == 1
        assert "no member 999" in capsys.readouterr().err
        assert run(["token", "create", "--member", str(workshop.bob), "--scope", "admin"]) == 2
        assert "unknown scope 'admin'" in capsys.readouterr().err
        assert run(["token", "create", "--member", str(workshop.bob)]) == 0  # read, by default
        assert "scopes read." in capsys.readouterr().err
    finally:
        engine.dispose()


def test_training_sweep(
    database_url: str, workshop: Workshop, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ATELIER_DATABASE_URL", database_url)
    assert run(["training", "sweep"]) == 0
    out, err = capsys.readouterr()
    # Erin's sewing certification expired on 2026-03-01 (the sweep runs on today's clock).
    assert f"member {workshop.erin}, industrial-sewing, expired on 2026-03-01 (expiry date reached)" in out
    assert "newly expired" in err
    assert run(["training", "sweep"]) == 0
    out, err = capsys.readouterr()
    assert (out, err.strip()) == ("", "0 certification(s) newly expired")


def test_member_role(
    database_url: str, workshop: Workshop, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ATELIER_DATABASE_URL", database_url)
    assert run(["member", "role", "--member", str(workshop.bob), "--manager", "on"]) == 0
    assert capsys.readouterr().out.strip() == f"member {workshop.bob} (Bob Durand): manager"
    assert (
        run(["member", "role", "--member", str(workshop.bob), "--manager", "off", "--treasurer", "on"]) == 0
    )
    assert capsys.readouterr().out.strip() == f"member {workshop.bob} (Bob Durand): treasurer"
    with pytest.raises(SystemExit):
        parser().parse_args(["member", "role", "--member", "1", "--manager", "yes"])


def test_keys_create_and_public(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ATELIER_SIGNING_KEY_FILE", raising=False)
    monkeypatch.setenv("ATELIER_SIGNING_KEY_ID", "site-9")
    path = tmp_path / "site.pem"
    args = parser().parse_args(["keys", "create", "--out", str(path)])
    assert args.func(args) == 0
    created = capsys.readouterr()
    public = created.out.strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert public == public_key_text(load_private_key(path).public_key())
    assert f'allowlist_keys = {{ "site-9" = "{public}" }}' in created.err
    assert "ATELIER_SIGNING_KEY_FILE=" in created.err
    # Never over an existing key.
    assert args.func(args) == 1
    assert "already exists" in capsys.readouterr().err
    # The public key again, from --key or from ATELIER_SIGNING_KEY_FILE.
    shown = parser().parse_args(["keys", "public", "--key", str(path)])
    assert shown.func(shown) == 0
    assert capsys.readouterr().out.strip() == public
    monkeypatch.setenv("ATELIER_SIGNING_KEY_FILE", str(path))
    shown = parser().parse_args(["keys", "public"])
    assert shown.func(shown) == 0
    assert capsys.readouterr().out.strip() == public
    monkeypatch.delenv("ATELIER_SIGNING_KEY_FILE")
    assert shown.func(shown) == 2
    assert "give --key FILE or set ATELIER_SIGNING_KEY_FILE" in capsys.readouterr().err
    broken = parser().parse_args(["keys", "public", "--key", str(tmp_path / "missing.pem")])
    assert broken.func(broken) == 1
    assert "cannot read the signing key" in capsys.readouterr().err


def test_member_add_password_export_and_erase(
    database_url: str,
    workshop: Workshop,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import io  # noqa: PLC0415
    import json  # noqa: PLC0415

    from server.auth.passwords import verify_password  # noqa: PLC0415
    from server.db import make_session_factory  # noqa: PLC0415
    from server.models import Member  # noqa: PLC0415

    monkeypatch.setenv("ATELIER_DATABASE_URL", database_url)
    assert run(["member", "add", "--name", "Nadia Benali", "--email", "nadia@example.org"]) == 0
    nadia = int(capsys.readouterr().out.strip())
    monkeypatch.setattr("sys.stdin", io.StringIO("her first passphrase\n"))
    assert run(["member", "password", "--member", str(nadia)]) == 0
    assert "password set; 0 session(s) ended" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert run(["member", "password", "--member", str(nadia)]) == 1
    assert "at least 10 characters" in capsys.readouterr().err
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as db:
            member = db.get(Member, nadia)
            assert member is not None
            assert verify_password(member.password_hash, "her first passphrase")

        out = tmp_path / "bob.json"
        assert run(["member", "export", "--member", str(workshop.bob), "--out", str(out)]) == 0
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
        assert json.loads(out.read_text())["member"]["name"] == "Bob Durand"
        assert run(["member", "export", "--member", str(workshop.bob), "--out", str(out)]) == 1
        assert "it must not exist yet" in capsys.readouterr().err
        assert run(["member", "export", "--member", str(workshop.bob)]) == 0
        assert json.loads(capsys.readouterr().out)["member"]["id"] == workshop.bob

        assert run(["member", "erase", "--member", str(workshop.bob)]) == 2
        assert "Run again with --yes" in capsys.readouterr().err
        assert run(["member", "erase", "--member", str(workshop.bob), "--yes"]) == 0
        assert "1 badge(s), 0 mandate(s) pseudonymised" in capsys.readouterr().err
        with make_session_factory(engine)() as db:
            bob = db.get(Member, workshop.bob)
            assert bob is not None
            assert bob.name == f"erased member {workshop.bob}"
        assert run(["member", "erase", "--member", str(workshop.bob), "--yes"]) == 1
        assert "was erased" in capsys.readouterr().err
    finally:
        engine.dispose()
