"""What every benchmark shares: the run context, its outcome, machine facts and formatting."""

from __future__ import annotations

import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


@dataclass
class Context:
    """Handed to every benchmark's `run`."""

    name: str
    quick: bool
    scratch: Path
    """A fresh folder under /tmp for this benchmark's data; removed afterwards unless --keep."""
    python: str = sys.executable

    def log(self, message: str) -> None:
        print(f"[{self.name} {time.strftime('%H:%M:%S')}] {message}", flush=True)

    def subdir(self, name: str) -> Path:
        path = self.scratch / name
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path


@dataclass
class Outcome:
    """What a benchmark returns: its section of RESULTS.md (without heading and provenance, which
    the runner adds) and the checks that failed (a failed check makes `python -m bench` exit 1)."""

    markdown: str
    failures: list[str] = field(default_factory=list)


def reelm_env(**settings: str) -> dict[str, str]:
    """The current environment without any REELM_* variable, plus the given REELM_* ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELM_")}
    env.update(settings)
    return env


def reelm_command() -> list[str]:
    """The `reelm` console script of this interpreter's environment."""
    script = Path(sys.executable).parent / "reelm"
    return [str(script)] if script.exists() else [sys.executable, "-m", "reelm.cli"]


# ---- machine facts -------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB RAM"
    except OSError:
        pass
    return "RAM unknown"


def nproc() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 0


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def git_state() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=False
        ).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "src")
    return f"{head} + uncommitted changes in src/" if dirty else head


def machine_facts() -> str:
    return (
        f"`nproc` = {nproc()} ({_cpu_model()}), {_mem_total()}, Linux {platform.release()}, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )


# ---- measuring -----------------------------------------------------------------------------


def proc_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of one process (all its threads), or None off Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


@contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    """`with stopwatch() as elapsed: ...; elapsed()` — seconds since the block started (frozen at
    its end)."""
    start = time.perf_counter()
    end: list[float] = []
    yield lambda: (end[0] if end else time.perf_counter()) - start
    end.append(time.perf_counter())


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted values; nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


# ---- formatting ----------------------------------------------------------------------------


def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]], align: str = "") -> str:
    """A Markdown table; `align` is one letter per column (l or r, default r except column 0)."""
    align = align or "l" + "r" * (len(headers) - 1)
    marks = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt_rate(x: float) -> str:
    if x != x:  # nan
        return "–"
    if x >= 100_000:
        return f"{x:,.0f}"
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def fmt_ms(seconds: float) -> str:
    if seconds != seconds:
        return "–"
    ms = seconds * 1000
    if ms >= 100:
        return f"{ms:,.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    return f"{ms:.2f}"


def fmt_ratio(x: float) -> str:
    """A ratio with three significant digits (0.00412, 0.312, 27.4)."""
    if x != x or x == 0:
        return "–"
    return f"{x:.3g}"
