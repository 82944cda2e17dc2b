"""What the cluster bench (bench/cluster.py) measured; cluster_report.py writes it down."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MasterLoad:
    """One master during a buying phase."""

    url: str
    sales: int  # sales whose slot it serves (many drops; 0 when not counted)
    purchases: int  # acknowledged purchases of those sales
    script_calls: int
    cpu_s: float


@dataclass(frozen=True)
class ManyDrops:
    sales: int
    purchases: int
    seconds: float
    masters: list[MasterLoad]
    lag_ms: tuple[float, float, float]  # per order: p50, p99, max
    drained_after_s: float  # last acknowledged purchase -> every order in PostgreSQL
    in_postgres: int
    lost: int  # acknowledged, not in PostgreSQL
    refused: dict[str, int]

    @property
    def rate(self) -> float:
        return self.purchases / self.seconds


@dataclass(frozen=True)
class HotDrop:
    buckets: int
    purchases: int
    seconds: float
    masters: list[MasterLoad]
    refused: dict[str, int]

    @property
    def rate(self) -> float:
        return self.purchases / self.seconds


@dataclass(frozen=True)
class ClusterResult:
    many: ManyDrops
    hot: list[HotDrop]
