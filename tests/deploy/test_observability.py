"""The Grafana dashboard and the Prometheus rules name only metrics that exist.

Every name in every expression must be exported: by the API (``/metrics``:
its own registry and the scrape-time gauges), by a worker process
(``flashsale/telemetry``), by prometheus_client's process collector, or be
Prometheus' own ``up``. A renamed or never-exported series fails here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import REGISTRY, CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import flashsale.chain.failures
import flashsale.payments.failures  # noqa: F401  (registers flashsale_payment_alerts_total)
from flashsale.api import metrics
from flashsale.telemetry.workers import DELIVER, PERSIST, TIMERS

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
METRIC = re.compile(r"\b(?:flashsale|process)_[a-z0-9_]+\b|\bup\b")
SUFFIXES = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}


def _names(text: str) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(text):
        names |= {family.name + s for s in SUFFIXES.get(family.type, [""])}
    return names


def exported() -> set[str]:
    api = generate_latest(REGISTRY).decode() + metrics.exposition([])[0].decode()
    workers = CollectorRegistry()
    ProcessCollector(registry=workers)
    for collector in (PERSIST, TIMERS, DELIVER):
        workers.register(collector)
    return _names(api) | _names(generate_latest(workers).decode()) | {"up"}


def _expressions(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [e for value in node.values() for e in _expressions(value)]
    if isinstance(node, list):
        return [e for item in node for e in _expressions(item)]
    return []


def _named(expressions: list[str]) -> set[str]:
    # label values and matchers ("5..", "{{route}}") hold no metric names: drop quoted text
    return {m for e in expressions for m in METRIC.findall(re.sub(r'"[^"]*"', "", e))}


def test_the_dashboard_names_only_exported_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "flashsale.json").read_text())
    expressions = _expressions(dashboard["panels"])
    assert len(expressions) >= 20
    named = _named(expressions)
    assert named - exported() == set()
    # and it shows every process: the API, the write-behind, the timers, the deliverer
    assert {"flashsale_http_requests_total", "flashsale_persist_entries_total"} <= named
    assert {"flashsale_timers_expired_total", "flashsale_deliver_confirmed_total"} <= named
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_the_alert_rules_name_only_exported_metrics() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert len(alerts) >= 10
    for rule in alerts:
        assert rule["labels"]["severity"] in {"page", "ticket"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
    named = _named([rule["expr"] for rule in alerts])
    assert named - exported() == set()
    assert len({rule["alert"] for rule in alerts}) == len(alerts)


def test_prometheus_scrapes_every_process_and_loads_the_rules() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs == {"flashsale-api", "flashsale-persist", "flashsale-timers", "flashsale-deliver"}


def test_unknown_names_are_caught() -> None:
    assert _named(['rate(flashsale_nope_total{status="5.."}[1m])']) - exported() == {
        "flashsale_nope_total"
    }


def test_compose_runs_prometheus_and_grafana_with_these_files() -> None:
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    mounts = services["prometheus"]["volumes"] + services["grafana"]["volumes"]
    for mount in mounts:
        source = mount.split(":", 1)[0]
        if source.startswith("./"):
            assert (DEPLOY / source).exists(), mount
    assert services["prometheus"]["profiles"] == services["grafana"]["profiles"] == ["monitoring"]
    provisioning = DEPLOY / "grafana" / "provisioning"
    source = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    assert source["datasources"][0]["url"] == "http://prometheus:9090"
