"""What a benchmark run says: the machine it ran on, a table per workload, and the results files.

Results are appended, never rewritten, so the files keep the history and a regression shows:
one JSON line per row (with the run's id and machine), and a markdown section per run.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import msgpack
import zmq

from es import __version__

__all__ = ["COLUMNS", "append_jsonl", "append_markdown", "machine", "table"]

Row = dict[str, Any]

# The columns each workload shows in its table (every field is in the JSON lines).
COLUMNS: dict[str, tuple[str, ...]] = {
    "throughput": (
        "impl",
        "n",
        "publish_rate",
        "delivered_rate",
        "delivered_fraction",
        "ratio",
        "nats_ratio",
        "us_publisher",
        "us_server",
        "us_subscriber",
    ),
    "latency": ("impl", "rate", "delivered_fraction", "p50_us", "p90_us", "p99_us", "max_us"),
    "cluster": (
        "impl",
        "nodes",
        "n",
        "publish_rate",
        "delivered_rate",
        "delivered_fraction",
        "nats_ratio",
        "lost_reported",
        "p50_us",
        "p99_us",
        "us_server",
    ),
    "matching": ("patterns", "seen_rate", "fresh_rate", "fresh_sent"),
    "many": (
        "subscribers",
        "server_bytes_per_subscriber",
        "delivered_rate",
        "delivered_fraction",
        "cpu_server",
    ),
    "cli": ("impl", "command", "median_s", "min_s"),
    "hostile": (
        "attack",
        "delivered_fraction",
        "p50_us",
        "p90_us",
        "p99_us",
        "max_us",
        "attack_requests",
        "cpu_server",
    ),
    "slow": (
        "mode",
        "fast_rate_each",
        "delivered_fraction",
        "publish_rate",
        "rss_start",
        "rss_max",
        "rss_end",
    ),
    "durable": (
        "impl",
        "sent",
        "delivered_rate",
        "ratio",
        "lost_reported",
        "us_server",
        "stored_rate",
        "ready_seconds",
        "ready_seconds_empty",
        "file_bytes",
    ),
}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def machine() -> dict[str, Any]:
    """The machine and the versions a run used."""
    return {
        "host": platform.node(),
        "os": platform.platform(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "pyzmq": zmq.__version__,
        "libzmq": zmq.zmq_version(),
        "msgpack": ".".join(str(p) for p in msgpack.version),
        "re2": _version_of("google-re2"),
        "es": __version__,
        "commit": _commit(),
    }


def _version_of(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(workload: str, rows: Iterable[Row], markdown: bool = False) -> str:
    """The rows of one workload as a text table (or a markdown one)."""
    columns = COLUMNS[workload]
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(r) + " |" for r in cells]
        return "\n".join(lines)
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def run_id() -> str:
    """The id of a run: when it started, in UTC."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def append_jsonl(path: Path, run: str, host: dict[str, Any], rows: Iterable[Row]) -> None:
    """Append one JSON line per row, each with the run's id and machine."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        for row in rows:
            out.write(json.dumps({"run": run, "machine": host, **row}) + "\n")


def append_markdown(
    path: Path, run: str, host: dict[str, Any], target: str, by_workload: dict[str, list[Row]]
) -> None:
    """Append a markdown section for the run: the machine, then a table per workload."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        f"## {run}: {target}",
        "",
        f"{host['cpu']}, {host['cores']} cores; Python {host['python']}, pyzmq {host['pyzmq']} "
        f"(libzmq {host['libzmq']}), msgpack {host['msgpack']}; es {host['es']} "
        f"at {host['commit'] or 'an unknown commit'}.",
        "",
    ]
    for workload, rows in by_workload.items():
        lines += [f"**{workload}**", "", table(workload, rows, markdown=True), ""]
    with path.open("a") as out:
        out.write("\n".join(lines) + "\n")
