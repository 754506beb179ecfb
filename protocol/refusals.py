"""Refusals grouped by what the member can do about them, for lights and buzzers.

A machine's LEDs and buzzer cannot spell a :class:`~protocol.messages.Reason`, but
they can tell a few families apart, each with its own pattern (docs/operations.md,
"Lights and sounds at a machine"), and so can a microcontroller behind the firmware
bridge, which receives the family's number (docs/firmware-protocol.md). The
numbers are part of that wire contract: never renumber them.
"""

from enum import IntEnum

from protocol.messages import Reason


class RefusalFamily(IntEnum):
    BADGE = 1  # the badge or the member: unknown, disabled, membership lapsed, not confirmed
    TRAINING = 2  # not certified for this machine (or expired, or needs a trainer)
    BALANCE = 3  # prepaid balance too low
    MACHINE = 4  # the machine: locked out, or in someone else's session
    SYSTEM = 5  # the gateway could not get an answer it trusts: ask the staff


FAMILIES: dict[Reason, RefusalFamily] = {
    Reason.UNKNOWN_BADGE: RefusalFamily.BADGE,
    Reason.BADGE_DISABLED: RefusalFamily.BADGE,
    Reason.MEMBER_INACTIVE: RefusalFamily.BADGE,
    Reason.SECOND_FACTOR_REQUIRED: RefusalFamily.BADGE,  # prove the badge is yours, in the web app
    Reason.NOT_CERTIFIED: RefusalFamily.TRAINING,
    Reason.CERTIFICATION_EXPIRED: RefusalFamily.TRAINING,
    Reason.SUPERVISION_REQUIRED: RefusalFamily.TRAINING,
    Reason.NOT_A_TRAINER: RefusalFamily.TRAINING,
    Reason.SELF_CERTIFICATION: RefusalFamily.TRAINING,
    Reason.PREREQUISITE_MISSING: RefusalFamily.TRAINING,
    Reason.INSUFFICIENT_BALANCE: RefusalFamily.BALANCE,
    Reason.MACHINE_LOCKED_OUT: RefusalFamily.MACHINE,
    Reason.MACHINE_IN_USE: RefusalFamily.MACHINE,
    Reason.UNKNOWN_MACHINE: RefusalFamily.SYSTEM,
    Reason.UNKNOWN_GATEWAY: RefusalFamily.SYSTEM,
    Reason.REQUEST_EXPIRED: RefusalFamily.SYSTEM,
    Reason.BAD_REQUEST: RefusalFamily.SYSTEM,
    Reason.SERVER_UNREACHABLE: RefusalFamily.SYSTEM,
}


def family_of(reason: Reason | None) -> RefusalFamily:
    """The family of a refusal; one without a reason (or a reason this build does not know)
    is a system one."""
    if reason is None:
        return RefusalFamily.SYSTEM
    return FAMILIES.get(reason, RefusalFamily.SYSTEM)
