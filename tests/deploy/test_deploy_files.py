"""The deployment files parse, and every FLASHSALE_* variable they set exists in settings.py.

Static: no image is built and no unit is started here. compose.yaml through PyYAML,
the systemd units as INI files, the environment example and the Containerfile line by
line, the Redis configurations directive by directive.
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from flashsale.settings import variables

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
KNOWN = {var.name for var in variables()}
NAME = re.compile(r"\bFLASHSALE_[A-Z0-9_]+")


def _unknown(names: set[str]) -> set[str]:
    return {name for name in names if name not in KNOWN}


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def test_compose_runs_every_process_with_redis_and_postgresql() -> None:
    services = _compose()["services"]
    assert {
        "redis",
        "redis-replica",
        "postgres",
        "migrate",
        "api",
        "persist",
        "timers",
        "deliver",
    } <= set(services)
    commands = {name: services[name].get("command") for name in services}
    assert commands["migrate"] == ["db", "upgrade"]
    assert commands["api"][0] == "serve" and commands["persist"] == ["persist"]
    assert commands["timers"] == ["timers"] and commands["deliver"] == ["deliver"]
    for name in ("api", "persist", "timers", "deliver"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
    assert services["api"]["ports"] == ["127.0.0.1:8000:8000"], "published on loopback only"
    assert "--replicaof" in services["redis-replica"]["command"]


def test_compose_sets_only_variables_that_exist() -> None:
    services = _compose()["services"]
    names: set[str] = set()
    for service in services.values():
        environment = service.get("environment") or {}
        names |= {k for k in environment if k.startswith("FLASHSALE_")}
    assert {"FLASHSALE_REDIS_URL", "FLASHSALE_DATABASE_URL", "FLASHSALE_JWT_SECRET"} <= names
    assert not _unknown(names)
    assert not _unknown(set(NAME.findall((DEPLOY / "compose.yaml").read_text())))


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_systemd_units_parse_and_name_only_variables_that_exist(unit: Path) -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string(unit.read_text())
    assert {"Unit", "Service", "Install"} <= set(parser.sections())
    service = parser["Service"]
    command = service["ExecStart"].split()
    assert command[0] == "/opt/flashsale/.venv/bin/flashsale", command
    assert service["EnvironmentFile"] == "/etc/flashsale/flashsale.env"
    assert service["User"] == "flashsale"
    assert parser["Install"]["WantedBy"] == "flashsale.target"
    set_here = {item.split("=", 1)[0] for item in service.get("Environment", "").split()}
    assert not _unknown({n for n in set_here if n})
    assert not _unknown(set(NAME.findall(unit.read_text())))


def test_the_target_wants_every_unit() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string((DEPLOY / "systemd" / "flashsale.target").read_text())
    assert set(parser["Unit"]["Wants"].split()) == {u.name for u in UNITS}


def test_the_environment_example_names_only_variables_that_exist() -> None:
    lines = (DEPLOY / "systemd" / "flashsale.env.example").read_text().splitlines()
    names = {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}
    assert {"FLASHSALE_JWT_SECRET", "FLASHSALE_REDIS_URL", "FLASHSALE_DATABASE_URL"} <= names
    assert "FLASHSALE_ENV" not in names, "production leaves it unset"
    assert not _unknown(names)


def test_the_containerfile_builds_the_package_and_runs_the_cli() -> None:
    text = (DEPLOY / "Containerfile").read_text()
    instructions = [line.split()[0] for line in text.splitlines() if line and line[0].isupper()]
    assert instructions.count("FROM") == 2 and "USER" in instructions
    assert 'ENTRYPOINT ["flashsale"]' in text
    assert not _unknown(set(NAME.findall(text)))


def _directives(name: str) -> dict[str, str]:
    found = {}
    for line in (DEPLOY / "redis" / name).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            found[key] = value.strip()
    return found


def test_redis_configurations_for_each_durability_mode() -> None:
    fast, durable = _directives("redis-fast.conf"), _directives("redis-durable.conf")
    assert fast["appendonly"] == "no" and fast["save"] == '""'
    assert durable["appendonly"] == "yes" and durable["appendfsync"] == "always"
    assert int(durable["min-replicas-to-write"]) >= 1
    for conf in (fast, durable):
        assert conf["maxmemory-policy"] == "noeviction", "a sale's keys are never evicted"
        assert conf["bind"].split()[0] == "127.0.0.1"


def test_the_license_is_mit() -> None:
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def _cluster_compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "cluster" / "compose.yaml").read_text())
    return loaded


def test_the_cluster_deployment_scales_every_process_over_a_durable_cluster() -> None:
    services = _cluster_compose()["services"]
    nodes = sorted(name for name in services if name.startswith("redis-"))
    assert len(nodes) == 9
    create = " ".join(services["cluster-init"]["command"])
    assert all(f"{node}:6379" in create for node in nodes), "cluster-init names every node"
    assert "--cluster-replicas 2" in create, "two replicas: a promoted one still has one"
    assert set(services["cluster-init"]["depends_on"]) == set(nodes)
    for name in ("api", "persist", "timers"):
        assert services[name]["deploy"]["replicas"] >= 2, f"{name} runs as several processes"
        environment = services[name]["environment"]
        assert environment["FLASHSALE_REDIS_CLUSTER"] == "1"
        assert environment["FLASHSALE_DURABILITY"] == "durable"
        assert services[name]["depends_on"]["cluster-init"]["condition"] == (
            "service_completed_successfully"
        )
    assert services["proxy"]["ports"] == ["127.0.0.1:8000:8000"], "only the proxy is published"
    assert not any("ports" in services[n] for n in services if n != "proxy")
    proxy = (DEPLOY / "cluster" / "nginx.conf").read_text()
    assert "api:8000" in proxy
    assert re.search(r"location = /metrics \{\s*return 404;", proxy), "metrics stay inside"
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    [api] = [job for job in scrape["scrape_configs"] if job["job_name"] == "flashsale-api"]
    assert api["dns_sd_configs"] == [{"names": ["api"], "type": "A", "port": 8000}], (
        "each API replica is scraped, not whichever one `api` resolves to first"
    )


def test_the_cluster_deployment_names_only_variables_that_exist() -> None:
    names = set(NAME.findall((DEPLOY / "cluster" / "compose.yaml").read_text()))
    assert {"FLASHSALE_REDIS_CLUSTER", "FLASHSALE_TRUSTED_PROXIES"} <= names
    assert not _unknown(names)


def test_the_cluster_nodes_are_durable_and_fail_over() -> None:
    node = _directives("redis-cluster.conf")
    assert node["cluster-enabled"] == "yes"
    assert node["appendonly"] == "yes" and node["appendfsync"] == "always"
    assert int(node["min-replicas-to-write"]) >= 1
    assert node["maxmemory-policy"] == "noeviction"


def test_the_single_host_redis_is_reachable_on_the_compose_network() -> None:
    services = _compose()["services"]
    for name in ("redis", "redis-replica"):
        command = services[name]["command"]
        assert command[command.index("--bind") + 1] == "0.0.0.0", name
