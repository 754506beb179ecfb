"""``GET /healthz``: is the database reachable, is the broker connected."""

import logging
from typing import Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Response, status
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from server.api.deps import MqttDep, SessionDep
from server.auth.policy import PUBLIC

router = APIRouter(tags=["health"])

log = logging.getLogger(__name__)


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: Literal["ok", "error"]
    mqtt: Literal["connected", "disconnected", "disabled"]


@router.get("/healthz", dependencies=[Depends(PUBLIC)])
def healthz(db: SessionDep, mqtt: MqttDep, response: Response) -> Health:
    """503 when the database is unreachable: nothing works without it. A broker
    outage is reported but not fatal, since the API still works."""
    try:
        db.execute(sa.text("SELECT 1"))
        database: Literal["ok", "error"] = "ok"
    except SQLAlchemyError as error:
        log.warning("health check: database unreachable: %s", error)
        database = "error"
    link: Literal["connected", "disconnected", "disabled"] = (
        "disabled" if mqtt is None else "connected" if mqtt.connected else "disconnected"
    )
    if database != "ok":
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Health(status="ok" if database == "ok" else "degraded", database=database, mqtt=link)
