"""deploy/grafana/dashboard.json and deploy/prometheus/alerts.yaml: they parse, and every PromQL
expression reads only series the service exports (facerec.metrics) or Prometheus makes (up)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.promql import PROMETHEUS_SERIES, exported_series, metric_names

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KNOWN = exported_series() | PROMETHEUS_SERIES


def dashboard_exprs() -> list[tuple[str, str]]:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboard.json").read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_the_name_finder_sees_through_promql() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (route, le) (rate(a_bucket{route!~"/x|b_total"}'
        "[$__rate_interval]))) / on (job) group_left b_total > 0.9 * 2048 unless up == 0"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "up"}


def test_the_exported_series_come_from_facerec_metrics() -> None:
    series = exported_series()
    assert "facerec_http_requests_total" in series
    assert "facerec_http_request_duration_seconds_bucket" in series
    assert "facerec_model_memory_bytes" in series
    assert "facerec_http_requests" not in series


def test_dashboard_parses_and_reads_only_exported_series() -> None:
    exprs = dashboard_exprs()
    assert len(exprs) >= 15
    for title, expr in exprs:
        names = metric_names(expr)
        assert names, f"{title}: no metric in {expr!r}"
        assert names <= KNOWN, f"{title}: unknown series {names - KNOWN}"


def test_dashboard_covers_what_operators_watch() -> None:
    used = set().union(*(metric_names(expr) for _, expr in dashboard_exprs()))
    wanted = {
        "facerec_http_requests_total",
        "facerec_http_request_duration_seconds_bucket",
        "facerec_inference_stage_seconds_bucket",
        "facerec_model_memory_bytes",
        "facerec_cache_errors_total",
        "facerec_overloaded_total",
        "facerec_events_delivered_total",
        "facerec_events_failed_total",
        "facerec_events_dropped_total",
        "facerec_webhook_dead_letters_total",
    }
    assert wanted <= used, wanted - used


def test_dashboard_panels_do_not_overlap() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboard.json").read_text())
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        mine = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not mine & cells, panel["title"]
        assert pos["x"] + pos["w"] <= 24
        cells |= mine
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: str(rule["alert"]))
def test_alert_rule_is_complete_and_reads_only_exported_series(rule: dict[str, Any]) -> None:
    assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    names = metric_names(rule["expr"])
    assert names and names <= KNOWN, names - KNOWN


def test_alerts_cover_what_matters() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    used = set().union(*(metric_names(rule["expr"]) for rule in rules))
    assert {
        "up",
        "facerec_http_requests_total",
        "facerec_http_request_duration_seconds_bucket",
        "facerec_cache_errors_total",
        "facerec_overloaded_total",
        "facerec_webhook_dead_letters_total",
        "facerec_model_memory_bytes",
    } <= used


def test_the_scrape_config_loads_the_alert_rules() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yaml"]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "facerec" and job["authorization"]["type"] == "Bearer"
