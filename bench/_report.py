"""From raw measurements to medians, ratios, pass/fail, the plot and the docs page."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MiB = 2**20

# What the baseline of each scenario is, and which candidates are compared against it.
BASELINES = {"file_large": "curl", "s3": "boto3_upload_file"}
LABELS = {
    ("file_large", "curl"): "curl -o (file://)",
    ("file_large", "operator"): "operator (file://)",
    ("file_large", "in_memory"): "body in memory (file://)",
    ("s3", "boto3_upload_file"): "boto3 upload_file (s3://)",
    ("s3", "operator"): "operator (s3://)",
    ("s3", "http_to_s3"): "HttpToS3Operator (s3://)",
    ("s3", "file_transfer"): "FileTransferOperator from disk (s3://)",
}
# "Flat" memory: the spread of the median peak growth across file sizes stays under this.
FLAT_SPREAD = {"file_large": 16 * MiB, "s3": 32 * MiB}
RSS_LIMIT = {"file_large": 64 * MiB, "s3": 128 * MiB}
TIME_RATIO_LIMIT = 1.25
#: single_large_file: the operator's median over the plain ``requests`` copy's, same run.
SINGLE_RATIO_LIMIT = 1.10
SPEEDUP_TARGET = 4.0


@dataclass(frozen=True)
class Cell:
    """Medians of one candidate at one size."""

    scenario: str
    candidate: str
    size: int
    runs: int
    seconds: float
    seconds_min: float
    seconds_max: float
    peak_rss_growth: float


@dataclass(frozen=True)
class Target:
    name: str
    value: str
    limit: str
    passed: bool


def machine_info() -> dict[str, Any]:
    """CPU model, cores, memory, kernel and Python of this machine, for the page's header."""
    import psutil

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def package_versions(names: list[str], *, curl: bool = False) -> dict[str, str]:
    """``name -> version`` of each installed package (``"not installed"`` otherwise).

    :param curl: add the version of the ``curl`` command too.
    """
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    if curl:
        answer = subprocess.run(["curl", "--version"], capture_output=True, text=True, check=False).stdout
        out["curl"] = answer.split()[1] if answer else "not found"
    return out


def cells(records: list[dict[str, Any]]) -> list[Cell]:
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for row in records:
        groups[(row["scenario"], row["candidate"], row["size"])].append(row)
    out = []
    for (scenario, candidate, size), rows in sorted(groups.items()):
        times = [r["seconds"] for r in rows]
        out.append(
            Cell(
                scenario,
                candidate,
                size,
                len(rows),
                statistics.median(times),
                min(times),
                max(times),
                statistics.median(r["peak_rss_growth"] for r in rows),
            )
        )
    return out


def _find(table: list[Cell], scenario: str, candidate: str, size: int | None = None) -> list[Cell]:
    return [
        c for c in table if c.scenario == scenario and c.candidate == candidate and size in (None, c.size)
    ]


def ratios(table: list[Cell]) -> list[dict[str, Any]]:
    """Median time of each candidate over the median time of its scenario's baseline, per size."""
    out = []
    for scenario, baseline in BASELINES.items():
        for base in _find(table, scenario, baseline):
            for cell in table:
                if cell.scenario == scenario and cell.size == base.size and cell.candidate != baseline:
                    out.append(
                        {
                            "scenario": scenario,
                            "candidate": cell.candidate,
                            "size": cell.size,
                            "ratio": cell.seconds / base.seconds,
                        }
                    )
    return out


def _mib(value: float) -> str:
    return f"{value / MiB:.1f} MiB"


def _memory_targets(table: list[Cell], scenario: str, title: str) -> list[Target]:
    ops = _find(table, scenario, "operator")
    if not ops:
        return []
    worst = max(c.peak_rss_growth for c in ops)
    spread = worst - min(c.peak_rss_growth for c in ops)
    sizes = f"{_mib(ops[0].size)} .. {_mib(ops[-1].size)}"
    limit, flat = RSS_LIMIT[scenario], FLAT_SPREAD[scenario]
    return [
        Target(
            f"{title}: peak RSS growth, largest over {sizes}", _mib(worst), f"< {_mib(limit)}", worst < limit
        ),
        Target(
            f"{title}: memory flat in file size (spread of the medians)",
            _mib(spread),
            f"< {_mib(flat)}",
            len(ops) > 1 and spread < flat,
        ),
    ]


def _time_target(table: list[Cell], scenario: str, title: str) -> list[Target]:
    ops = _find(table, scenario, "operator")
    if not ops:
        return []
    largest = ops[-1].size
    base = _find(table, scenario, BASELINES[scenario], largest)
    if not base:
        return []
    ratio = ops[-1].seconds / base[0].seconds
    return [
        Target(f"{title}: time vs {BASELINES[scenario]} at {_mib(largest)}", f"{ratio:.2f}x",
               f"<= {TIME_RATIO_LIMIT:.2f}x", ratio <= TIME_RATIO_LIMIT),
    ]  # fmt: skip


def targets(table: list[Cell]) -> list[Target]:
    out = _time_target(table, "file_large", "1. file://")
    out += _memory_targets(table, "file_large", "1. file://")
    seq = _find(table, "many_small", "sequential")
    op = _find(table, "many_small", "operator")
    if seq and op:
        speedup = seq[0].seconds / op[0].seconds
        out.append(
            Target("2. many files: speedup over a sequential new-connection loop", f"{speedup:.1f}x",
                   f">= {SPEEDUP_TARGET:.0f}x", speedup >= SPEEDUP_TARGET)
        )  # fmt: skip
    out += _time_target(table, "s3", "3. s3://")
    out += _memory_targets(table, "s3", "3. s3://")
    plain = _find(table, "single_large_file", "plain_requests")
    op = _find(table, "single_large_file", "operator")
    if plain and op:
        ratio = op[0].seconds / plain[0].seconds
        out.append(
            Target(f"4. one large file: time vs a plain requests copy at {_mib(op[0].size)}", f"{ratio:.2f}x",
                   f"<= {SINGLE_RATIO_LIMIT:.2f}x", ratio <= SINGLE_RATIO_LIMIT)
        )  # fmt: skip
    return out


def summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    table = cells(records)
    return {
        "cells": [asdict(c) for c in table],
        "ratios": ratios(table),
        "targets": [asdict(t) for t in targets(table)],
    }


# -- plot ----------------------------------------------------------------------------------------


def plot(summary_: dict[str, Any], path: Path) -> None:
    """Two panels against file size: time ratio to the baseline, and peak RSS growth."""
    import matplotlib

    matplotlib.use("Agg")  # no display here, and none needed
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    # One colour per client in both panels, so a line can be followed from time to memory.
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colour = {key: palette[index % len(palette)] for index, key in enumerate(sorted(LABELS))}
    series: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for row in summary_["ratios"]:
        series[(row["scenario"], row["candidate"])].append((row["size"] / MiB, row["ratio"]))
    for key, points in sorted(series.items()):
        xs, ys = zip(*sorted(points), strict=True)
        label = LABELS.get(key, "/".join(key)) + f" / {BASELINES[key[0]]}"
        left.plot(xs, ys, marker="o", color=colour.get(key), label=label)
    left.axhline(TIME_RATIO_LIMIT, color="grey", linestyle="--", label=f"target {TIME_RATIO_LIMIT}x")
    left.set(xscale="log", xlabel="file size (MiB)", ylabel="median time / baseline median time",
             title="Time ratio (lower is better)")  # fmt: skip
    memory: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for cell in summary_["cells"]:
        key = (cell["scenario"], cell["candidate"])
        if key in LABELS:
            memory[key].append((cell["size"] / MiB, cell["peak_rss_growth"] / MiB))
    for key, points in sorted(memory.items()):
        xs, ys = zip(*sorted(points), strict=True)
        style = "-" if key[1] == "operator" else ":"
        right.plot(xs, [max(y, 0.1) for y in ys], style, marker="o", color=colour[key], label=LABELS[key])
    for scenario, limit in RSS_LIMIT.items():
        right.axhline(limit / MiB, color="grey", linestyle="--", linewidth=0.8, label=f"limit {scenario}")
    right.set(xscale="log", yscale="log", xlabel="file size (MiB)", ylabel="median peak RSS growth (MiB)",
              title="Client memory (lower is better)")  # fmt: skip
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    sizes = sorted({cell["size"] / MiB for cell in summary_["cells"] if cell["scenario"] in BASELINES})
    for axis in (left, right):
        # Ticks at the measured sizes, as plain numbers (16, 256, 1024), not 2 x 10^1.
        axis.set_xticks(sizes)
        for scale_axis in (axis.xaxis, axis.yaxis):
            formatter = ScalarFormatter()
            formatter.set_scientific(False)
            scale_axis.set_major_formatter(formatter)
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
