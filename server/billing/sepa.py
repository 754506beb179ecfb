"""SEPA direct debits: mandates, and the pain.008.001.02 file the bank collects from.

- IBANs, BICs and the creditor identifier are checked with python-stdnum
  (``stdnum.iban``, ``stdnum.bic``, ``stdnum.eu.at_02`` — the ISO 7064 mod 97-10 check
  of the SEPA creditor identifier) when a :class:`Creditor` or :class:`Mandate` is made:
  a wrong one raises at once, before any file exists.
- One file holds one creditor's collections, grouped (one ``PmtInf`` each) by sequence
  type (``FRST`` for a mandate's first collection, ``RCUR`` after) and collection date.
- Each collection's end-to-end id is its invoice number; amounts are integer cents.
- The file is built with ``sepaxml`` and **always** validated against the ISO 20022
  schema that ``sepaxml`` ships (``pain.008.001.02.xsd``) with ``xmlschema``; a file
  that does not validate is never returned.
- The message id and creation time are given, not drawn at random, so building the
  same collections again gives the same bytes; the bank refuses a message id it has
  seen, so a file sent twice is not collected twice.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import StrEnum
from functools import cache
from importlib.resources import files
from typing import Any

import xmlschema
from sepaxml import SepaDD
from stdnum import bic as stdnum_bic
from stdnum import iban as stdnum_iban
from stdnum.eu import at_02
from stdnum.exceptions import ValidationError

from server.billing.errors import (
    InvalidBIC,
    InvalidCreditorId,
    InvalidIBAN,
    InvalidMandate,
    SepaSchemaError,
)

SCHEMA = "pain.008.001.02"
NAMESPACE = f"urn:iso:std:iso:20022:tech:xsd:{SCHEMA}"
MAX_AMOUNT_CENTS = 99_999_999_999

# The SEPA "Latin" character set, without the space (not allowed in a mandate reference).
_SEPA_ID = re.compile(r"^[A-Za-z0-9/?:().,'+-]{1,35}$")


class SequenceType(StrEnum):
    FIRST = "FRST"
    RECURRENT = "RCUR"


def valid_iban(text: str) -> str:
    """``text`` as a compact IBAN, or :class:`InvalidIBAN` saying why."""
    try:
        return str(stdnum_iban.validate(text))
    except ValidationError as error:
        raise InvalidIBAN(f"IBAN {text!r} is not valid: {error}") from error


def valid_bic(text: str) -> str:
    try:
        return str(stdnum_bic.validate(text))
    except ValidationError as error:
        raise InvalidBIC(f"BIC {text!r} is not valid: {error}") from error


def valid_creditor_id(text: str) -> str:
    """A SEPA creditor identifier (AT-02, e.g. ``FR72ZZZ123456``), compact, or :class:`InvalidCreditorId`."""
    compact = str(at_02.compact(text))
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{3}[A-Z0-9]{1,28}", compact):
        raise InvalidCreditorId(f"creditor identifier {text!r} is not valid: wrong format")
    try:
        return str(at_02.validate(compact))
    except ValidationError as error:
        raise InvalidCreditorId(f"creditor identifier {text!r} is not valid: {error}") from error


def _valid_id(text: str, what: str) -> str:
    if not _SEPA_ID.match(text):
        raise InvalidMandate(f"{what} {text!r}: 1 to 35 of A-Z a-z 0-9 / ? : ( ) . , ' + -")
    return text


@dataclass(frozen=True, slots=True)
class Creditor:
    """The association collecting: its name, account and creditor identifier (ICS)."""

    name: str
    iban: str
    bic: str
    creditor_id: str

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise InvalidMandate("the creditor has a name")
        object.__setattr__(self, "iban", valid_iban(self.iban))
        object.__setattr__(self, "bic", valid_bic(self.bic))
        object.__setattr__(self, "creditor_id", valid_creditor_id(self.creditor_id))


@dataclass(frozen=True, slots=True)
class Mandate:
    """A payer's signed authorisation to collect from their account."""

    reference: str
    debtor_name: str
    iban: str
    signed_on: date
    sequence: SequenceType = SequenceType.FIRST
    bic: str = ""
    """Optional since 2016 (IBAN-only); printed when known."""

    def __post_init__(self) -> None:
        _valid_id(self.reference, "mandate reference")
        if not self.debtor_name.strip():
            raise InvalidMandate(f"mandate {self.reference}: the debtor has a name")
        object.__setattr__(self, "iban", valid_iban(self.iban))
        if self.bic:
            object.__setattr__(self, "bic", valid_bic(self.bic))

    def after_collection(self) -> Mandate:
        """The mandate once a collection was sent: every later one is recurrent."""
        return replace(self, sequence=SequenceType.RECURRENT)


@dataclass(frozen=True, slots=True)
class DirectDebit:
    """One collection: an invoice's total, from a mandate, on a date."""

    end_to_end_id: str
    """The invoice number it settles."""
    amount_cents: int
    mandate: Mandate
    collection_date: date
    description: str

    def __post_init__(self) -> None:
        _valid_id(self.end_to_end_id, "end-to-end id")
        if not isinstance(self.amount_cents, int) or not 0 < self.amount_cents <= MAX_AMOUNT_CENTS:
            raise InvalidMandate(
                f"collection {self.end_to_end_id}: {self.amount_cents} cents cannot be collected"
            )
        if self.collection_date < self.mandate.signed_on:
            raise InvalidMandate(f"collection {self.end_to_end_id}: before its mandate was signed")


@cache
def _schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(files("sepaxml") / "schemas" / f"{SCHEMA}.xsd"))


def validate_pain008(document: bytes) -> None:
    """Refuse a document that is not valid pain.008.001.02, with the schema's first complaint."""
    for error in _schema().iter_errors(document.decode("utf-8")):
        raise SepaSchemaError(f"the SEPA file is not valid {SCHEMA}: {error.reason} at {error.path}")


def build_pain008(
    creditor: Creditor,
    debits: list[DirectDebit] | tuple[DirectDebit, ...],
    *,
    message_id: str,
    created_at: datetime,
) -> bytes:
    """The pain.008.001.02 document collecting ``debits`` for ``creditor``, validated.

    ``message_id`` (at most 30 characters; each batch adds ``-<n>``) names the file for
    the bank; ``created_at`` is written as its creation time.
    """
    if not debits:
        raise InvalidMandate("nothing to collect: a SEPA file holds at least one collection")
    if len(message_id) > 30:
        raise InvalidMandate(f"message id {message_id!r} is longer than 30 characters")
    _valid_id(message_id, "message id")
    if len({d.end_to_end_id for d in debits}) != len(debits):
        raise InvalidMandate("each invoice is collected once in a file")
    config: dict[str, Any] = {
        "name": creditor.name,
        "IBAN": creditor.iban,
        "BIC": creditor.bic,
        "batch": True,
        "creditor_id": creditor.creditor_id,
        "currency": "EUR",
        "instrument": "CORE",
    }
    sepa = SepaDD(config, schema=SCHEMA, clean=True)
    for debit in sorted(debits, key=lambda d: (d.mandate.sequence, d.collection_date, d.end_to_end_id)):
        payment: dict[str, Any] = {
            "name": debit.mandate.debtor_name,
            "IBAN": debit.mandate.iban,
            "amount": debit.amount_cents,
            "type": str(debit.mandate.sequence),
            "collection_date": debit.collection_date,
            "mandate_id": debit.mandate.reference,
            "mandate_date": debit.mandate.signed_on,
            "description": debit.description,
            "endtoend_id": debit.end_to_end_id,
        }
        if debit.mandate.bic:
            payment["BIC"] = debit.mandate.bic
        sepa.add_payment(payment)
    try:
        generated: bytes = sepa.export(validate=False)
    except Exception as error:  # sepaxml raises bare Exceptions for what it refuses
        raise SepaSchemaError(f"sepaxml refused the collections: {error}") from error
    document = _fix_ids(generated, message_id, created_at)
    validate_pain008(document)
    return document


def _fix_ids(generated: bytes, message_id: str, created_at: datetime) -> bytes:
    """Replace sepaxml's random message and batch ids and its clock with the given ones."""
    ET.register_namespace("", NAMESPACE)
    root = ET.fromstring(generated)  # noqa: S314 - our own document, just generated
    ns = {"p": NAMESPACE}
    header = root.find("p:CstmrDrctDbtInitn/p:GrpHdr", ns)
    if header is None:
        raise SepaSchemaError("sepaxml wrote no group header")
    _set(header, "p:MsgId", ns, message_id)
    _set(header, "p:CreDtTm", ns, created_at.replace(microsecond=0, tzinfo=None).isoformat())
    for position, batch in enumerate(root.iterfind("p:CstmrDrctDbtInitn/p:PmtInf", ns), start=1):
        _set(batch, "p:PmtInfId", ns, f"{message_id}-{position}")
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body


def _set(parent: ET.Element, path: str, ns: dict[str, str], text: str) -> None:
    element = parent.find(path, ns)
    if element is None:
        raise SepaSchemaError(f"sepaxml wrote no {path}")
    element.text = text
