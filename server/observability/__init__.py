"""How the server is doing, for its operators: Prometheus metrics at ``/metrics``."""

from server.observability.metrics import CONTENT_TYPE, DECISION_BUCKETS, ServerMetrics

__all__ = ["CONTENT_TYPE", "DECISION_BUCKETS", "ServerMetrics"]
