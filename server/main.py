"""``python -m server.main``: run the server with settings from ``ATELIER_*``."""

import sys

from server.cli import run_server

if __name__ == "__main__":
    sys.exit(run_server())
