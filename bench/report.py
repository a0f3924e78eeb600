"""Turning measurements into output: the CSV schema and rows, the stdout table, the targets and the plot.

One schema for every family (losses, activations, heads): see bench/README.md for what each column means.
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
    "speedup_vs_unfused", "speedup_vs_torch_lce", "speedup_vs_torch_lce_chunked", "speedup_vs_compiled_unfused",
    "speedup_vs_cut_cross_entropy", "time_vs_products", "peak_extra_bytes", "grad_error_vs_float64",
]
PEERS = ("native", "reference", "compiled_reference")
# The fused head's peers (bench/head_family.py), and its products alone, which every head's time is divided by.
HEAD_PEERS = ("unfused", "torch_lce", "torch_lce_chunked", "compiled_unfused", "cut_cross_entropy")
PRODUCTS = "products"
HEADS = "heads"
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


# The table's columns after the implementation's name: (heading, width, text of a row, the families that show
# it: None for every family). The heads are bound by their GEMMs, not by memory traffic: no GB/s there.
BANDWIDTH_BOUND_FAMILIES = ("losses", "activations")
TABLE_COLUMNS = [
    ("median ms", 10, lambda r: _format(r["ms_median"], "{:.2f}"), None),
    ("mean ms", 8, lambda r: _format(r["ms_mean"], "{:.2f}"), None),
    ("min-max ms", 17, lambda r: f"{float(r['ms_min']):.2f}-{float(r['ms_max']):.2f}", None),
    ("in 10%", 7, lambda r: _format(r["steps_within_10pct"], "{:.0%}"), None),
    ("faults", 7, lambda r: _format(r["page_faults_median"], "{:.0f}"), None),
    ("mean faults", 11, lambda r: _format(r["page_faults_mean"], "{:.0f}"), None),
    ("GB/s", 7, lambda r: _format(r["effective_gbps"], "{:.2f}"), BANDWIDTH_BOUND_FAMILIES),
    ("% copy", 7, lambda r: _format(r["fraction_of_copy"], "{:.0%}"), BANDWIDTH_BOUND_FAMILIES),
    ("saved MB", 9, lambda r: _format(r["saved_bytes"], "{:.1f}", scale=1e-6), None),
    ("new MB", 7, lambda r: _format(r["saved_beyond_inputs_bytes"], "{:.1f}", scale=1e-6), None),
    ("x native", 9, lambda r: _format(r["speedup_vs_native"], "{:.2f}"), BANDWIDTH_BOUND_FAMILIES),
    ("x ref", 7, lambda r: _format(r["speedup_vs_reference"], "{:.2f}"), BANDWIDTH_BOUND_FAMILIES),
    ("x compiled", 10, lambda r: _format(r["speedup_vs_compiled_reference"], "{:.2f}"), BANDWIDTH_BOUND_FAMILIES),
    ("peak MB", 8, lambda r: _format(r["peak_extra_bytes"], "{:.1f}", scale=1e-6), (HEADS,)),
    ("grad err", 8, lambda r: _format(r["grad_error_vs_float64"], "{:.1e}"), (HEADS,)),
    ("t/products", 10, lambda r: _format(r["time_vs_products"], "{:.2f}"), (HEADS,)),
    ("x unfused", 9, lambda r: _format(r["speedup_vs_unfused"], "{:.2f}"), (HEADS,)),
    ("x torch_lce", 11, lambda r: _format(r["speedup_vs_torch_lce"], "{:.2f}"), (HEADS,)),
    ("x chunked", 9, lambda r: _format(r["speedup_vs_torch_lce_chunked"], "{:.2f}"), (HEADS,)),
    ("x compiled", 10, lambda r: _format(r["speedup_vs_compiled_unfused"], "{:.2f}"), (HEADS,)),
    ("x cce", 6, lambda r: _format(r["speedup_vs_cut_cross_entropy"], "{:.2f}"), (HEADS,)),
]
TABLE_LEGEND = ("Per timed step (gradients set to None, forward, backward): median and mean ms, min-max, the share "
                "of steps within 10% of the median (in 10%), and minor page faults (median, mean). saved MB: "
                "storages autograd keeps for backward; new MB: those that are not the inputs'. x peer: peer's "
                "median / this median.")
# What only some families' tables show.
FAMILY_LEGENDS = {
    BANDWIDTH_BOUND_FAMILIES: ("GB/s: the step's least traffic / median time; % copy: that over the copy bandwidth "
                        "measured in the same rounds (the copy row)."),
    (HEADS,): ("Heads: no GB/s (the step is bound by its three GEMMs); peak MB: the memory one step allocates at "
               "its peak above its inputs and returned gradients; grad err: max |g - g64| / max |g64| of "
               "d loss/d x and d loss/d W (the larger) against the float64 unfused head; t/products: this median / "
               "the three matrix products' median; x unfused, x torch_lce, x chunked (torch_lce_chunked), "
               "x compiled (compiled_unfused), x cce (cut_cross_entropy): that peer's median / this median."),
}


def table_columns(family: str) -> list:
    return [column for column in TABLE_COLUMNS if column[3] is None or family in column[3]]


def case_title(row: Dict) -> str:
    return f"{row['op']} {row['shape']} {row['dtype']}"


def format_table(rows: Sequence[Dict]) -> str:
    """The human-readable table, one block per (device, environment, family, op, shape, dtype)."""
    blocks = defaultdict(list)
    for row in rows:
        blocks[case_key(row)].append(row)
    families = list(dict.fromkeys(row["family"] for row in rows))
    width = max(len(header_line(family)) for family in families) if families else 100
    legend = " ".join([TABLE_LEGEND] + [text for shown_in, text in FAMILY_LEGENDS.items()
                                        if any(family in shown_in for family in families)])
    lines = textwrap.wrap(legend, width=width)
    for block in blocks.values():
        first = block[0]
        mode = first["default_gradient_mode"]
        columns = table_columns(first["family"])
        lines.append("")
        lines.append(f"{case_title(first)} on {first['device']} [{first['device_name']}], {first['environment']} "
                     f"environment ({first['allocator_settings']}), {first['threads']} threads (load average "
                     f"{first['load_average']})" + (f", lossext default gradient mode: {mode}" if mode else ""))
        lines.append(header_line(first["family"]))
        for row in block:
            lines.append(f"{row['implementation']:<20}" +
                         "".join(f" {text(row):>{width}}" for _, width, text, _ in columns))
    return "\n".join(lines)


def header_line(family: str) -> str:
    return f"{'implementation':<20}" + "".join(f" {heading:>{width}}" for heading, width, _, _ in table_columns(family))


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
    does). Ratios rather than ms or GB/s, so that a 3 ms case reads as well as a 200 ms one. The heads have panels
    of their own (plot_heads)."""
    import matplotlib

    matplotlib.use("Agg")
    if rows[0]["family"] == HEADS:
        return plot_heads(rows, path)
    environments = _environments(rows)
    implementations = list(dict.fromkeys(row["implementation"] for row in rows))
    cases = list(dict.fromkeys(case_key(row)[2:] for row in rows))
    figure, axes = _figure(environments, cases, implementations)
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
        _ratio_axis(speed_axis, speedups)
        speed_axis.set_xlabel("peer's median / lossext's (> 1x: lossext faster; log scale)", fontsize=8)
        _horizontal_bars(copy_axis, cases, {name: fractions[name] for name in implementations if name in fractions})
        copy_axis.axvline(100.0, color="black", linestyle="--", linewidth=0.8)
        copy_axis.set_xlim(0, max(value for values in fractions.values() for value, _ in values.values()) * 1.2)
        copy_axis.set_xlabel("least traffic / median time, % of the copy bandwidth measured in the same rounds",
                             fontsize=8)
        lossext_name = default_lossext(next(iter(next(iter(by_case.values())).values())))
        for axis, what in ((speed_axis, f"speed-up of {lossext_name} (what users get) over each peer"),
                           (copy_axis, "% of copy bandwidth")):
            _environment_title(axis, rows, environment, what)
    _save(figure, rows, path)


def plot_heads(rows: Sequence[Dict], path: Path) -> None:
    """The heads' two panels per environment, every case a group of horizontal bars: each implementation's time
    over the three matrix products' (log scale, a line at 1x: the GEMM floor), and the memory each allocates at
    its peak above its inputs and returned gradients, in MB. No copy bandwidth: the heads are GEMM-bound."""
    environments = _environments(rows)
    implementations = [name for name in dict.fromkeys(row["implementation"] for row in rows) if name != COPY]
    cases = list(dict.fromkeys(case_key(row)[2:] for row in rows))
    figure, axes = _figure(environments, cases, implementations)
    for column, environment in enumerate(environments):
        times = defaultdict(dict)
        peaks = defaultdict(dict)
        for row in rows:
            if row["environment"] != environment or row["implementation"] == COPY:
                continue
            case = case_key(row)[2:]
            ratio = _number(row["time_vs_products"])
            if ratio is not None:
                times[row["implementation"]][case] = (ratio, f"{ratio:.2f}x")
            peak = _number(row["peak_extra_bytes"])
            if peak is not None:
                peaks[row["implementation"]][case] = (peak / 1e6, f"{peak / 1e6:.3g} MB")
        time_axis, memory_axis = axes[0][column], axes[1][column]
        _horizontal_bars(time_axis, cases, {name: times[name] for name in implementations if name in times})
        _ratio_axis(time_axis, times)
        time_axis.set_xlabel("median / the products' median (1x: the three GEMMs alone; log scale)", fontsize=8)
        _horizontal_bars(memory_axis, cases, {name: peaks[name] for name in implementations if name in peaks})
        values = [value for values in peaks.values() for value, _ in values.values()] or [1.0]
        # Below 0 at tiny shapes, where gradients under glibc's mmap threshold reuse resident heap pages.
        memory_axis.set_xlim(min(0.0, min(values) * 1.25), max(max(values), 1e-3) * 1.25)
        memory_axis.set_xlabel("peak memory of a step above its inputs and returned gradients, MB", fontsize=8)
        if not peaks:
            memory = "peak extra memory (not measured: --no-memory)"
        elif rows[0]["device"] == "cpu":  # whatever the run's allocator: see bench/head_family.py
            memory = "peak extra memory, measured by a child each under glibc with MALLOC_MMAP_THRESHOLD_=131072"
        else:
            memory = "peak extra memory, by the caching allocator's peak counter"
        for axis, what in ((time_axis, "time relative to the three matrix products alone"), (memory_axis, memory)):
            _environment_title(axis, rows, environment, what)
    _save(figure, rows, path)


def _environments(rows: Sequence[Dict]) -> List[str]:
    return sorted({row["environment"] for row in rows},
                  key=lambda e: ENVIRONMENT_ORDER.index(e) if e in ENVIRONMENT_ORDER else -1)


def _figure(environments: Sequence[str], cases: Sequence[tuple], implementations: Sequence[str]):
    """Two rows of panels, a column per environment, tall enough for a bar per case and implementation."""
    import matplotlib.pyplot as plt

    panel_height = 0.8 + 0.13 * len(cases) * len(implementations)
    return plt.subplots(2, len(environments), figsize=(7.5 * len(environments), 2 * panel_height + 0.8),
                        squeeze=False, sharey="row")


def _ratio_axis(axis, series: Dict[str, Dict[tuple, Tuple[float, str]]]) -> None:
    """A log-scaled x axis of ratios with a line at 1x and room for the bars' labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    axis.axvline(1.0, color="black", linewidth=0.8)
    axis.set_xscale("log")
    largest = max((value for values in series.values() for value, _ in values.values()), default=1.0)
    axis.set_xlim(0.5 if largest < 8 else 0.25, max(2.0, largest) * 1.8)
    axis.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.xaxis.set_minor_formatter(FuncFormatter(lambda value, _: ""))
    axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}x"))


def _environment_title(axis, rows: Sequence[Dict], environment: str, what: str) -> None:
    settings = next(row for row in rows if row["environment"] == environment)["allocator_settings"]
    settings = re.sub(r"LD_PRELOAD=\S*/", "LD_PRELOAD=", settings)  # the library's name, not its directory
    axis.set_title(textwrap.fill(f"{environment} allocator ({settings}): {what}", 75), fontsize=9)


def _save(figure, rows: Sequence[Dict], path: Path) -> None:
    """The run's facts as the title, then the PNG at `path`."""
    import matplotlib.pyplot as plt

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
