"""``atelier demo`` works as a newcomer runs it: in its own process, to the end of a round.

It runs on the in-process amqtt broker, the path a machine without Mosquitto
takes with ``make demo``, and checks that every session of the round was
recorded once; the server's API is then asked again from here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.services import free_port

ROOT = Path(__file__).resolve().parent.parent


def _demo(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATELIER_")}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cli.main",
            "demo",
            "--port",
            str(free_port()),
            "--data-dir",
            str(tmp_path),
            *args,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_one_round_of_the_demo_records_every_session(tmp_path: Path) -> None:
    demo = _demo(tmp_path, "--once", "--amqtt")
    output, _ = demo.communicate(timeout=150)
    assert demo.returncode == 0, output
    assert "amqtt (in-process)" in output
    refusals = (
        "not_certified",
        "unknown_badge",
        "member_inactive",
        "machine_locked_out",
        "certification_expired",
        "supervision_required",
    )
    for refusal in refusals:
        assert f"REFUSED ({refusal})" in output, f"the demo shows a {refusal} refusal"
    assert "Chloé Bernard: CERTIFIED at the machine (industrial-sewing)" in output
    assert "Inès Garnier: granted under the supervision of Maëlle Laurent" in output
    assert "The server recorded 11 usage sessions in this run" in output
    assert "Done: all 11 sessions were recorded, each once." in output
    # The server's link is cut: the gateways decide alone, from the allowlist it signed.
    assert "Léa Moreau: granted OFFLINE by the gateway" in output
    assert "Hugo: REFUSED at the gateway (server_unreachable)" in output
    assert "Nadia Benali: granted OFFLINE by the gateway" in output
    assert "Authorization: Bearer" in output, "the demo prints API tokens to try"
    # It makes its own credentials: a sign-in and a token per role (its own token reads the sessions above).
    for role, login in (
        ("member", "chloe@atelier.example"),
        ("trainer", "maelle@atelier.example"),
        ("treasurer", "lucas@atelier.example"),
        ("manager", "nadia@atelier.example"),
    ):
        assert f"curl -c {role}.jar -d login={login} -d password=demo-" in output, role
    assert (tmp_path / "atelier.db").exists(), "the demo's SQLite database is where it was told"


def test_ctrl_c_stops_the_demo_cleanly(tmp_path: Path) -> None:
    demo = _demo(tmp_path, "--amqtt")
    assert demo.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    for line in demo.stdout:
        lines.append(line)
        if "granted" in line or time.monotonic() > deadline:
            break
    demo.send_signal(signal.SIGINT)
    rest, _ = demo.communicate(timeout=60)  # a few seconds on a quiet machine; CI may be busy
    output = "".join(lines) + rest
    assert demo.returncode == 0, output
    assert "Ctrl-C: stopped." in output
    assert "Traceback" not in output
