"""Why a trainer's action is refused. Each error also inherits the builtin it resembles
(and the workshop error whose HTTP status fits), so ``except PermissionError`` works too."""

from server.workshop import Conflict, InvalidValue, WorkshopError


class TrainingError(WorkshopError):
    """Root of the errors a certification or revocation can meet."""


class NotPermitted(TrainingError, PermissionError):
    """The person acting may not do this."""


class NotATrainer(NotPermitted):
    """Only a trainer for the skill (a valid trainer-level certification) or a manager may certify or revoke in it."""


class SelfCertification(NotPermitted):
    """Nobody certifies themself, nor revokes their own certification."""


class PrerequisiteMissing(TrainingError, Conflict):
    """The member must first hold (validly, at any level) every prerequisite skill."""


class AlreadyCertified(TrainingError, Conflict):
    """The member already holds the skill at this level or a higher one."""


class MemberInactive(TrainingError, Conflict):
    """The member's membership is suspended: reactivate it before certifying them."""


class ReasonRequired(TrainingError, InvalidValue):
    """A revocation says why: the member will read it."""
