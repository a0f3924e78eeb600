"""Turning measurements into output: CSV rows, the stdout table, the target summary and the PNG plot."""

import csv
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .cases import TARGETS

COLUMNS = [
    "run_id", "timestamp", "git_commit", "torch_version", "device", "device_name", "threads", "load_average",
    "environment", "allocator_settings", "default_gradient_mode",
    "loss", "rows", "classes", "dtype", "implementation", "warmup", "repeats",
    "ms_median", "ms_min", "ms_max", "first_call_s", "page_faults_median",
    "bytes_moved", "effective_gbps", "copy_gbps", "fraction_of_copy", "saved_bytes", "saved_beyond_inputs_bytes",
    "speedup_vs_native", "speedup_vs_reference", "speedup_vs_compiled_reference",
]
PEERS = ("native", "reference", "compiled_reference")
COPY = "copy"


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
    return (row["device"], row["environment"], row["loss"], int(row["rows"]), int(row["classes"]), row["dtype"])


# The table's columns after the implementation's name: (heading, width, text of a row).
TABLE_COLUMNS = [
    ("median ms", 10, lambda r: _format(r["ms_median"], "{:.2f}")),
    ("min-max ms", 17, lambda r: f"{float(r['ms_min']):.2f}-{float(r['ms_max']):.2f}"),
    ("GB/s", 7, lambda r: _format(r["effective_gbps"], "{:.2f}")),
    ("% copy", 7, lambda r: _format(r["fraction_of_copy"], "{:.0%}")),
    ("faults", 7, lambda r: _format(r["page_faults_median"], "{:.0f}")),
    ("saved MB", 9, lambda r: _format(r["saved_bytes"], "{:.1f}", scale=1e-6)),
    ("new MB", 7, lambda r: _format(r["saved_beyond_inputs_bytes"], "{:.1f}", scale=1e-6)),
    ("x native", 9, lambda r: _format(r["speedup_vs_native"], "{:.2f}")),
    ("x ref", 7, lambda r: _format(r["speedup_vs_reference"], "{:.2f}")),
    ("x compiled", 10, lambda r: _format(r["speedup_vs_compiled_reference"], "{:.2f}")),
]
TABLE_LEGEND = ("GB/s: (logits read + gradient written) / median time. faults: median minor page faults per call. "
                "saved MB: storages autograd keeps for backward; new MB: those that are not the inputs'. "
                "x peer: peer's median / this median.")


def format_table(rows: Sequence[Dict]) -> str:
    """The human-readable table, one block per (device, environment, loss, shape, dtype)."""
    blocks = defaultdict(list)
    for row in rows:
        blocks[case_key(row)].append(row)
    header = f"{'implementation':<20}" + "".join(f" {heading:>{width}}" for heading, width, _ in TABLE_COLUMNS)
    lines = [TABLE_LEGEND]
    for (device, environment, loss, n, c, dtype), block in blocks.items():
        first = block[0]
        lines.append("")
        lines.append(f"{loss} ({n}, {c}) {dtype} on {device} [{first['device_name']}], {environment} environment "
                     f"({first['allocator_settings']}), {first['threads']} threads (load average "
                     f"{first['load_average']}), "
                     f"lossext default gradient mode: {first['default_gradient_mode']}")
        lines.append(header)
        for row in block:
            lines.append(f"{row['implementation']:<20}" +
                         "".join(f" {text(row):>{width}}" for _, width, text in TABLE_COLUMNS))
    return "\n".join(lines)


def format_targets(rows: Sequence[Dict]) -> str:
    """Each Foundation-issue target, per device and environment: measured value and whether it is met."""
    lines = ["", "Targets (reported, not asserted):"]
    groups = defaultdict(list)
    for row in rows:
        groups[(row["device"], row["environment"])].append(row)
    for (device, environment), group in groups.items():
        default_mode = group[0]["default_gradient_mode"]
        for target in TARGETS:
            implementation = (f"lossext_{default_mode}" if target.implementation == "lossext"
                              else target.implementation)
            matches = [r for r in group if r["loss"] == target.loss and r["dtype"] == target.dtype
                       and (int(r["rows"]), int(r["classes"])) == target.shape
                       and r["implementation"] == implementation]
            label = (f"{device} {environment:<8} {target.loss} {target.shape} {target.dtype} "
                     f"{implementation} {target.metric} >= {target.minimum:g}")
            value = _number(matches[0][target.metric]) if matches else None
            if value is None:
                lines.append(f"  {label}: not measured")
            else:
                verdict = "met" if value >= target.minimum else "MISSED"
                lines.append(f"  {label}: {value:.2f} {verdict}")
    return "\n".join(lines)


def plot(rows: Sequence[Dict], path: Path) -> None:
    """Grouped bars of effective GB/s per implementation per case, one panel per environment,
    with a line at the copy bandwidth measured in that environment."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    environments = sorted({row["environment"] for row in rows}, key=lambda e: (e != "steady", e))
    implementations = list(dict.fromkeys(row["implementation"] for row in rows if row["implementation"] != COPY))
    case_count = len({case_key(row)[2:] for row in rows})
    figure, axes = plt.subplots(len(environments), 1, figsize=(max(8.0, 2.0 * case_count), 4.5 * len(environments)),
                                squeeze=False)
    for axis, environment in zip(axes[:, 0], environments):
        env_rows = [row for row in rows if row["environment"] == environment]
        cases = list(dict.fromkeys(case_key(row)[2:] for row in env_rows))
        width = 0.8 / max(1, len(implementations))
        for index, implementation in enumerate(implementations):
            by_case = {case_key(r)[2:]: float(r["effective_gbps"]) for r in env_rows
                       if r["implementation"] == implementation}
            xs = [i + (index - (len(implementations) - 1) / 2) * width for i in range(len(cases))]
            axis.bar(xs, [by_case.get(case, 0.0) for case in cases], width, label=implementation)
        copy_gbps = [float(r["effective_gbps"]) for r in env_rows if r["implementation"] == COPY]
        if copy_gbps:
            axis.axhline(statistics.median(copy_gbps), color="black", linestyle="--",
                         label=f"copy bandwidth ({statistics.median(copy_gbps):.1f} GB/s)")
        axis.set_xticks(range(len(cases)))
        axis.set_xticklabels([f"{loss}\n({n}, {c}) {dtype}" for loss, n, c, dtype in cases], fontsize=8)
        axis.set_ylabel("effective GB/s (logits read + gradient written)")
        first = env_rows[0]
        loads = [float(r["load_average"]) for r in env_rows]
        axis.set_title(f"{first['device_name']}, {first['threads']} threads, {environment} environment "
                       f"({first['allocator_settings']}), load average {min(loads):.1f}-{max(loads):.1f}",
                       fontsize=9)
        axis.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
