"""``GET /metrics``: the server's own metrics, in the Prometheus text format."""

from fastapi import APIRouter, Request, Response

from server.observability import CONTENT_TYPE, ServerMetrics

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Decisions by outcome and their latency, events ingested, gateways online, telemetry
    written and dropped. A plain (sync) route: counting gateways online reads the database."""
    registry: ServerMetrics = request.app.state.metrics
    return Response(content=registry.exposition(), media_type=CONTENT_TYPE)
