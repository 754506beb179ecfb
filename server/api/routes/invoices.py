"""Invoices and credit notes as issued, their PDFs, and every payer's balance: read only,
for the treasurer and managers (a member reads their own at ``/me/invoices``).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from pydantic import BaseModel

from server.api.deps import PageDep, SessionDep
from server.auth.policy import BillingRead
from server.billing.books import balance_report, outstanding
from server.billing.invoices import Invoice, PayerKind
from server.billing.pdf import render_invoice
from server.billing.store import UnknownRecord, find_invoice, load_invoices
from server.models import InvoiceRow

router = APIRouter(tags=["billing"])

NUMBER = r"^\d{4}-\d{6}$"
PERIOD = r"^\d{4}-(0[1-9]|1[0-2])$"
NumberPath = Annotated[str, Path(pattern=NUMBER, description="e.g. 2026-000042")]
Language = Annotated[str, Query(pattern="^(fr|en)$")]


class InvoiceLineOut(BaseModel):
    position: int
    kind: str
    member_id: int
    member_name: str
    machine: str
    machine_name: str
    day: date | None
    item: str
    quantity: int
    unit: str
    unit_price_cents: int | None
    unit_price_per: int | None
    amount_cents: int
    vat_rate_bp: int
    vat_cents: int
    price_version: str
    adjustment_for: str | None


class InvoiceOut(BaseModel):
    number: str
    kind: str
    issued_on: date
    due_on: date
    period: str
    credited_invoice: str
    payer_kind: str
    payer_id: int
    payer_name: str
    total_excl_vat_cents: int
    vat_cents: int
    total_cents: int
    due_cents: int
    """What is still to be paid on it (0 when settled, or for a credit note)."""
    hash: str


class InvoiceDetailOut(InvoiceOut):
    seller_name: str
    seller_siret: str
    seller_vat_exempt: bool
    payer_address: list[str]
    lines: list[InvoiceLineOut]


class BalanceOut(BaseModel):
    account: str
    """The payer's auxiliary account: ``M`` (member) or ``O`` (organisation) and the id."""
    payer_kind: str
    payer_id: int
    name: str
    balance_cents: int
    """Owed (positive) or held in credit (negative)."""


def summary(invoice: Invoice, due: dict[str, int]) -> dict[str, object]:
    return {
        "number": invoice.number,
        "kind": str(invoice.kind),
        "issued_on": invoice.issued_on,
        "due_on": invoice.due_on,
        "period": str(invoice.period),
        "credited_invoice": invoice.credited_invoice,
        "payer_kind": str(invoice.payer.kind),
        "payer_id": invoice.payer.id,
        "payer_name": invoice.payer.name,
        "total_excl_vat_cents": invoice.total_excl_vat_cents,
        "vat_cents": invoice.vat_cents,
        "total_cents": invoice.total_cents,
        "due_cents": due.get(invoice.number, 0),
        "hash": invoice.hash,
    }


def _due(db: SessionDep) -> dict[str, int]:
    return {o.number: o.due_cents for o in outstanding(db)}


@router.get("/invoices")
def list_invoices(
    *,
    caller: BillingRead,
    db: SessionDep,
    page: PageDep,
    period: Annotated[str | None, Query(pattern=PERIOD, description="YYYY-MM")] = None,
    payer_kind: PayerKind | None = None,
    payer_id: int | None = None,
) -> list[InvoiceOut]:
    """Invoices and credit notes in order of issue, optionally of one period and one payer."""
    if payer_id is not None and payer_kind is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "payer_id needs payer_kind")
    criteria: list[sa.ColumnElement[bool]] = []
    if period is not None:
        criteria.append(InvoiceRow.period == period)
    if payer_kind is not None:
        criteria.append(InvoiceRow.payer_kind == str(payer_kind))
    if payer_id is not None:
        criteria.append(InvoiceRow.payer_id == payer_id)
    ids = list(
        db.scalars(
            sa.select(InvoiceRow.id)
            .where(*criteria)
            .order_by(InvoiceRow.id)
            .limit(page.limit)
            .offset(page.offset)
        )
    )
    if not ids:
        return []
    due = _due(db)
    return [
        InvoiceOut.model_validate(summary(invoice, due))
        for _, invoice in load_invoices(db, InvoiceRow.id.in_(ids))
    ]


def _find(db: SessionDep, number: str) -> tuple[InvoiceRow, Invoice]:
    try:
        return find_invoice(db, number)
    except UnknownRecord:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no invoice {number}") from None


@router.get(
    "/invoices/{number}.pdf", response_class=Response, responses={200: {"content": {"application/pdf": {}}}}
)
def invoice_pdf(caller: BillingRead, db: SessionDep, number: NumberPath, lang: Language = "fr") -> Response:
    """The invoice or credit note as a PDF, rendered from what was issued."""
    _, invoice = _find(db, number)
    return pdf_response(invoice, lang)


def pdf_response(invoice: Invoice, lang: str) -> Response:
    return Response(
        render_invoice(invoice, lang),
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{invoice.number}.pdf"'},
    )


@router.get("/invoices/{number}")
def get_invoice(caller: BillingRead, db: SessionDep, number: NumberPath) -> InvoiceDetailOut:
    """One invoice or credit note with its lines."""
    _, invoice = _find(db, number)
    lines = [
        InvoiceLineOut(
            position=line.position,
            kind=str(line.kind),
            member_id=line.member_id,
            member_name=line.member_name,
            machine=line.machine,
            machine_name=line.machine_name,
            day=line.day,
            item=line.item,
            quantity=line.quantity,
            unit=str(line.unit),
            unit_price_cents=line.unit_price.cents if line.unit_price else None,
            unit_price_per=line.unit_price.per if line.unit_price else None,
            amount_cents=line.amount_cents,
            vat_rate_bp=line.vat_rate_bp,
            vat_cents=line.vat_cents,
            price_version=line.price_version,
            adjustment_for=str(line.adjustment_for) if line.adjustment_for else None,
        )
        for line in invoice.lines
    ]
    return InvoiceDetailOut.model_validate(
        summary(invoice, _due(db))
        | {
            "seller_name": invoice.seller.name,
            "seller_siret": invoice.seller.siret,
            "seller_vat_exempt": invoice.seller.vat_exempt,
            "payer_address": list(invoice.payer.address),
            "lines": lines,
        }
    )


@router.get("/balances")
def list_balances(caller: BillingRead, db: SessionDep) -> list[BalanceOut]:
    """Every payer with entries in the ledger, and what they owe (receivable account 411000)."""
    return [
        BalanceOut(
            account=account,
            payer_kind=str(PayerKind.MEMBER if account.startswith("M") else PayerKind.ORGANISATION),
            payer_id=int(account[1:]),
            name=name,
            balance_cents=total,
        )
        for account, name, total in balance_report(db)
    ]
