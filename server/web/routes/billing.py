"""The treasurer's desk: what is owed, invoices (PDF, credit notes) and payments.

Read by the treasurer and managers (as ``/api/v1/invoices`` and ``/balances`` are); what
records money (payments, credit notes) is the treasurer's, through :mod:`server.billing.books`
as ``atelier billing pay`` and ``credit-note`` do.
"""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Form, Path, Query, Request, Response
from fastapi.responses import HTMLResponse

from server.api.deps import ClockDep, SessionDep
from server.billing import books
from server.billing.books import PaymentKind, balance_report, outstanding
from server.billing.invoices import PayerKind
from server.billing.pdf import render_invoice
from server.billing.periods import workshop_day
from server.billing.store import find_invoice
from server.models import InvoiceRow, PaymentRow, SepaFile
from server.web import forms
from server.web.accounts import invoices_of
from server.web.i18n import language_of
from server.web.render import render
from server.web.session import BillingUser, TreasurerUser

router = APIRouter(prefix="/billing", include_in_schema=False)

NumberPath = Annotated[str, Path(pattern=r"^\d{4}-\d{6}$")]
PERIOD = r"^\d{4}-(0[1-9]|1[0-2])$"


@router.get("", response_class=HTMLResponse)
def billing_home(request: Request, caller: BillingUser, db: SessionDep, clock: ClockDep) -> HTMLResponse:
    due = outstanding(db)
    balances = balance_report(db)
    context = {
        "outstanding": due,
        "outstanding_cents": sum(o.due_cents for o in due),
        "balances": [b for b in balances if b[2] != 0],
        "closed": db.scalars(
            sa.select(InvoiceRow.period).distinct().order_by(InvoiceRow.period.desc())
        ).all(),
    }
    return render(request, "billing/home.html", context, caller=caller, db=db, clock=clock)


@router.get("/invoices", response_class=HTMLResponse)
def invoices_page(
    request: Request,
    caller: BillingUser,
    db: SessionDep,
    clock: ClockDep,
    period: Annotated[str | None, Query(pattern=PERIOD)] = None,
) -> HTMLResponse:
    periods = list(db.scalars(sa.select(InvoiceRow.period).distinct().order_by(InvoiceRow.period.desc())))
    chosen = period or (periods[0] if periods else None)
    found = invoices_of(db, InvoiceRow.period == chosen, limit=1000) if chosen else []
    payers = dict(
        db.execute(
            sa.select(InvoiceRow.number, InvoiceRow.payer_name).where(InvoiceRow.period == chosen)
        ).all()
    )
    credited = set(
        db.scalars(sa.select(InvoiceRow.credited_invoice).where(InvoiceRow.credited_invoice != ""))
    )
    context = {
        "periods": periods,
        "period": chosen,
        "invoices": found,
        "payers": payers,
        "credited": credited,
    }
    return render(request, "billing/invoices.html", context, caller=caller, db=db, clock=clock)


@router.get("/invoices/{number}.pdf")
def invoice_pdf(request: Request, number: NumberPath, caller: BillingUser, db: SessionDep) -> Response:
    try:
        _, invoice = find_invoice(db, number)
    except LookupError:
        return Response(status_code=404)
    language = request.query_params.get("lang") or language_of(request)
    return Response(
        render_invoice(invoice, language if language in ("fr", "en") else "fr"),
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{number}.pdf"'},
    )


@router.post("/invoices/{number}/credit-note")
def credit_note(number: NumberPath, caller: TreasurerUser, db: SessionDep, clock: ClockDep) -> Response:
    now = clock()

    def act() -> dict[str, object]:
        note = books.issue_credit_note(db, number, workshop_day(now), by=caller.id, now=now)
        return {"number": note.number, "invoice": number}

    period = db.scalar(sa.select(InvoiceRow.period).where(InvoiceRow.number == number)) or ""
    return forms.attempt(db, act, back=f"/billing/invoices?period={period}", ok="flash.credit_note")


@router.get("/payments", response_class=HTMLResponse)
def payments_page(request: Request, caller: BillingUser, db: SessionDep, clock: ClockDep) -> HTMLResponse:
    collected = set(
        db.scalars(sa.select(PaymentRow.reference).where(PaymentRow.kind == PaymentKind.SEPA.value))
    )
    files = list(db.scalars(sa.select(SepaFile).order_by(SepaFile.id.desc()).limit(24)))
    context = {
        "payments": list(db.scalars(sa.select(PaymentRow).order_by(PaymentRow.id.desc()).limit(30))),
        "numbers": dict(db.execute(sa.select(InvoiceRow.id, InvoiceRow.number)).all()),
        "kinds": [kind for kind in PaymentKind if kind is not PaymentKind.SEPA],
        "pending_files": [f for f in files if f.message_id not in collected],
        "today": workshop_day(clock()),
    }
    return render(request, "billing/payments.html", context, caller=caller, db=db, clock=clock)


@router.post("/payments")
def record_payment(
    *,
    caller: TreasurerUser,
    db: SessionDep,
    clock: ClockDep,
    invoice: Annotated[str, Form()] = "",
    member_id: Annotated[str, Form()] = "",
    amount: Annotated[str, Form()] = "",
    kind: Annotated[str, Form()] = PaymentKind.TRANSFER.value,
    on: Annotated[str, Form()] = "",
    reference: Annotated[str, Form()] = "",
) -> Response:
    now = clock()

    def act() -> None:
        try:
            chosen = PaymentKind(kind)
        except ValueError:
            raise forms.BadField() from None
        day = forms.optional_day(on) or workshop_day(now)
        number = forms.optional_text(invoice, limit=11)
        member = forms.optional_number(member_id, minimum=1)
        if (number is None) == (member is None):
            raise forms.BadField("error.invoice_or_member")
        books.record_payment(
            db, kind=chosen, amount_cents=forms.cents(amount), on=day,
            reference=forms.optional_text(reference, limit=64) or f"{chosen.value}-{day.isoformat()}",
            invoice=number, payer=(PayerKind.MEMBER, member) if member is not None else None, by=caller.id, now=now,
        )  # fmt: skip

    return forms.attempt(db, act, back="/billing/payments", ok="flash.payment")


@router.post("/payments/sepa")
def sepa_collected(
    *,
    caller: TreasurerUser,
    db: SessionDep,
    clock: ClockDep,
    message_id: Annotated[str, Form()] = "",
    on: Annotated[str, Form()] = "",
) -> Response:
    now = clock()

    def act() -> dict[str, object]:
        rows = books.record_sepa_collected(
            db,
            forms.text(message_id, limit=35),
            forms.optional_day(on) or workshop_day(now),
            by=caller.id,
            now=now,
        )
        return {"file": message_id, "count": len(rows)}

    return forms.attempt(db, act, back="/billing/payments", ok="flash.sepa_collected")
