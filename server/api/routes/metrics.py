"""``GET /metrics``: the server's own metrics, in the Prometheus text format."""

from fastapi import APIRouter, Depends, Request, Response

from server.auth.policy import PUBLIC
from server.observability import CONTENT_TYPE, ServerMetrics

router = APIRouter(tags=["health"])


# Public: counts and gateway ids, nothing personal. Keep it off the public proxy (docs/security.md).
@router.get("/metrics", response_class=Response, dependencies=[Depends(PUBLIC)])
def metrics(request: Request) -> Response:
    """Decisions by outcome and their latency, events ingested, gateways online, telemetry
    written and dropped. A plain (sync) route: counting gateways online reads the database."""
    registry: ServerMetrics = request.app.state.metrics
    return Response(content=registry.exposition(), media_type=CONTENT_TYPE)
