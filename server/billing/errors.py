"""Why a billing step is refused.

One root, :class:`BillingError`; each error also inherits the builtin it resembles,
so ``except ValueError`` or ``except LookupError`` works too. Every check that can
fail runs before anything is produced: a refused step changes nothing.
"""


class BillingError(Exception):
    """Root of the errors billing can meet."""


class InvalidAmount(BillingError, ValueError):
    """An amount or a rate that can never be right: negative, fractional cents, not a number."""


class InvalidPrice(BillingError, ValueError):
    """A price version, plan or consumable whose terms contradict each other."""


class OverlappingPrices(BillingError, ValueError):
    """Two price versions of one price list for the same machine (or class) are valid on a same day."""


class NoPrice(BillingError, LookupError):
    """No price version of the payer's price list covers this machine on this day."""


class InvalidPeriod(BillingError, ValueError):
    """A billing period that does not exist (``2026-13``, ``march``)."""


class PeriodClosed(BillingError, ValueError):
    """The period is closed already: a closed period never changes."""


class UnbalancedEntry(BillingError, ValueError):
    """A journal entry whose debits and credits differ, or a posting on both sides."""


class InvalidInvoice(BillingError, ValueError):
    """An invoice that cannot be built: a bad number, a gap in the numbering, mixed currencies."""


class ChainBroken(BillingError, ValueError):
    """An invoice's stored hash does not match its content or the invoice before it."""


class InvalidIBAN(BillingError, ValueError):
    """An IBAN whose format or check digits are wrong."""


class InvalidBIC(BillingError, ValueError):
    """A BIC (ISO 9362) whose format is wrong."""


class InvalidCreditorId(BillingError, ValueError):
    """A SEPA creditor identifier (AT-02) whose format or check digits are wrong."""


class InvalidMandate(BillingError, ValueError):
    """A SEPA mandate or collection that the scheme would refuse."""


class SepaSchemaError(BillingError, ValueError):
    """The SEPA file does not validate against the ISO 20022 schema; it is not written."""


class FecError(BillingError, ValueError):
    """The accounting entries cannot make a valid FEC: unbalanced, or numbered with gaps."""
