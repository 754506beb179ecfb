"""The prepaid check at the machine: one statement, run only for prepaid members.

:func:`prepaid_verdict` reads, in one round trip, the member's balance (a range on the
postings index), the minimum balance the treasurer set, which price list the member pays
by, and the price versions of this machine (or its class) valid today; then
:func:`server.billing.prepaid.prepaid_allowance` says how many minutes the balance pays for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from server.billing.invoices import PayerKind
from server.billing.periods import workshop_day
from server.billing.prepaid import prepaid_allowance
from server.billing.store import auxiliary_of, price_version_of
from server.db import table
from server.models import BillingSettings, Member, Organisation, PostingRow, PriceList, PriceVersionRow

_postings, _settings, _members = table(PostingRow).c, table(BillingSettings).c, table(Member).c
_versions, _lists, _orgs = table(PriceVersionRow).c, table(PriceList).c, table(Organisation).c
_latest = sa.select(sa.func.max(_settings.id)).scalar_subquery()


def _setting(column: sa.ColumnElement[Any]) -> sa.ScalarSelect[Any]:
    return sa.select(column).where(_settings.id == _latest).scalar_subquery()


_member_list = (
    sa.select(sa.func.coalesce(_orgs.price_list_id, _members.price_list_id))
    .select_from(table(Member).outerjoin(table(Organisation), _orgs.id == _members.organisation_id))
    .where(_members.id == sa.bindparam("member"))
    .scalar_subquery()
)
_partner = (
    sa.select(_members.partner_association).where(_members.id == sa.bindparam("member")).scalar_subquery()
)

_PREPAID = (
    sa.select(
        sa.select(sa.func.coalesce(sa.func.sum(_postings.debit_cents - _postings.credit_cents), 0))
        .where(_postings.account == "411000", _postings.auxiliary == sa.bindparam("auxiliary"))
        .scalar_subquery(),
        _setting(_settings.minimum_balance_cents),
        _setting(_settings.default_price_list),
        _setting(_settings.partner_price_list),
        _member_list,
        _partner,
        _lists.code.label("list_code"),
        _lists.id.label("list_id"),
        table(PriceVersionRow),
    )
    .select_from(
        sa.select(sa.literal(1).label("one"))
        .subquery()
        .outerjoin(
            table(PriceVersionRow),
            sa.and_(
                sa.or_(
                    _versions.machine_id == sa.bindparam("machine"),
                    _versions.machine_class == sa.bindparam("class"),
                ),
                _versions.valid_from <= sa.bindparam("day"),
                sa.or_(_versions.valid_until.is_(None), _versions.valid_until > sa.bindparam("day")),
            ),
        )
        .outerjoin(table(PriceList), _lists.id == _versions.price_list_id)
    )
    .order_by(_versions.valid_from)
)


@dataclass(frozen=True, slots=True)
class PrepaidVerdict:
    allowed: bool
    max_minutes: int | None
    message: str


def prepaid_verdict(
    connection: sa.Connection,
    *,
    member_id: int,
    machine_id: int,
    machine_slug: str,
    machine_class: str,
    now: datetime,
) -> PrepaidVerdict:
    day = workshop_day(now)
    rows = connection.execute(
        _PREPAID,
        {
            "auxiliary": auxiliary_of(PayerKind.MEMBER, member_id),
            "member": member_id,
            "machine": machine_id,
            "class": machine_class,
            "day": day,
        },
    ).all()
    credit = -int(rows[0][0])
    minimum = int(rows[0][1] or 0)
    if credit < minimum:
        return PrepaidVerdict(
            False, 0, f"Your prepaid balance is {credit / 100:.2f} EUR: top it up to use machines."
        )
    default_list, partner_list, own_list_id, partner = rows[0][2], rows[0][3], rows[0][4], rows[0][5]
    wanted_code = partner_list if partner else default_list

    def fits(row: Any) -> bool:
        return bool(
            row.id is not None
            and (row.list_id == own_list_id if own_list_id is not None else row.list_code == wanted_code)
        )

    candidates = [row for row in rows if fits(row)]
    if not candidates:
        return PrepaidVerdict(True, None, "")
    # A machine's own price wins over its class's; the latest start wins among them.
    chosen = max(candidates, key=lambda row: (row.machine_id is not None, row.valid_from))
    version = price_version_of(
        chosen, str(chosen.list_code), machine_slug if chosen.machine_id is not None else None
    )
    allowance = prepaid_allowance(max(credit, 0), version, minimum_balance_cents=minimum)
    if not allowance.allowed:
        return PrepaidVerdict(
            False, 0, f"Your prepaid balance ({credit / 100:.2f} EUR) pays for no time here."
        )
    return PrepaidVerdict(True, allowance.minutes, "")
