"""The gateway's bridge link against the simulated firmware, through a pty: handshake,
sequenced and acknowledged messages, and recovery from flipped bits, cut frames, replayed
frames, lost ACKs, a silent or restarted microcontroller and a version mismatch."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import select
import socket
import time
import tty
from collections.abc import Callable, Iterator

import pytest

from firmware_bridge.errors import LinkDown
from firmware_bridge.framing import Packet, pack, unpack
from firmware_bridge.link import BridgeLink
from firmware_bridge.messages import Kind, SignalCode
from firmware_bridge.port import open_port
from firmware_bridge.simulator import FirmwareSimulator, _SocketPort


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


class Line:
    """A pty: the gateway opens the slave by path, the simulated firmware the master."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        tty.setraw(self.master)
        self.url = os.ttyname(self.slave)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class MasterPort:
    """The pty's master as a port for the simulator."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.written = bytearray()

    @property
    def in_waiting(self) -> int:
        return 0

    def read(self, size: int = 1) -> bytes:
        ready, _, _ = select.select([self.fd], [], [], 0.01)
        if not ready:
            return b""
        return os.read(self.fd, 4096)

    def write(self, data: bytes, /) -> int | None:
        self.written += data
        return os.write(self.fd, data)

    def close(self) -> None:
        pass


@pytest.fixture
def line() -> Iterator[Line]:
    pty = Line()
    yield pty
    pty.close()


def start(line: Line, **options: object) -> tuple[BridgeLink, FirmwareSimulator, MasterPort]:
    port = MasterPort(line.master)
    firmware = FirmwareSimulator(port, **options)  # type: ignore[arg-type]
    link = BridgeLink(line.url, start_grace_s=0.5)
    return link, firmware, port


@pytest.fixture
def linked(line: Line) -> Iterator[tuple[BridgeLink, FirmwareSimulator, MasterPort]]:
    link, firmware, port = start(line, channels=2)
    assert wait_until(lambda: link.up and firmware.linked)
    yield link, firmware, port
    link.close()
    firmware.close()


def test_the_gateway_says_hello_and_the_link_comes_up(line: Line) -> None:
    link, firmware, port = start(line, firmware="atelier-bridge 1.0.0 (test)")
    try:
        assert wait_until(lambda: link.up)
        assert link.peer is not None
        assert (link.peer.major, link.peer.channels, link.peer.firmware) == (
            1,
            1,
            "atelier-bridge 1.0.0 (test)",
        )
        assert link.peer.boot_id == firmware.boot_id
        assert firmware.hellos >= 1
        # What the firmware sent first: ANNOUNCE with its boot id, seq 0, never acknowledged.
        first = unpack(bytes(port.written).split(b"\x00")[0])
        assert first == Packet(Kind.ANNOUNCE, 0, firmware.boot_id.to_bytes(4, "big"))
    finally:
        link.close()
        firmware.close()


def test_badges_buttons_and_currents_reach_the_gateway(
    linked: tuple[BridgeLink, FirmwareSimulator, MasterPort],
) -> None:
    link, firmware, _ = linked
    heard: list[str] = []
    link.set_listener(1, "badge", lambda: heard.append("badge"))
    assert firmware.tap("04A1B2C3", channel=1).wait(2)
    assert heard == ["badge"]
    assert link.take_badge(0) is None
    assert link.take_badge(1) == "04A1B2C3"
    assert link.take_badge(1) is None, "each tap is read once"
    assert firmware.press(0).wait(2)
    assert link.take_press(0)
    assert not link.take_press(0)
    firmware.set_amps(2.345, channel=0)
    assert wait_until(lambda: link.amps(0) == pytest.approx(2.345))


def test_a_switch_command_returns_once_the_relay_is_set(
    linked: tuple[BridgeLink, FirmwareSimulator, MasterPort],
) -> None:
    link, firmware, _ = linked
    link.add_switch(0)
    assert wait_until(link.endpoint.idle)
    link.set_switch(0, True)
    assert firmware.relays == [True, False]
    assert link.switch_is_on(0)
    link.set_switch(0, False)
    assert firmware.relays == [False, False]
    link.indicate(1, SignalCode.DENIED, 2)
    assert wait_until(lambda: firmware.signals[1] == (SignalCode.DENIED, 2))


def test_flipped_bits_are_rejected_and_the_frame_sent_again(
    linked: tuple[BridgeLink, FirmwareSimulator, MasterPort], caplog: pytest.LogCaptureFixture
) -> None:
    link, firmware, _ = linked
    flipped: list[bytes] = []

    def flip_the_badge_frame(frame: bytes) -> bytes:
        if b"\x30" in frame[:3] and not flipped:  # the BADGE frame, once
            spoilt = bytearray(frame)
            spoilt[6] ^= 0x01  # a bit of the UID: the CRC no longer matches
            flipped.append(frame)
            return bytes(spoilt)
        return frame

    firmware.endpoint.outgoing_filter = flip_the_badge_frame
    with caplog.at_level(logging.WARNING):
        assert firmware.tap("04A1B2C3").wait(3)
    assert flipped
    assert link.take_badge(0) == "04A1B2C3"
    assert link.take_badge(0) is None, "delivered once"
    assert "bridge on" in caplog.text
    assert "rejected a bad CRC" in caplog.text
    assert link.up


def test_a_cut_frame_is_rejected_and_the_link_recovers(
    linked: tuple[BridgeLink, FirmwareSimulator, MasterPort], caplog: pytest.LogCaptureFixture
) -> None:
    link, firmware, _ = linked
    with caplog.at_level(logging.WARNING):
        firmware.write_raw(pack(Packet(Kind.BUTTON, 99, b"\x00"))[:4])  # cut: no delimiter
        assert firmware.tap("0BADCAFE").wait(3)
    assert link.take_badge(0) == "0BADCAFE"
    assert "rejected" in caplog.text
    assert link.up


def test_a_replayed_frame_is_rejected_and_a_repeated_one_not_acted_on_twice(
    linked: tuple[BridgeLink, FirmwareSimulator, MasterPort], caplog: pytest.LogCaptureFixture
) -> None:
    link, firmware, port = linked
    assert firmware.tap("04A1B2C3").wait(2)
    assert firmware.tap("0BADCAFE").wait(2)
    frames = [unpack(chunk) for chunk in bytes(port.written).split(b"\x00") if chunk]
    badges = [frame for frame in frames if frame.kind == Kind.BADGE]
    first, second = badges[0], badges[-1]
    assert (first.seq, second.seq) != (0, 0)
    assert [link.take_badge(0), link.take_badge(0)] == ["04A1B2C3", "0BADCAFE"]
    with caplog.at_level(logging.INFO):
        firmware.write_raw(pack(first))  # an old seq: replayed
        firmware.write_raw(pack(second))  # the last seq again: its ACK was lost
        time.sleep(0.2)
    assert link.take_badge(0) is None, "neither is delivered again"
    assert (
        f"rejected a replayed or out-of-order frame: seq {first.seq}, expected {second.seq % 255 + 1}"
        in caplog.text
    )
    assert f"seq {second.seq} again (our ACK was lost): acknowledged again" in caplog.text
    assert firmware.tap("0BADF00D").wait(2), "the link goes on"
    assert link.take_badge(0) == "0BADF00D"


def test_a_lost_ack_makes_the_firmware_resend_and_the_gateway_acts_once(
    linked: tuple[BridgeLink, FirmwareSimulator, MasterPort],
) -> None:
    link, firmware, _ = linked
    dropped: list[bytes] = []

    def drop_one_ack(frame: bytes) -> bytes:
        if unpack(frame[:-1]).kind == Kind.ACK and not dropped:
            dropped.append(frame)
            return b""
        return frame

    link.endpoint.outgoing_filter = drop_one_ack
    assert firmware.press(1).wait(3)
    assert dropped
    assert link.take_press(1)
    assert not link.take_press(1)


def test_a_microcontroller_that_stops_answering_fails_the_switch_then_comes_back(
    linked: tuple[BridgeLink, FirmwareSimulator, MasterPort],
) -> None:
    link, firmware, _ = linked
    firmware.endpoint.outgoing_filter = lambda frame: b""  # deaf-mute
    started = time.monotonic()
    with pytest.raises(LinkDown, match="not acknowledged") as raised:
        link.set_switch(0, True)
    assert isinstance(raised.value, OSError)
    assert time.monotonic() - started < 1.5
    assert not link.switch_is_on(0)
    assert wait_until(lambda: not link.up)
    with pytest.raises(LinkDown, match="stopped acknowledging"):
        link.amps(0)
    firmware.endpoint.outgoing_filter = None
    assert wait_until(lambda: link.up, 5)
    link.set_switch(0, True)
    assert firmware.relays[0]


def test_a_restarted_microcontroller_keeps_its_relays_off(
    linked: tuple[BridgeLink, FirmwareSimulator, MasterPort], caplog: pytest.LogCaptureFixture
) -> None:
    link, firmware, _ = linked
    link.add_switch(0)
    link.set_switch(0, True)
    assert firmware.relays[0]
    old_boot = firmware.boot_id
    with caplog.at_level(logging.WARNING):
        firmware.reboot()
        assert wait_until(lambda: link.up and link.peer is not None and link.peer.boot_id != old_boot)
    assert not link.switch_is_on(0)
    time.sleep(0.3)
    assert firmware.relays == [False, False], "never switched on again by the gateway itself"
    assert "the microcontroller restarted" in caplog.text


def test_another_protocol_version_is_refused_with_a_clear_reason(
    line: Line, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        link, firmware, _ = start(line, major=2, firmware="atelier-bridge 2.0.0")
        try:
            assert wait_until(lambda: firmware.hellos >= 1)
            time.sleep(0.6)  # past the link's start grace
            assert not link.up
            with pytest.raises(LinkDown, match=r"speaks bridge protocol 2\.0, this gateway 1\.x"):
                link.take_badge(0)
        finally:
            link.close()
            firmware.close()
    assert "update its firmware (atelier-bridge 2.0.0)" in caplog.text


def test_garbage_on_the_line_never_breaks_the_link(
    linked: tuple[BridgeLink, FirmwareSimulator, MasterPort],
) -> None:
    link, firmware, _ = linked
    noise = random.Random(8)
    for _ in range(20):
        firmware.write_raw(bytes(noise.getrandbits(8) for _ in range(noise.randint(1, 120))))
    firmware.write_raw(b"\x00")
    assert firmware.tap("04A1B2C3").wait(3)
    assert link.take_badge(0) == "04A1B2C3"
    assert link.up


def test_a_missing_port_is_a_link_down_and_a_bad_url_a_value_error() -> None:
    link = BridgeLink("/dev/ttyATELIER-NONE", start_grace_s=0)
    try:
        with pytest.raises(LinkDown, match="ttyATELIER-NONE"):
            link.amps(0)
    finally:
        link.close()
    with pytest.raises(ValueError, match="bogus"):
        BridgeLink("bogus://x")


def test_a_socket_url_works_too() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    address = server.getsockname()
    link = BridgeLink(f"socket://127.0.0.1:{address[1]}")
    connection, _ = server.accept()
    server.close()
    firmware = FirmwareSimulator(_SocketPort(connection))
    try:
        assert wait_until(lambda: link.up)
        assert firmware.tap("04A1B2C3").wait(2)
        assert link.take_badge(0) == "04A1B2C3"
    finally:
        link.close()
        firmware.close()


def test_open_port_opens_a_loop_url() -> None:
    port = open_port("loop://")
    port.write(b"\x01\x02")
    assert port.read(2) == b"\x01\x02"
    port.close()
