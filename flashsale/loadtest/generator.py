"""Did the load generator deliver the load? The opening second as it was sent, and whether
the client, not the server, was the bottleneck (issue: a drop's opening second must reach
the server as one second, not spread over ten)."""

from __future__ import annotations

from flashsale.loadtest.seen import Seen

# a locust process busy this share of a core or more was the limit of the run
CLIENT_SATURATED = 0.9


def generator_lines(seen: Seen, opens_at: float | None, client_p99_ms: str) -> list[str]:
    """Lines for the run's summary, a WARNING among them when the client was the limit."""
    lines = []
    if opens_at is not None:
        first = seen.sent_between(opens_at, opens_at + 1.0)
        lines.append(
            f"opening second: {first:,} purchases sent in it · busiest second "
            f"{seen.busiest_second():,} · the client's purchase p99 {client_p99_ms} ms"
        )
    cpu = seen.busiest_process_cpu()
    opening = seen.busiest_opening_cpu()
    count = len(seen.processes)
    in_opening = "" if opening is None else f", {opening:.0%} in the opening second"
    lines.append(
        f"load generator: {count} locust process{'es' if count != 1 else ''}, "
        f"the busiest at {cpu:.0%} of a core over its run{in_opening}"
    )
    worst = max(cpu, opening or 0.0)
    if worst >= CLIENT_SATURATED:
        lines.append(
            "WARNING: the load generator was the bottleneck (a locust process at "
            f"{worst:.0%} of a core): these rates and latencies are the client's limits, not "
            "the server's; run with --processes N (one per spare core) or from another machine"
        )
    return lines
