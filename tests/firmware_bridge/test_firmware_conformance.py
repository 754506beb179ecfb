"""The reference firmware's protocol core (hardware/firmware/atelier-bridge/src/bridge_protocol.*),
built for this machine with g++, speaks the protocol byte for byte as firmware_bridge does:
the same CRCs, COBS blocks and frames, the same verdicts on a mangled stream, the same
retransmission schedule."""

from __future__ import annotations

import random
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_bridge import cobs
from firmware_bridge.crc import crc16
from firmware_bridge.endpoint import Endpoint, after
from firmware_bridge.framing import Packet, pack
from firmware_bridge.messages import Current, Kind, Message, encode
from tests.firmware_bridge.test_framing import COBS_EXAMPLES

FIRMWARE = Path(__file__).resolve().parents[2] / "hardware" / "firmware" / "atelier-bridge"


class Core:
    """The firmware's protocol core as a process, one command per line."""

    def __init__(self, binary: Path) -> None:
        self.process = subprocess.Popen(
            [str(binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )

    def ask(self, line: str) -> str:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def feed(self, data: bytes) -> list[str]:
        assert self.process.stdout is not None
        first = self.ask(f"feed {data.hex()}")
        lines = [first]
        while lines[-1] != "end":
            lines.append(self.process.stdout.readline().strip())
        return lines[:-1]

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.fail(
            "g++ is needed to build the firmware's protocol core: apt-get install g++ (make test does)"
        )
    out = tmp_path_factory.mktemp("firmware") / "conformance"
    subprocess.run(
        [
            compiler,
            "-std=c++11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-O1",
            "-o",
            str(out),
            str(FIRMWARE / "test" / "host" / "conformance.cpp"),
            str(FIRMWARE / "src" / "bridge_protocol.cpp"),
        ],
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture
def core(binary: Path) -> Iterator[Core]:
    running = Core(binary)
    yield running
    running.close()


def test_the_crc_is_the_same(core: Core) -> None:
    assert core.ask("crc " + b"123456789".hex()) == "29b1"
    noise = random.Random(1)
    for size in [*range(70), 255, 256, 1000]:
        data = bytes(noise.getrandbits(8) for _ in range(size))
        assert core.ask(f"crc {data.hex()}") == f"{crc16(data):04x}"


def test_cobs_is_the_same(core: Core) -> None:
    for data, encoded in COBS_EXAMPLES:
        assert core.ask(f"cobs {data.hex()}") == encoded.hex()
    noise = random.Random(2)
    for size in range(0, 600, 7):
        data = bytes(noise.choice((0, 0, 1, noise.getrandbits(8))) for _ in range(size))
        assert core.ask(f"cobs {data.hex()}") == cobs.encode(data).hex()


def test_frames_are_the_same(core: Core) -> None:
    noise = random.Random(3)
    for _ in range(300):
        kind, seq = noise.getrandbits(8), noise.getrandbits(8)
        payload = bytes(noise.getrandbits(8) for _ in range(noise.randint(0, 64)))
        assert (
            core.ask(f"pack {kind:02x} {seq:02x} {payload.hex()}") == pack(Packet(kind, seq, payload)).hex()
        )


def python_verdicts(stream: list[bytes]) -> tuple[list[int], int]:
    taken: list[Message] = []
    endpoint = Endpoint(
        "python",
        lambda frame: None,
        on_message=taken.append,
        on_handshake=lambda m: None,
        on_give_up=lambda t: None,
    )
    for chunk in stream:
        endpoint.feed(chunk)
    return [message.milliamps for message in taken if isinstance(message, Current)], (
        endpoint.deframer.rejected + endpoint.rejected
    )


def firmware_verdicts(core: Core, stream: list[bytes]) -> tuple[list[int], int]:
    lines = [line for chunk in stream for line in core.feed(chunk)]
    taken = [int(line.split()[3][2:], 16) for line in lines if line.startswith("take")]
    rejected = sum(1 for line in lines if line.startswith("reject"))
    return taken, rejected


def mangled_stream(seed: int) -> list[bytes]:
    noise = random.Random(seed)
    stream: list[bytes] = []
    sent: list[bytes] = []
    last = 0
    for number in range(60):
        kind, payload = encode(Current(0, number))
        frame = pack(Packet(kind, after(last), payload))
        roll = noise.random()
        if roll < 0.5:
            stream.append(frame)
            sent.append(frame)
            last = after(last)
        elif roll < 0.6:
            spoilt = bytearray(frame)
            spoilt[noise.randrange(len(spoilt) - 1)] ^= 1 << noise.randrange(8)
            stream.append(bytes(spoilt))
        elif roll < 0.7:
            stream.append(frame[: noise.randint(1, len(frame) - 2)])
        elif roll < 0.8 and sent:
            stream.append(b"\x00" + noise.choice(sent))
        elif roll < 0.9:
            stream.append(bytes(noise.getrandbits(8) for _ in range(noise.randint(1, 90))))
        else:
            stream.append(pack(Packet(Kind.ACK, noise.randint(1, 255))))
    stream.append(b"\x00")
    return stream


@pytest.mark.parametrize("seed", range(12))
def test_a_mangled_stream_gets_the_same_verdicts(core: Core, seed: int) -> None:
    stream = mangled_stream(seed)
    python = python_verdicts(stream)
    firmware = firmware_verdicts(core, stream)
    assert firmware == python
    assert python[0], "some frames got through"


def test_retransmission_follows_the_same_schedule(core: Core) -> None:
    first = core.ask("send 31 00 1000")
    assert first == pack(Packet(Kind.BUTTON, 1, b"\x00")).hex()
    assert core.ask("send 31 01 1000") == "busy", "one frame in flight"
    assert core.ask("tick 1050") == "waiting"
    assert core.ask("tick 1100") == f"resend {first}"
    for now in (1200, 1300, 1400, 1500):
        assert core.ask(f"tick {now}").startswith("resend")
    assert core.ask("tick 1600") == "gave-up", "6 tries: the first and 5 more"
    assert core.ask("send 32 0000000001 2000") == pack(Packet(Kind.CURRENT, 2, b"\x00\x00\x00\x00\x01")).hex()
    assert core.ask("acked 1") == "no"
    assert core.ask("reset 2050") == "ok"  # a hello: renumbered from 1, sent again at once
    assert core.ask("tick 2050") == "resend " + pack(Packet(Kind.CURRENT, 1, b"\x00\x00\x00\x00\x01")).hex()
    assert core.ask("acked 1") == "yes"
    assert core.ask("tick 2300") == "idle"
