"""What a refused form says, in the reader's language.

The domain's errors carry English messages for the API and the command line; a page says
what kind of refusal it was from the catalogue instead (``error.*``), the most specific
kind first. Nothing was changed: the domain checks everything before it writes, and the
page's transaction is rolled back.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from server.auth.passwords import WeakPassword
from server.billing import errors as billing
from server.billing.catalogue import AlreadyRecorded, InvalidEntry
from server.billing.store import NotConfigured, UnknownRecord
from server.training import errors as training
from server.workshop import AlreadyExists, Conflict, InvalidValue, NotFound, WorkshopError

_KEYS: tuple[tuple[type[Exception], str], ...] = (
    (training.SelfCertification, "error.self_certification"),
    (training.NotATrainer, "error.not_a_trainer"),
    (training.NotPermitted, "error.not_permitted"),
    (training.PrerequisiteMissing, "error.prerequisite_missing"),
    (training.AlreadyCertified, "error.already_certified"),
    (training.MemberInactive, "error.member_inactive"),
    (training.ReasonRequired, "error.reason_required"),
    (WeakPassword, "error.weak_password"),
    (NotFound, "error.not_found"),
    (AlreadyExists, "error.already_exists"),
    (Conflict, "error.conflict"),
    (InvalidValue, "error.invalid_value"),
    (billing.OverlappingPrices, "error.overlapping_prices"),
    (billing.PeriodClosed, "error.period_closed"),
    (billing.InvalidPeriod, "error.invalid_period"),
    (billing.InvalidAmount, "error.invalid_amount"),
    (billing.InvalidIBAN, "error.invalid_iban"),
    (billing.InvalidBIC, "error.invalid_bic"),
    (billing.InvalidCreditorId, "error.invalid_creditor_id"),
    (billing.InvalidMandate, "error.sepa_refused"),
    (billing.InvalidInvoice, "error.invalid_invoice"),
    (billing.NoPrice, "error.no_price"),
    (NotConfigured, "error.not_configured"),
    (UnknownRecord, "error.not_found"),
    (AlreadyRecorded, "error.already_exists"),
    (InvalidEntry, "error.invalid_value"),
    (IntegrityError, "error.conflict"),
    (billing.BillingError, "error.refused"),
    (WorkshopError, "error.refused"),
    (PermissionError, "error.not_permitted"),
    (LookupError, "error.not_found"),
    (ValueError, "error.invalid_value"),
)

REFUSALS: tuple[type[Exception], ...] = (
    WorkshopError,
    billing.BillingError,
    IntegrityError,
    ValueError,
    LookupError,
)
"""What a form handler catches and shows; anything else is a fault of the server (500)."""


def error_key(error: Exception) -> str:
    return next((key for kind, key in _KEYS if isinstance(error, kind)), "error.refused")
