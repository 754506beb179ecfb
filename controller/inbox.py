"""What the gateway's worker is handed, through one queue.

Replies, acknowledgements and commands come from paho's network thread, taps
and button presses from parts that announce them, the stop request from
whoever stops the gateway. One queue keeps them in arrival order and wakes
the worker at once.
"""

from dataclasses import dataclass

from protocol.messages import AccessReply, CertifyReply, Command, EventAck


@dataclass(frozen=True, slots=True)
class Reply:
    reply: AccessReply


@dataclass(frozen=True, slots=True)
class CertifyAnswer:
    reply: CertifyReply


@dataclass(frozen=True, slots=True)
class Ack:
    ack: EventAck


@dataclass(frozen=True, slots=True)
class CommandArrived:
    command: Command


@dataclass(frozen=True, slots=True)
class Connected:
    pass


@dataclass(frozen=True, slots=True)
class AllowlistArrived:
    payload: bytes


@dataclass(frozen=True, slots=True)
class Tapped:
    machine: str


@dataclass(frozen=True, slots=True)
class Pressed:
    machine: str


@dataclass(frozen=True, slots=True)
class Stop:
    pass


Item = Reply | CertifyAnswer | Ack | CommandArrived | Connected | AllowlistArrived | Tapped | Pressed | Stop
