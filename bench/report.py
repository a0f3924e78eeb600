"""Turning measurements into output: the CSV schema and rows, the stdout table, the targets and the plot.

One schema for every family (losses, activations): see bench/README.md for what each column means.
"""

import csv
import re
import textwrap
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from .cases import TARGETS

COLUMNS = [
    "run_id", "timestamp", "git_commit", "torch_version", "device", "device_name", "threads", "load_average",
    "environment", "allocator_settings", "default_gradient_mode",
    "family", "op", "shape", "dtype", "implementation", "warmup", "repeats",
    "ms_median", "ms_mean", "ms_min", "ms_max", "steps_within_10pct", "ms_samples", "first_call_s",
    "page_faults_median", "page_faults_mean", "page_fault_samples",
    "bytes_moved", "effective_gbps", "copy_gbps", "fraction_of_copy", "saved_bytes", "saved_beyond_inputs_bytes",
    "speedup_vs_native", "speedup_vs_reference", "speedup_vs_compiled_reference",
]
PEERS = ("native", "reference", "compiled_reference")
COPY = "copy"
# Steady allocators first, glibc's defaults last (bench/environment.py names them).
ENVIRONMENT_ORDER = ("tcmalloc", "glibc-tuned", "thp", "custom", "default")


def format_shape(shape: Sequence[int]) -> str:
    return "x".join(str(size) for size in shape)


def default_lossext(row: Dict) -> str:
    """The lossext implementation users get for this row's case: the device's default gradient mode for a
    loss, the one kernel for an activation."""
    mode = row["default_gradient_mode"]
    return f"lossext_{mode}" if mode else "lossext"


def append_csv(path: Path, rows: Sequence[Dict]) -> None:
    """Append rows to the CSV at `path`, writing the header if the file is new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        with path.open(newline="") as f:
            header = next(csv.reader(f), None)
        if header != COLUMNS:
            raise SystemExit(f"{path} has other columns than this harness writes; move it aside to start anew")
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        writer.writerows(rows)


def read_run(path: Path, run_id: str) -> List[Dict]:
    """The rows of one run (all its environments) from the CSV at `path`."""
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return [row for row in csv.DictReader(f) if row["run_id"] == run_id]


def _number(value) -> Optional[float]:
    return None if value in ("", None) else float(value)


def _format(value, pattern: str, scale: float = 1.0) -> str:
    number = _number(value)
    return "-" if number is None else pattern.format(number * scale)


def case_key(row: Dict) -> tuple:
    return (row["device"], row["environment"], row["family"], row["op"], row["shape"], row["dtype"])


# The table's columns after the implementation's name: (heading, width, text of a row).
TABLE_COLUMNS = [
    ("median ms", 10, lambda r: _format(r["ms_median"], "{:.2f}")),
    ("mean ms", 8, lambda r: _format(r["ms_mean"], "{:.2f}")),
    ("min-max ms", 17, lambda r: f"{float(r['ms_min']):.2f}-{float(r['ms_max']):.2f}"),
    ("in 10%", 7, lambda r: _format(r["steps_within_10pct"], "{:.0%}")),
    ("faults", 7, lambda r: _format(r["page_faults_median"], "{:.0f}")),
    ("mean faults", 11, lambda r: _format(r["page_faults_mean"], "{:.0f}")),
    ("GB/s", 7, lambda r: _format(r["effective_gbps"], "{:.2f}")),
    ("% copy", 7, lambda r: _format(r["fraction_of_copy"], "{:.0%}")),
    ("saved MB", 9, lambda r: _format(r["saved_bytes"], "{:.1f}", scale=1e-6)),
    ("new MB", 7, lambda r: _format(r["saved_beyond_inputs_bytes"], "{:.1f}", scale=1e-6)),
    ("x native", 9, lambda r: _format(r["speedup_vs_native"], "{:.2f}")),
    ("x ref", 7, lambda r: _format(r["speedup_vs_reference"], "{:.2f}")),
    ("x compiled", 10, lambda r: _format(r["speedup_vs_compiled_reference"], "{:.2f}")),
]
TABLE_LEGEND = ("Per timed step (gradients set to None, forward, backward): median and mean ms, min-max, the share "
                "of steps within 10% of the median (in 10%), and minor page faults (median, mean). GB/s: the "
                "step's least traffic / median time; % copy: that over the copy bandwidth measured in the same "
                "rounds (the copy row). saved MB: storages autograd keeps for backward; new MB: those that are "
                "not the inputs'. x peer: peer's median / this median.")


def case_title(row: Dict) -> str:
    return f"{row['op']} {row['shape']} {row['dtype']}"


def format_table(rows: Sequence[Dict]) -> str:
    """The human-readable table, one block per (device, environment, family, op, shape, dtype)."""
    blocks = defaultdict(list)
    for row in rows:
        blocks[case_key(row)].append(row)
    header = f"{'implementation':<20}" + "".join(f" {heading:>{width}}" for heading, width, _ in TABLE_COLUMNS)
    lines = textwrap.wrap(TABLE_LEGEND, width=len(header))
    for block in blocks.values():
        first = block[0]
        mode = first["default_gradient_mode"]
        lines.append("")
        lines.append(f"{case_title(first)} on {first['device']} [{first['device_name']}], {first['environment']} "
                     f"environment ({first['allocator_settings']}), {first['threads']} threads (load average "
                     f"{first['load_average']})" + (f", lossext default gradient mode: {mode}" if mode else ""))
        lines.append(header)
        for row in block:
            lines.append(f"{row['implementation']:<20}" +
                         "".join(f" {text(row):>{width}}" for _, width, text in TABLE_COLUMNS))
    return "\n".join(lines)


def format_targets(rows: Sequence[Dict]) -> str:
    """Each Foundation-issue target, per device and environment: measured value and whether it is met
    ("" when the rows hold no loss)."""
    groups = defaultdict(list)
    for row in rows:
        if row["family"] == "losses":
            groups[(row["device"], row["environment"])].append(row)
    if not groups:
        return ""
    lines = ["", "Targets (reported, not asserted):"]
    for (device, environment), group in groups.items():
        for target in TARGETS:
            shape = format_shape(target.shape)
            implementation = default_lossext(group[0]) if target.implementation == "lossext" else target.implementation
            matches = [r for r in group if r["op"] == target.loss and r["dtype"] == target.dtype
                       and r["shape"] == shape and r["implementation"] == implementation]
            label = (f"{device} {environment:<11} {target.loss} {shape} {target.dtype} "
                     f"{implementation} {target.metric} >= {target.minimum:g}")
            value = _number(matches[0][target.metric]) if matches else None
            if value is None:
                lines.append(f"  {label}: not measured")
            else:
                verdict = "met" if value >= target.minimum else "MISSED"
                lines.append(f"  {label}: {value:.2f} {verdict}")
    return "\n".join(lines)


def _horizontal_bars(axis, cases: List[tuple], series: Dict[str, Dict[tuple, Tuple[float, str]]]) -> None:
    """One group of horizontal bars per case (top to bottom in run order), one bar per series with its label
    text at its end; a case a series lacks leaves a gap. The legend goes right of the axes."""
    height = 0.8 / max(1, len(series))
    for index, (name, values) in enumerate(series.items()):
        ys = [position + (index - (len(series) - 1) / 2) * height for position in range(len(cases))]
        bars = axis.barh(ys, [values[case][0] if case in values else 0.0 for case in cases], height, label=name)
        axis.bar_label(bars, labels=[values[case][1] if case in values else "" for case in cases], fontsize=6,
                       padding=2)
    axis.set_ylim(len(cases) - 0.5, -0.5)  # the first case on top
    axis.set_yticks(range(len(cases)))
    axis.set_yticklabels([" ".join(case[1:]) for case in cases], fontsize=7)
    axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axis.grid(axis="x", alpha=0.3)


def plot(rows: Sequence[Dict], path: Path) -> None:
    """Two panels per environment, every case a group of horizontal bars: lossext's speed-up over each peer
    (peer's median / lossext's, a line at 1x), and each implementation's share of the copy bandwidth measured
    in that case's rounds (the tables' % copy; the copy bar, at 100%, says its GB/s as the tables' copy row
    does). Ratios rather than ms or GB/s, so that a 3 ms case reads as well as a 200 ms one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator

    environments = sorted({row["environment"] for row in rows},
                          key=lambda e: ENVIRONMENT_ORDER.index(e) if e in ENVIRONMENT_ORDER else -1)
    implementations = list(dict.fromkeys(row["implementation"] for row in rows))
    cases = list(dict.fromkeys(case_key(row)[2:] for row in rows))
    panel_height = 0.8 + 0.13 * len(cases) * len(implementations)
    figure, axes = plt.subplots(2, len(environments), figsize=(7.5 * len(environments), 2 * panel_height + 0.8),
                                squeeze=False, sharey="row")
    for column, environment in enumerate(environments):
        by_case = defaultdict(dict)
        for row in rows:
            if row["environment"] == environment:
                by_case[case_key(row)[2:]][row["implementation"]] = row
        speedups = defaultdict(dict)
        fractions = defaultdict(dict)
        for case, by_implementation in by_case.items():
            lossext_row = by_implementation.get(default_lossext(next(iter(by_implementation.values()))))
            for peer in PEERS:
                value = _number(lossext_row[f"speedup_vs_{peer}"]) if lossext_row else None
                if value is not None:
                    speedups[f"vs {peer}"][case] = (value, f"{value:.2f}x")
            for implementation, row in by_implementation.items():
                percent = 100 * float(row["fraction_of_copy"])
                text = f"{float(row['effective_gbps']):.1f} GB/s" if implementation == COPY else f"{percent:.0f}%"
                fractions[implementation][case] = (percent, text)

        speed_axis, copy_axis = axes[0][column], axes[1][column]
        _horizontal_bars(speed_axis, cases, dict(speedups))
        speed_axis.axvline(1.0, color="black", linewidth=0.8)
        speed_axis.set_xscale("log")
        largest = max((value for values in speedups.values() for value, _ in values.values()), default=1.0)
        speed_axis.set_xlim(0.5 if largest < 8 else 0.25, max(2.0, largest) * 1.8)  # room for the labels
        speed_axis.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        speed_axis.xaxis.set_minor_formatter(FuncFormatter(lambda value, _: ""))
        speed_axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}x"))
        speed_axis.set_xlabel("peer's median / lossext's (> 1x: lossext faster; log scale)", fontsize=8)
        _horizontal_bars(copy_axis, cases, {name: fractions[name] for name in implementations if name in fractions})
        copy_axis.axvline(100.0, color="black", linestyle="--", linewidth=0.8)
        copy_axis.set_xlim(0, max(value for values in fractions.values() for value, _ in values.values()) * 1.2)
        copy_axis.set_xlabel("least traffic / median time, % of the copy bandwidth measured in the same rounds",
                             fontsize=8)
        settings = next(iter(next(iter(by_case.values())).values()))["allocator_settings"]
        settings = re.sub(r"LD_PRELOAD=\S*/", "LD_PRELOAD=", settings)  # the library's name, not its directory
        lossext_name = default_lossext(next(iter(next(iter(by_case.values())).values())))
        for axis, what in ((speed_axis, f"speed-up of {lossext_name} (what users get) over each peer"),
                           (copy_axis, "% of copy bandwidth")):
            axis.set_title(textwrap.fill(f"{environment} allocator ({settings}): {what}", 75), fontsize=9)
    first = rows[0]
    loads = [float(r["load_average"]) for r in rows]
    figure.suptitle(textwrap.fill(f"{first['device_name']}, {first['threads']} threads, torch "
                                  f"{first['torch_version']}, commit {first['git_commit']}, load average "
                                  f"{min(loads):.1f}-{max(loads):.1f}; medians of {first['repeats']} steps "
                                  f"(gradients set to None, forward, backward)", 100), fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, bbox_inches="tight")  # "tight": no title, label or legend is cut at an edge
    plt.close(figure)
