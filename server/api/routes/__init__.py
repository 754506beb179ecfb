"""One module per resource; :data:`api_router` gathers them under ``/api/v1``."""

from fastapi import APIRouter

from server.api.routes import (
    audit,
    auth,
    badges,
    certifications,
    consumables,
    decisions,
    gateways,
    invoices,
    machines,
    me,
    members,
    organisations,
    prices,
    reports,
    sessions,
    skills,
    training,
)

api_router = APIRouter(prefix="/api/v1")
for module in (
    auth,
    members,
    badges,
    skills,
    certifications,
    gateways,
    machines,
    sessions,
    decisions,
    reports,
    invoices,
    prices,
    organisations,
    consumables,
    training,
    me,
    audit,
):
    api_router.include_router(module.router)

__all__ = ["api_router"]
