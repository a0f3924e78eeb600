"""The benchmark harness end to end on one tiny case: it measures, writes its CSV and plot, and reports."""

import csv

import torch

import lossext
from bench import report, run


def test_tiny_case_writes_complete_csv_rows(tmp_path, capsys):
    # No compiled_reference: compiling takes seconds even for a tiny shape.
    args = run.parse_args([
        "--losses", "cross_entropy", "--shapes", "64x10", "--dtypes", "fp32", "--devices", "cpu",
        "--implementations", "native,reference,lossext_fused,lossext_recompute,lossext_kernel",
        "--warmup", "0", "--repeats", "1", "--copy-mib", "1", "--threads", str(torch.get_num_threads()),
        "--results-dir", str(tmp_path),
    ])
    results = run.run_benchmark(args, run_id="smoke")
    (csv_path,) = results
    run.final_report([csv_path], "smoke")

    with csv_path.open(newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == report.COLUMNS
        rows = list(reader)
    measured = {row["implementation"] for row in rows}
    expected = {"native", "reference", "copy"}
    if lossext.backend() == "extension":
        expected |= {"lossext_fused", "lossext_recompute", "lossext_kernel"}
    assert measured == expected
    for row in rows:
        assert (row["loss"], row["rows"], row["classes"], row["dtype"]) == ("cross_entropy", "64", "10", "fp32")
        assert float(row["ms_median"]) > 0 and float(row["effective_gbps"]) > 0
        assert row["torch_version"] == torch.__version__ and row["git_commit"] and row["device_name"]
    assert csv_path.with_suffix(".png").stat().st_size > 0
    assert "Targets" in capsys.readouterr().out
