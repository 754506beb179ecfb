"""``atelier billing price-list|price|plan|org|partner|consumable|sale``: a treasurer's walk-through, and refusals.

A refusal exits 1 with one line on stderr and changes nothing, on both databases.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from cli.main import main
from server.models import (
    AuditEntry,
    ConsumableRow,
    ConsumableSaleRow,
    InvoiceLineRow,
    Member,
    MemberPlan,
    Organisation,
    PlanRow,
    PriceList,
    PriceVersionRow,
)
from tests.server.billing_db.conftest import Books

Run = Callable[..., str]

TABLES = (
    PriceList, PriceVersionRow, PlanRow, MemberPlan, Organisation, ConsumableRow, ConsumableSaleRow, AuditEntry,
)  # fmt: skip


@pytest.fixture
def run(
    database_url: str, books: Books, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Run:
    """``run("billing", ...)``: the command's output; it must succeed."""
    monkeypatch.setenv("ATELIER_DATABASE_URL", database_url)
    capsys.readouterr()

    def command(*argv: str) -> str:
        code = main(list(argv))
        captured = capsys.readouterr()
        assert code == 0, captured.err
        return captured.out

    return command


@pytest.fixture
def refuse(db: Session, run: Run, capsys: pytest.CaptureFixture[str]) -> Callable[..., str]:
    """``refuse("billing", ...)``: the command exits 1 with one line, and the database is as it was."""

    def counts() -> tuple[int, ...]:
        found = tuple(db.scalar(sa.select(sa.func.count()).select_from(model)) or 0 for model in TABLES)
        db.rollback()  # hold no snapshot while the command runs
        return found

    def command(*argv: str) -> str:
        before = counts()
        code = main(list(argv))
        err = capsys.readouterr().err
        assert code == 1, err
        assert err.startswith("atelier: ")
        assert err.count("\n") == 1, err  # one line
        assert counts() == before
        return err

    return command


def test_prices(run: Run, refuse: Callable[..., str]) -> None:
    out = run("billing", "price-list", "add", "--code", "workshop", "--name", "Tarif atelier")
    assert "price list workshop (Tarif atelier) added" in out
    out = run(
        "billing", "price", "add", "--list", "workshop", "--class", "sewing", "--from", "2026-04-01",
        "--running", "6,00/h", "--idle", "0,90/h", "--session-fee", "0,50", "--minimum", "1", "--increment", "5",
        "--rounding", "nearest", "--grace", "3", "--daily-cap", "30", "--vat", "5,5",
    )  # fmt: skip
    assert out.startswith("added workshop-sewing-20260401  workshop  class:sewing  from 2026-04-01: ")
    assert "€6.00/h running, €0.90/h idle, fee €0.50, minimum €1.00, by 5 min (nearest), grace 3 min" in out
    assert "cap €30.00/day, VAT 5.5 %" in out
    run("billing", "price", "add", "--list", "workshop", "--machine", "sewing-1", "--from", "2026-04-01",
        "--running", "0,12/min", "--code", "sewing-1-april")  # fmt: skip
    listing = run("billing", "price", "list", "--list", "workshop")
    assert listing.splitlines()[0] == "workshop: Tarif atelier, 2 versions"
    assert "sewing-1-april  workshop  machine:sewing-1" in listing
    shown = run(
        "billing", "price", "show", "--list", "workshop", "--machine", "sewing-1", "--on", "2026-04-10"
    )
    assert shown.startswith("on 2026-04-10: sewing-1-april ")
    shown = run(
        "billing", "price", "show", "--list", "standard", "--machine", "sewing-1", "--on", "2026-04-10"
    )
    assert shown.startswith("on 2026-04-10: std-sewing-2026 ")  # the class's price, from the books fixture

    add = ("billing", "price", "add", "--list", "workshop", "--class", "sewing", "--running", "7/h")
    assert "both valid on 2026-04-01" in refuse(*add, "--from", "2026-04-01")
    assert "a price cannot be negative" in refuse(*add[:-2], "--running=-7/h", "--from", "2026-05-01")
    assert "per hour or per minute" in refuse(*add[:-2], "--running", "7", "--from", "2026-05-01")
    assert "session fee cannot be negative" in refuse(*add, "--from", "2026-05-01", "--session-fee=-0,50")
    assert "not a day" in refuse(*add, "--from", "2026-13-01")
    assert "up, nearest or down" in refuse(*add, "--from", "2026-05-01", "--rounding", "sideways")
    assert "increment is a whole number" in refuse(*add, "--from", "2026-05-01", "--increment", "five")
    assert "no price list 'nope'" in refuse("billing", "price", "add", "--list", "nope", "--class", "sewing",
                                            "--running", "7/h", "--from", "2026-05-01")  # fmt: skip
    assert "no machine 'sewing-9'" in refuse(
        "billing", "price", "add", "--list", "workshop", "--machine", "sewing-9", "--running", "7/h", "--from",
        "2026-05-01",
    )  # fmt: skip
    assert "exists already" in refuse("billing", "price-list", "add", "--code", "workshop", "--name", "Again")
    assert "no price for machine 'overlocker-1'" in refuse(
        "billing", "price", "show", "--list", "workshop", "--machine", "overlocker-1", "--on", "2026-04-10"
    )


def test_plans_organisations_and_partners(run: Run, refuse: Callable[..., str], books: Books) -> None:
    w = books.workshop
    out = run("billing", "plan", "add", "--code", "maker", "--name", "Maker", "--fee", "15",
              "--minutes", "sewing=120", "--minutes", "fdm-printer=60", "--vat", "0")  # fmt: skip
    assert out == "plan maker (Maker) added: €15.00 a month, 60 min of fdm-printer, 120 min of sewing\n"
    assert "maker: Maker, €15.00 a month" in run("billing", "plan", "list")
    member = str(w.alice)
    run(
        "billing",
        "plan",
        "subscribe",
        "--member",
        member,
        "--plan",
        "maker",
        "--from",
        "2026-04",
        "--until",
        "2026-06",
    )
    run("billing", "plan", "unsubscribe", "--member", str(w.bob), "--from", "2026-05")
    assert run("billing", "plan", "subscriptions", "--member", member).splitlines() == [
        f"member {member}  from 2026-04  maker",
        f"member {member}  from 2026-07  (no plan)",
    ]
    assert "CLASS=MINUTES" in refuse(
        "billing", "plan", "add", "--code", "x", "--name", "X", "--fee", "1", "--minutes", "sewing"
    )
    assert "no plan 'gold'" in refuse(
        "billing", "plan", "subscribe", "--member", member, "--plan", "gold", "--from", "2026-05"
    )
    assert "already has a plan change from 2026-04" in refuse(
        "billing", "plan", "subscribe", "--member", member, "--plan", "creator", "--from", "2026-04"
    )
    assert "not a month" in refuse(
        "billing", "plan", "subscribe", "--member", member, "--plan", "maker", "--from", "April"
    )

    out = run("billing", "org", "add", "--name", "Lycée", "--address", "1 rue de l'École", "--address", "69001 Lyon",
              "--email", "intendance@example.org", "--price-list", "member")  # fmt: skip
    school = out.split()[1]
    assert out == f"organisation {school} (Lycée) added, on the member price list\n"
    assert "now pays for member" in run("billing", "org", "attach", "--org", school, "--member", member)
    assert f"{school}  Lycée  (member prices)  pays for: {member} Alice Martin" in run(
        "billing", "org", "list"
    )
    assert "already" in refuse("billing", "org", "attach", "--org", school, "--member", member)
    assert "no organisation 999" in refuse("billing", "org", "attach", "--org", "999", "--member", member)
    assert "no member 999" in refuse("billing", "org", "attach", "--org", school, "--member", "999")
    assert "no price list 'nope'" in refuse("billing", "org", "add", "--name", "X", "--price-list", "nope")
    assert "pays for their own usage again" in run(
        "billing", "org", "detach", "--member", member, "--org", school
    )
    assert "not paid for by any organisation" in refuse("billing", "org", "detach", "--member", member)

    assert "member prices" in run(
        "billing", "partner", "set", "--member", str(w.erin), "--association", "Les Fils"
    )
    assert run("billing", "partner", "list") == f"{w.erin}  Erin Laurent  Les Fils\n"
    assert "belongs to no partner association" in refuse("billing", "partner", "clear", "--member", member)
    assert "no longer a partner member" in run("billing", "partner", "clear", "--member", str(w.erin))


def test_consumables_and_sales(run: Run, refuse: Callable[..., str], books: Books, db: Session) -> None:
    w = books.workshop
    out = run("billing", "consumable", "add", "--code", "pla", "--name", "Filament PLA", "--unit", "gram",
              "--price", "0,025", "--vat", "0")  # fmt: skip
    assert out == "added pla: Filament PLA, €0.025 per g, VAT 0 %\n"
    run(
        "billing",
        "consumable",
        "add",
        "--code",
        "thread",
        "--name",
        "Cône de fil",
        "--unit",
        "piece",
        "--price",
        "3,50",
    )
    assert "€3.80 per piece" in run("billing", "consumable", "update", "--code", "thread", "--price", "3,80")
    assert (
        run("billing", "consumable", "list").splitlines()[1]
        == "thread: Cône de fil, €3.80 per piece, VAT 20 %"
    )

    out = run("billing", "sale", "add", "--consumable", "pla", "--quantity", "40", "--member", str(w.alice),
              "--machine", "printer-1", "--at", "2026-03-04 15:30", "--id", "gw-1")  # fmt: skip
    assert out == (
        "recorded sale gw-1: 40 g of Filament PLA for member "
        f"{w.alice} (Alice Martin) on printer-1, €1.00 (billed with 2026-03)\n"
    )
    out = run("billing", "sale", "add", "--consumable", "thread", "--quantity", "1", "--badge", w.alice_badge,
              "--machine", "sewing-1", "--at", "2026-03-05T10:00:00+01:00")  # fmt: skip
    assert "1 piece of Cône de fil" in out

    sale = (
        "billing",
        "sale",
        "add",
        "--consumable",
        "pla",
        "--machine",
        "printer-1",
        "--at",
        "2026-03-06 10:00",
    )
    assert "positive whole number of g, not 0" in refuse(*sale, "--quantity", "0", "--member", str(w.alice))
    assert "whole number, not '2.5'" in refuse(*sale, "--quantity", "2.5", "--member", str(w.alice))
    assert "no member 999" in refuse(*sale, "--quantity", "5", "--member", "999")
    assert "no badge 0000FFFF" in refuse(*sale, "--quantity", "5", "--badge", "0000ffff")
    assert "disabled" in refuse(*sale, "--quantity", "5", "--badge", w.dave_badge)
    assert "recorded already" in refuse(*sale, "--quantity", "5", "--member", str(w.alice), "--id", "gw-1")
    assert "in the future" in refuse(
        "billing", "sale", "add", "--consumable", "pla", "--quantity", "5", "--member", str(w.alice),
        "--at", "2999-01-01 10:00",
    )  # fmt: skip
    assert "no consumable 'abs'" in refuse(
        "billing", "sale", "add", "--consumable", "abs", "--quantity", "5", "--member", str(w.alice)
    )
    assert "no machine 'printer-9'" in refuse(
        "billing", "sale", "add", "--consumable", "pla", "--quantity", "5", "--member", str(w.alice),
        "--machine", "printer-9",
    )  # fmt: skip
    assert "not 'litre'" in refuse("billing", "consumable", "add", "--code", "oil", "--name", "Oil", "--unit", "litre",
                                   "--price", "1")  # fmt: skip
    assert "cannot be negative" in refuse("billing", "consumable", "add", "--code", "oil", "--name", "Oil",
                                          "--unit", "piece", "--price=-1")  # fmt: skip

    assert run("billing", "sale", "list", "--period", "2026-03").splitlines()[-1] == "2 sales, €4.80"
    run("billing", "close", "--period", "2026-03", "--issued-on", "2026-04-02")
    listed = run("billing", "sale", "list", "--member", str(w.alice)).splitlines()
    assert listed[0].endswith("€1.00  2026-000001")  # on Alice's invoice
    items = db.scalars(sa.select(InvoiceLineRow.item).where(InvoiceLineRow.kind == "consumable")).all()
    assert sorted(items) == ["Cône de fil", "Filament PLA"]

    out = run("billing", "sale", "add", "--consumable", "pla", "--quantity", "10", "--member", str(w.alice),
              "--at", "2026-03-20 10:00")  # fmt: skip
    assert out.endswith("(2026-03 is closed: billed with 2026-04 as an adjustment)\n")
    assert "2026-03, which is closed" in refuse(
        "billing",
        "price",
        "add",
        "--list",
        "standard",
        "--class",
        "sewing",
        "--running",
        "7/h",
        "--from",
        "2026-03-15",
    )
    assert db.get(Member, w.alice) is not None


def test_a_payment_without_an_amount_is_refused_in_one_line(refuse: Callable[..., str]) -> None:
    assert "--amount" in refuse("billing", "pay", "--kind", "transfer", "--member", "1")
