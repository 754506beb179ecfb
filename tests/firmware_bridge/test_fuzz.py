"""Random bytes and mangled streams fed to the bridge's receiving end: nothing escapes, nothing
is acted on twice or out of order, and the next good frame is taken."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.endpoint import Endpoint, Ticket, after
from firmware_bridge.framing import Packet, pack
from firmware_bridge.messages import Button, Current, Kind, Message, encode


class Receiver:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.handshakes: list[Message] = []
        self.written = bytearray()
        self.endpoint = Endpoint(
            "fuzzed",
            self.written.extend,
            on_message=self.messages.append,
            on_handshake=self.handshakes.append,
            on_give_up=lambda ticket: None,
        )

    def next_frame(self, channel: int) -> bytes:
        return pack(Packet(Kind.BUTTON, after(self.endpoint._last_in), bytes((channel,))))

    def numbered_frame(self, number: int) -> bytes:
        """The next sequenced frame, carrying ``number`` (as a current reading) to be told apart."""
        kind, payload = encode(Current(0, number))
        return pack(Packet(kind, after(self.endpoint._last_in), payload))


@settings(max_examples=400, deadline=None)
@given(garbage=st.binary(max_size=500))
def test_random_bytes_never_raise_and_the_next_frame_is_taken(garbage: bytes) -> None:
    receiver = Receiver()
    receiver.endpoint.feed(garbage)
    receiver.endpoint.feed(b"\x00" + receiver.next_frame(3))
    assert receiver.messages[-1] == Button(3)


OPERATIONS = st.lists(
    st.one_of(
        st.just(("good", 0)),
        st.tuples(st.just("flip"), st.integers(0, 1000)),
        st.tuples(st.just("cut"), st.integers(1, 12)),
        st.tuples(st.just("replay"), st.integers(0, 20)),
        st.tuples(st.just("noise"), st.integers(0, 2**32)),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(operations=OPERATIONS)
def test_a_mangled_stream_delivers_in_order_at_most_once(operations: list[tuple[str, int]]) -> None:
    receiver = Receiver()
    sent: list[bytes] = []  # every intact frame, in order; frame n carries the number n
    for operation, argument in operations:
        frame = receiver.numbered_frame(len(sent))
        if operation == "good":
            receiver.endpoint.feed(frame)
            sent.append(frame)
        elif operation == "flip":
            spoilt = bytearray(frame)
            spoilt[argument % (len(spoilt) - 1)] ^= 1 << (argument % 8)
            receiver.endpoint.feed(bytes(spoilt))
        elif operation == "cut":  # at least the last CRC byte and the delimiter missing
            receiver.endpoint.feed(frame[: min(argument, len(frame) - 2)])
        elif operation == "replay" and sent:
            receiver.endpoint.feed(b"\x00" + sent[-1 - argument % len(sent)])
        elif operation == "noise":
            receiver.endpoint.feed(argument.to_bytes(5, "big"))
    receiver.endpoint.feed(b"\x00")
    receiver.endpoint.feed(receiver.numbered_frame(10_000))

    numbers = [message.milliamps for message in receiver.messages if isinstance(message, Current)]
    assert numbers[-1] == 10_000, "the final clean frame is taken"
    taken = numbers[:-1]
    assert taken == sorted(set(taken)), "in order, none twice"
    # A spoilt frame carries the number the next good one would (len(sent) then): noise can, by
    # chance, restore the very bytes a cut took away, and then that frame is rightly taken.
    assert all(0 <= number <= len(sent) for number in taken), "none invented"


def test_the_ack_goes_back_for_each_frame_taken() -> None:
    receiver = Receiver()
    receiver.endpoint.feed(receiver.next_frame(0))
    assert bytes(receiver.written) == pack(Packet(Kind.ACK, 1))


def test_a_ticket_fails_after_the_retries() -> None:
    gave_up: list[Ticket] = []
    clock = [0.0]
    endpoint = Endpoint(
        "sender",
        lambda frame: None,
        on_message=lambda message: None,
        on_handshake=lambda message: None,
        on_give_up=gave_up.append,
        ack_timeout_s=0.1,
        retries=2,
        clock=lambda: clock[0],
    )
    ticket = endpoint.send(Button(0))
    for _ in range(5):
        endpoint.tick()
        clock[0] += 0.11
    assert gave_up == [ticket]
    assert ticket.done.is_set()
    assert not ticket.ok
    assert ticket.error == "no ACK after 3 tries"
