"""The pages, one module per part of the workshop; :data:`router` gathers them."""

from fastapi import APIRouter

from server.web.routes import (
    account,
    billing,
    billing_close,
    billing_exports,
    billing_prices,
    billing_report,
    live,
    manage,
    manage_equipment,
    member,
    training,
)

router = APIRouter(include_in_schema=False)
for module in (
    account,
    live,
    member,
    training,
    billing,
    billing_prices,
    billing_close,
    billing_exports,
    billing_report,
    manage,
    manage_equipment,
):
    router.include_router(module.router)

__all__ = ["router"]
