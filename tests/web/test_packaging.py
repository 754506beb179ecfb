"""The templates, static files and message catalogues ship in the wheel: pyproject.toml's
package data names every one of them."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "server" / "web"


def test_every_file_the_pages_need_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["server.web"]
    files = [
        path.relative_to(WEB).as_posix()
        for folder in ("templates", "static", "messages")
        for path in (WEB / folder).rglob("*")
        if path.is_file()
    ]
    assert files
    left_out = [name for name in files if not any(fnmatch.fnmatchcase(name, p) for p in patterns)]
    assert left_out == []
