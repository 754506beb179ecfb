"""The Grafana dashboard shipped in hardware/grafana queries what the writer really writes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from server.telemetry import MachineSample

DASHBOARD = Path(__file__).resolve().parents[3] / "hardware" / "grafana" / "atelier-dashboard.json"


def written() -> tuple[str, set[str], set[str]]:
    """Measurement, tag keys and field keys of a point the writer makes (with every field)."""
    head, fields, _ = MachineSample("s", "g", "m", 1, 1.0, True, power_w=100.0).line().split(" ")
    measurement, *tags = head.split(",")
    return measurement, {t.split("=")[0] for t in tags}, {f.split("=")[0] for f in fields.split(",")}


def load() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def queries() -> list[tuple[str, str]]:
    found = [
        (panel["title"], target["query"]) for panel in load()["panels"] for target in panel.get("targets", [])
    ]
    found += [
        (f"variable {variable['name']}", variable["query"])
        for variable in load()["templating"]["list"]
        if variable["type"] == "query"
    ]
    return found


def test_it_has_the_panels_the_workshop_asked_for() -> None:
    dashboard = load()
    titles = [panel["title"] for panel in dashboard["panels"]]
    assert {"Machine states", "Current per machine", "Utilisation: share of the time running"} <= set(titles)
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(titles)
    assert all(panel.get("targets") for panel in dashboard["panels"])


def test_every_panel_reads_the_chosen_influxdb_data_source() -> None:
    dashboard = load()
    (choice,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert choice["query"] == "influxdb"
    reference = {"type": "influxdb", "uid": f"${{{choice['name']}}}"}
    for panel in dashboard["panels"]:
        assert panel["datasource"] == reference, panel["title"]
        assert all(target["datasource"] == reference for target in panel["targets"]), panel["title"]


@pytest.mark.parametrize(("where", "query"), queries())
def test_every_query_names_what_the_writer_writes(where: str, query: str) -> None:
    measurement, tags, fields = written()
    assert re.findall(r'FROM "([^"]+)"', query) == [measurement], where
    used_fields = set(re.findall(r'\b(?:mean|max|min|last|sum|count)\("([^"]+)"\)', query))
    used_tags = set(re.findall(r'"([^"]+)" =~', query)) | set(re.findall(r'KEY = "([^"]+)"', query))
    used_tags |= set(re.findall(r'GROUP BY .*?"([^"]+)"', query))
    if query.startswith("SELECT"):
        assert used_fields, f"{where}: no field in {query}"
    assert used_fields <= fields, where
    assert used_tags <= tags, where
    # Every quoted name in the query is one of ours: nothing else slipped in.
    assert set(re.findall(r'"([^"]+)"', query)) <= {measurement} | tags | fields, where
