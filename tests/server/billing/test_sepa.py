"""SEPA direct debits: checked identifiers, grouped batches, and a file valid against the ISO 20022 XSD."""

import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import date, datetime
from importlib.resources import files

import pytest
import xmlschema

from server.billing.errors import (
    BillingError,
    InvalidBIC,
    InvalidCreditorId,
    InvalidIBAN,
    InvalidMandate,
    SepaSchemaError,
)
from server.billing.sepa import (
    NAMESPACE,
    Creditor,
    DirectDebit,
    Mandate,
    SequenceType,
    build_pain008,
    valid_creditor_id,
    validate_pain008,
)

NS = {"p": NAMESPACE}
CREDITOR = Creditor(
    "Atelier Cœur de Fil", "FR76 3000 6000 0112 3456 7890 189", "AGRIFRPP882", "FR72ZZZ123456"
)
FIRST = Mandate("ATL-M-000001", "Élodie Lœwy", "DE89 3704 0044 0532 0130 00", date(2025, 9, 1))
RECURRENT = Mandate(
    "ATL-M-000002", "Collectif Mailles & Œuvres", "FR1420041010050500013M02606", date(2024, 1, 15),
    SequenceType.RECURRENT, "PSSTFRPPLIL",
)  # fmt: skip
OTHER = Mandate(
    "ATL-M-000003", "Bob Lefèvre", "GB29 NWBK 6016 1331 9268 19", date(2025, 2, 2), SequenceType.RECURRENT
)
COLLECTION = date(2026, 4, 10)


def debits() -> list[DirectDebit]:
    return [
        DirectDebit("2026-000001", 4819, FIRST, COLLECTION, "Facture 2026-000001 Atelier"),
        DirectDebit("2026-000002", 2568, RECURRENT, COLLECTION, "Facture 2026-000002"),
        DirectDebit("2026-000003", 99, OTHER, COLLECTION, "Facture 2026-000003"),
        DirectDebit("2026-000004", 1, OTHER, date(2026, 4, 15), "Facture 2026-000004"),
    ]


def build() -> bytes:
    return build_pain008(CREDITOR, debits(), message_id="ATL-2026-03", created_at=datetime(2026, 4, 2, 9, 30))


def test_the_file_is_valid_pain_008_001_02() -> None:
    document = build()
    schema = xmlschema.XMLSchema(str(files("sepaxml") / "schemas" / "pain.008.001.02.xsd"))
    assert schema.is_valid(document.decode())
    assert document.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')


def test_collections_are_grouped_by_sequence_type_and_date() -> None:
    root = ET.fromstring(build())  # noqa: S314 - our own document
    header = root.find("p:CstmrDrctDbtInitn/p:GrpHdr", NS)
    assert header is not None
    assert header.findtext("p:MsgId", namespaces=NS) == "ATL-2026-03"
    assert header.findtext("p:CreDtTm", namespaces=NS) == "2026-04-02T09:30:00"
    assert header.findtext("p:NbOfTxs", namespaces=NS) == "4"
    assert header.findtext("p:CtrlSum", namespaces=NS) == "74.87"
    assert header.findtext("p:InitgPty/p:Id/p:OrgId/p:Othr/p:Id", namespaces=NS) == "FR72ZZZ123456"
    batches = [
        (
            batch.findtext("p:PmtInfId", namespaces=NS),
            batch.findtext("p:PmtTpInf/p:SeqTp", namespaces=NS),
            batch.findtext("p:ReqdColltnDt", namespaces=NS),
            batch.findtext("p:CtrlSum", namespaces=NS),
            [
                tx.findtext("p:PmtId/p:EndToEndId", namespaces=NS)
                for tx in batch.iterfind("p:DrctDbtTxInf", NS)
            ],
            batch.findtext("p:CdtrAcct/p:Id/p:IBAN", namespaces=NS),
            batch.findtext("p:CdtrSchmeId/p:Id/p:PrvtId/p:Othr/p:Id", namespaces=NS),
        )
        for batch in root.iterfind("p:CstmrDrctDbtInitn/p:PmtInf", NS)
    ]
    iban, ics = "FR7630006000011234567890189", "FR72ZZZ123456"
    assert batches == [
        ("ATL-2026-03-1", "FRST", "2026-04-10", "48.19", ["2026-000001"], iban, ics),
        ("ATL-2026-03-2", "RCUR", "2026-04-10", "26.67", ["2026-000002", "2026-000003"], iban, ics),
        ("ATL-2026-03-3", "RCUR", "2026-04-15", "0.01", ["2026-000004"], iban, ics),
    ]


def test_each_collection_carries_its_mandate_and_amount() -> None:
    root = ET.fromstring(build())  # noqa: S314 - our own document
    tx = next(root.iterfind(".//p:DrctDbtTxInf", NS))
    assert tx.findtext("p:InstdAmt", namespaces=NS) == "48.19"
    assert tx.find("p:InstdAmt", NS).attrib == {"Ccy": "EUR"}  # type: ignore[union-attr]
    assert tx.findtext("p:DrctDbtTx/p:MndtRltdInf/p:MndtId", namespaces=NS) == "ATL-M-000001"
    assert tx.findtext("p:DrctDbtTx/p:MndtRltdInf/p:DtOfSgntr", namespaces=NS) == "2025-09-01"
    assert tx.findtext("p:Dbtr/p:Nm", namespaces=NS) == "Elodie Loewy"  # the SEPA character set
    assert tx.findtext("p:DbtrAcct/p:Id/p:IBAN", namespaces=NS) == "DE89370400440532013000"
    assert tx.findtext("p:RmtInf/p:Ustrd", namespaces=NS) == "Facture 2026-000001 Atelier"


def test_the_same_collections_give_the_same_file() -> None:
    assert build() == build()
    reordered = build_pain008(
        CREDITOR, debits()[::-1], message_id="ATL-2026-03", created_at=datetime(2026, 4, 2, 9, 30)
    )
    assert reordered == build()


@pytest.mark.parametrize(
    "iban", ["FR76 3000 6000 0112 3456 7890 188", "FR76", "XX00123", "DE89 3704 0044 0532 0130 0", ""]
)
def test_an_invalid_iban_is_refused_before_any_file_exists(iban: str) -> None:
    with pytest.raises(InvalidIBAN) as caught:
        Mandate("ATL-M-000009", "Alice", iban, date(2025, 1, 1))
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, BillingError)
    with pytest.raises(InvalidIBAN):
        Creditor("Atelier", iban, "AGRIFRPP882", "FR72ZZZ123456")


@pytest.mark.parametrize(
    "creditor_id", ["FR73ZZZ123456", "FR72ZZZ12345!", "72ZZZ123456", "FR", "FRXXZZZ123456"]
)
def test_an_invalid_creditor_identifier_is_refused(creditor_id: str) -> None:
    with pytest.raises(InvalidCreditorId):
        Creditor("Atelier", "FR7630006000011234567890189", "AGRIFRPP882", creditor_id)


def test_a_creditor_identifier_is_checked_mod_97_10() -> None:
    assert valid_creditor_id("FR 72 ZZZ 123456") == "FR72ZZZ123456"
    assert valid_creditor_id("ES23ZZZ47690558N") == "ES23ZZZ47690558N"


@pytest.mark.parametrize("bic", ["AGRIFRPP8", "AGRIF2PP", "1234"])
def test_an_invalid_bic_is_refused(bic: str) -> None:
    with pytest.raises(InvalidBIC):
        Creditor("Atelier", "FR7630006000011234567890189", bic, "FR72ZZZ123456")
    with pytest.raises(InvalidBIC):
        Mandate("ATL-M-000009", "Alice", "FR7630006000011234567890189", date(2025, 1, 1), bic=bic)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Mandate("ATL M 1", "Alice", "FR7630006000011234567890189", date(2025, 1, 1)), "reference"),
        (lambda: Mandate("M" * 36, "Alice", "FR7630006000011234567890189", date(2025, 1, 1)), "reference"),
        (lambda: Mandate("ATL-M-1", " ", "FR7630006000011234567890189", date(2025, 1, 1)), "name"),
        (lambda: DirectDebit("2026-000001", 0, FIRST, COLLECTION, "x"), "cannot be collected"),
        (lambda: DirectDebit("2026-000001", -5, FIRST, COLLECTION, "x"), "cannot be collected"),
        (lambda: DirectDebit("2026-000001", 5, FIRST, date(2025, 1, 1), "x"), "before its mandate"),
        (lambda: DirectDebit("2026 000001", 5, FIRST, COLLECTION, "x"), "end-to-end"),
    ],
)
def test_a_collection_the_scheme_would_refuse_is_refused(make: Callable[[], object], match: str) -> None:
    with pytest.raises(InvalidMandate, match=match):
        make()


def test_a_file_needs_collections_and_a_short_message_id() -> None:
    at = datetime(2026, 4, 2, 9, 30)
    with pytest.raises(InvalidMandate):
        build_pain008(CREDITOR, [], message_id="ATL-2026-03", created_at=at)
    with pytest.raises(InvalidMandate):
        build_pain008(CREDITOR, debits(), message_id="A" * 31, created_at=at)
    with pytest.raises(InvalidMandate):
        build_pain008(CREDITOR, [debits()[0], debits()[0]], message_id="ATL-2026-03", created_at=at)


def test_an_invalid_document_is_refused_by_the_schema() -> None:
    document = build().replace(b"<MsgId>ATL-2026-03</MsgId>", b"")
    with pytest.raises(SepaSchemaError, match=r"pain\.008\.001\.02"):
        validate_pain008(document)


def test_a_first_collection_makes_the_mandate_recurrent() -> None:
    assert FIRST.sequence is SequenceType.FIRST
    assert FIRST.after_collection().sequence is SequenceType.RECURRENT
    assert FIRST.after_collection().reference == FIRST.reference
