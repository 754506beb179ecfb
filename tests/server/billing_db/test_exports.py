"""SEPA, FEC and CSV exports, payments and rejected debits, and the commands, on both databases."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from cli.main import main
from server.billing.books import (
    PaymentKind,
    add_mandate,
    export_sepa,
    outstanding,
    record_payment,
    record_sepa_collected,
)
from server.billing.errors import InvalidCreditorId, InvalidIBAN
from server.billing.fec import fec_rows
from server.billing.invoices import PayerKind
from server.billing.monthly import close_month
from server.billing.periods import Period
from server.billing.sepa import validate_pain008
from server.billing.store import auxiliary_of, balance_of, load_entries
from server.models import BillingSettings, DirectDebitRow, InvoiceRow, MandateRow, SepaFile
from tests.server.billing_db.conftest import Books, add_session, at, settings
from tests.server.billing_db.test_close import MARCH, march_usage

CREATED = datetime(2026, 4, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def closed(db: Session, books: Books) -> Books:
    march_usage(db, books)
    close_month(db, MARCH, date(2026, 4, 1))
    db.commit()
    return books


def test_sepa_export_is_valid_and_first_then_recurrent(db: Session, closed: Books) -> None:
    message_id, document, count = export_sepa(db, MARCH, date(2026, 4, 10), CREATED)
    db.commit()
    validate_pain008(document)  # against the ISO 20022 schema
    assert count == 2  # Alice and the coop have mandates; Bob has none
    assert document.count(b"<SeqTp>FRST</SeqTp>") == 1  # one batch per sequence type
    assert b"<EndToEndId>2026-000001</EndToEndId>" in document
    assert message_id == "ATELIER-2026-03-001"
    record_sepa_collected(db, message_id, date(2026, 4, 12))
    db.commit()
    assert {o.number for o in outstanding(db)} == {"2026-000002"}


def test_sepa_refuses_a_bad_iban_before_anything_is_written(db: Session, closed: Books) -> None:
    with pytest.raises(InvalidIBAN):
        add_mandate(
            db, PayerKind.MEMBER, closed.workshop.bob, reference="MANDATE-BOB", debtor="Bob",
            iban="FR7630006000011234567890188", signed_on=date(2026, 1, 1),
        )  # fmt: skip
    db.rollback()
    assert db.scalar(sa.select(sa.func.count()).select_from(MandateRow)) == 2


def test_sepa_refuses_a_bad_creditor_id_and_records_nothing(db: Session, closed: Books) -> None:
    db.add(settings(creditor_id="FR73ZZZ123456"))
    db.commit()
    with pytest.raises(InvalidCreditorId):
        export_sepa(db, MARCH, date(2026, 4, 10), CREATED)
    db.rollback()
    assert db.scalar(sa.select(sa.func.count()).select_from(SepaFile)) == 0
    assert db.scalar(sa.select(sa.func.count()).select_from(DirectDebitRow)) == 0


def test_fec_is_balanced(db: Session, closed: Books) -> None:
    record_payment(
        db,
        kind=PaymentKind.TRANSFER,
        amount_cents=1000,
        on=date(2026, 4, 5),
        reference="VIR-1",
        invoice="2026-000002",
    )
    db.commit()
    rows = fec_rows(load_entries(db))
    debit = sum(int(row[11].replace(",", "")) for row in rows)
    credit = sum(int(row[12].replace(",", "")) for row in rows)
    assert debit == credit > 0
    assert {row[0] for row in rows} == {"VT", "BQ"}


def test_a_rejected_debit_reopens_its_invoice(db: Session, closed: Books) -> None:
    alice = closed.workshop.alice
    message_id, _, _ = export_sepa(db, MARCH, date(2026, 4, 10), CREATED)
    record_sepa_collected(db, message_id, date(2026, 4, 12))
    db.commit()
    assert "2026-000001" not in {o.number for o in outstanding(db)}
    assert balance_of(db, auxiliary_of("member", alice)) == 0
    record_payment(
        db,
        kind=PaymentKind.REJECTED,
        amount_cents=680,
        on=date(2026, 4, 20),
        reference="RJCT",
        invoice="2026-000001",
    )
    db.commit()
    owed = {o.number: o.due_cents for o in outstanding(db)}
    assert owed["2026-000001"] == 680
    assert balance_of(db, auxiliary_of("member", alice)) == 680
    # The next file collects it again, now as a recurrent debit.
    _, document, count = export_sepa(db, MARCH, date(2026, 4, 25), CREATED)
    assert count == 1
    assert b"<SeqTp>RCUR</SeqTp>" in document


def test_commands(
    database_url: str,
    closed: Books,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ATELIER_DATABASE_URL", database_url)
    assert main(["billing", "verify"]) == 0
    assert main(["billing", "close", "--period", "2026-03", "--issued-on", "2026-04-02"]) == 1
    assert "2026-03 is closed already" in capsys.readouterr().err
    assert main(["billing", "close", "--period", "2026-13"]) == 1
    assert "not a month" in capsys.readouterr().err
    sepa, fec, csv, pdf = (tmp_path / name for name in ("dd.xml", "fec.txt", "lines.csv", "inv.pdf"))
    assert (
        main(["export", "sepa", "--period", "2026-03", "--out", str(sepa), "--collection-date", "2026-04-10"])
        == 0
    )
    validate_pain008(sepa.read_bytes())
    assert main(["export", "fec", "--period", "2026-04", "--out", str(fec)]) == 0
    assert fec.read_bytes().startswith(b"JournalCode\t")
    assert main(["export", "csv", "--period", "2026-03", "--out", str(csv)]) == 0
    assert "2026-000003" in csv.read_text(encoding="utf-8")
    assert (
        main(
            ["export", "csv", "--period", "2026-03", "--what", "sessions", "--out", str(csv), "--lang", "en"]
        )
        == 0
    )
    assert main(["billing", "pdf", "--invoice", "2026-000001", "--out", str(pdf), "--lang", "en"]) == 0
    assert pdf.read_bytes().startswith(b"%PDF")
    assert (
        main(["billing", "pay", "--invoice", "2026-000002", "--amount", "23,50", "--on", "2026-04-05"]) == 0
    )
    assert main(["billing", "credit-note", "--invoice", "2026-000003", "--issued-on", "2026-04-06"]) == 0
    capsys.readouterr()
    assert main(["billing", "outstanding"]) == 0
    out = capsys.readouterr().out
    assert "2026-000001" in out
    assert "2026-000002" not in out
    assert main(["billing", "balances"]) == 0
    assert main(["billing", "verify"]) == 0
    assert "4 invoices" in capsys.readouterr().out


def test_settings_command_refuses_a_bad_iban(
    database_url: str,
    books: Books,
    db: Session,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ATELIER_DATABASE_URL", database_url)
    argv = ["billing", "settings", "--name", "X", "--siret", "12345678900012", "--iban", "FR00 1234"]
    assert main(argv) == 1
    assert "IBAN" in capsys.readouterr().err
    assert db.scalar(sa.select(sa.func.count()).select_from(BillingSettings)) == 1
    assert db.scalar(sa.select(sa.func.count()).select_from(InvoiceRow)) == 0
    add_session(db, books.workshop.alice, "sewing-1", at(date(2026, 3, 3)), 10)
    db.commit()
    assert Period(2026, 3) == MARCH
