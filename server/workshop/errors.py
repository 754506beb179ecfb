"""The errors a manager's action can meet; each also inherits the builtin it resembles,
so ``except LookupError`` works too."""


class WorkshopError(Exception):
    """Root of the errors a manager's action can meet."""


class NotFound(WorkshopError, LookupError):
    """The member, badge, skill, gateway, machine or certification does not exist."""


class AlreadyExists(WorkshopError, ValueError):
    """Something with this id (a badge UID, a slug) exists already."""


class Conflict(WorkshopError, ValueError):
    """The action contradicts the record's state (e.g. revoking twice)."""


class InvalidValue(WorkshopError, ValueError):
    """A value that can never be right (a bad slug, a naive datetime)."""
