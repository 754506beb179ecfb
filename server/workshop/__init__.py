"""Managing the workshop's records: one call per thing a manager does.

The API, the demo seed and the tests create members, badges, skills, gateways,
machines and certifications through these functions instead of writing SQL.
Each adds to the session and flushes (so ids exist and mistakes surface at
once) but does not commit: the caller decides what one transaction is.

Mistakes raise a :class:`WorkshopError` that says what is wrong; each also
inherits the builtin it resembles, so ``except LookupError`` works too.

- :mod:`server.workshop.members`: members, their badges and their roles.
- :mod:`server.workshop.skills`: skills and the certifications members hold in them.
- :mod:`server.workshop.machines`: gateways, machines, second factors and lockouts.
- :mod:`server.workshop.errors`: the errors; :mod:`server.workshop.records`: what they all share.

Callers import from here (``from server import workshop``; ``workshop.add_member(...)``).
"""

from server.workshop.errors import AlreadyExists, Conflict, InvalidValue, NotFound, WorkshopError
from server.workshop.machines import (
    add_gateway,
    add_machine,
    confirm_at_machine,
    get_gateway,
    get_machine,
    set_lockout,
    set_second_factor,
)
from server.workshop.members import (
    add_member,
    check_not_erased,
    enrol_badge,
    get_badge,
    get_member,
    set_badge_active,
    set_member_roles,
    set_member_status,
    update_member,
)
from server.workshop.records import UNCHANGED
from server.workshop.skills import (
    add_skill,
    get_certification,
    get_skill,
    grant_certification,
    revoke_certification,
    set_skill_training,
)

__all__ = [
    "UNCHANGED",
    "AlreadyExists",
    "Conflict",
    "InvalidValue",
    "NotFound",
    "WorkshopError",
    "add_gateway",
    "add_machine",
    "add_member",
    "add_skill",
    "check_not_erased",
    "confirm_at_machine",
    "enrol_badge",
    "get_badge",
    "get_certification",
    "get_gateway",
    "get_machine",
    "get_member",
    "get_skill",
    "grant_certification",
    "revoke_certification",
    "set_badge_active",
    "set_lockout",
    "set_member_roles",
    "set_member_status",
    "set_second_factor",
    "set_skill_training",
    "update_member",
]
