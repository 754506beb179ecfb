"""The gateway daemon stays light: what `atelier gateway` imports (docs/benchmarks.md, issue 8).

On a Pi Zero the gateway must stay under 40 MB resident. pydantic and cryptography (its own
OpenSSL) alone cost about 20 MiB there, and the server's stack (FastAPI, SQLAlchemy) far
more: none of them may be imported on the gateway's path. Each check runs in a fresh
interpreter, since this one has imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controller.config import EXAMPLE_CONFIG
from protocol.allowlist import Allowlist, AllowlistEntry, public_key_text, sign
from protocol.messages import encode

ROOT = Path(__file__).resolve().parents[2]

HEAVY = {
    "pydantic",
    "pydantic_core",
    "pydantic_settings",
    "cryptography",
    "fastapi",
    "starlette",
    "sqlalchemy",
    "alembic",
    "uvicorn",
    "server",
    "demo",
}

# Parses the command line as `atelier gateway` does, loads a configuration with an allowlist
# key, builds the gateway's parts module and verifies a signed allowlist, starting nothing.
CHILD = """
import json, sys
from cli.main import _LIGHT_COMMANDS, _command_of, build_parser
from controller.config import load_config
import controller.cli, controller.gateway, controller.hardware.factory
from protocol.allowlist import public_key_from_text, receive

argv = ["gateway", "--config", sys.argv[1]]
args = build_parser(_LIGHT_COMMANDS[_command_of(argv)]).parse_args(argv)
assert args.func is controller.cli.run_gateway
config = load_config(args.config, environ={})
keys = {key_id: public_key_from_text(text) for key_id, text in config.gateway.allowlist_keys.items()}
with open(sys.argv[2], "rb") as payload:
    assert receive(payload.read(), keys).version == 7
print(json.dumps(sorted(sys.modules)))
"""


def test_the_gateway_imports_neither_pydantic_nor_cryptography_nor_the_server(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    config = tmp_path / "gateway.toml"
    text = EXAMPLE_CONFIG.read_text()
    config.write_text(
        text.replace(
            "[gateway]\n",
            f'[gateway]\nallowlist_keys = {{ site-1 = "{public_key_text(key.public_key())}" }}\n',
            1,
        )
    )
    allowlist = Allowlist(
        site="demo",
        gateway="atelier-gw-1",
        version=7,
        issued_at_ms=0,
        expires_at_ms=1,
        entries=[AllowlistEntry(badge="04a1b2c3", member_id=1)],
    )
    payload = tmp_path / "allowlist.json"
    payload.write_bytes(encode(sign(allowlist, key, "site-1")))

    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(config), str(payload)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    imported = {name.split(".")[0] for name in json.loads(result.stdout)}
    assert {"controller", "protocol", "msgspec", "ecdsa", "paho"} <= imported
    assert imported & HEAVY == set()
