"""The REST API under ``/api/v1``: routes per resource in :mod:`server.api.routes`."""
