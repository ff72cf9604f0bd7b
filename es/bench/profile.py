"""`es bench --profile DIR`: where each process of a throughput run spends its Python time.

While a run is measured, py-spy samples the event server (when it runs here), the publisher and
the first subscriber, each by its PID, only when it holds Python's lock (`--gil`): what is
sampled is Python's CPU time, not waits. Each process gets the collapsed stacks py-spy writes
(`<label>-<role>.txt`, one line per stack with its sample count: what flame graph tools read)
and a short table of the functions that took the most samples themselves and with their callees
(`<label>-<role>.top.txt`).

py-spy takes a fraction of a second to attach, so a run shorter than that (as in `--quick`) may
have no samples; its table says so. Sampling slows the processes, so a profiled run's figures
are not measurements. Only processes the bench started are sampled, by their PID; py-spy is
stopped by its own PID.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from es.bench.procs import BenchError

__all__ = ["Profiler", "top_functions"]

_RATE = 250  # samples a second: enough for a few seconds of run, light on a 2-core machine
_STOP_WAIT = 30.0  # seconds for py-spy to write its file once told to stop
_LINE = re.compile(r":\d+\)$")  # a frame's line number: functions are counted whatever the line


def _py_spy() -> str:
    """The py-spy beside this Python (a dev dependency), else the one on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise BenchError("--profile needs py-spy: pip install py-spy (or the dev extra)")
    return found


class Profiler:
    """Records processes with py-spy into `folder` while a measured run goes on."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.binary = _py_spy()
        folder.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def recording(self, label: str, pids: dict[str, int]) -> Iterator[None]:
        """Sample each process of `pids` (role name -> PID) for the block; then write its
        stacks and its table of functions."""
        spies = {role: self._start(label, role, pid) for role, pid in pids.items()}
        try:
            yield
        finally:
            for spy in spies.values():
                with contextlib.suppress(ProcessLookupError):
                    spy.send_signal(signal.SIGINT)  # py-spy writes its file when interrupted
            for role, spy in spies.items():
                try:
                    spy.wait(_STOP_WAIT)
                except subprocess.TimeoutExpired:
                    spy.kill()
                    spy.wait(_STOP_WAIT)
                self._summarise(self.folder / f"{label}-{role}.txt")

    def _start(self, label: str, role: str, pid: int) -> subprocess.Popen[bytes]:
        out = self.folder / f"{label}-{role}.txt"
        command = [self.binary, "record", "--pid", str(pid), "--gil", "--nonblocking"]
        command += ["--rate", str(_RATE), "--format", "raw", "--output", str(out)]
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @staticmethod
    def _summarise(raw: Path) -> None:
        lines = raw.read_text().splitlines() if raw.exists() else []
        raw.with_suffix(".top.txt").write_text(top_functions(lines))


def top_functions(lines: list[str], count: int = 25) -> str:
    """A table of the functions in collapsed stacks (`frame;frame;... samples` per line) that
    took the most samples themselves, then with their callees, as percentages of all samples."""
    own: Counter[str] = Counter()
    within: Counter[str] = Counter()
    total = 0
    for line in lines:
        stack, _, samples = line.rpartition(" ")
        if not stack or not samples.isdigit():
            continue
        frames = [_LINE.sub(")", frame) for frame in stack.split(";")]
        total += int(samples)
        own[frames[-1]] += int(samples)
        for frame in set(frames):
            within[frame] += int(samples)
    if not total:
        return "no samples (the run was too short, or py-spy could not attach)\n"
    out = [f"{total} samples"]
    for title, counted in (("itself", own), ("with what it calls", within)):
        out += ["", f"share  samples  function ({title})"]
        out += [f"{100 * n / total:5.1f}%  {n:7d}  {f}" for f, n in counted.most_common(count)]
    return "\n".join(out) + "\n"
