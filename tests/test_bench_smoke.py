"""The benchmark harness end to end on tiny cases of every family: it measures a user's step, writes CSV
rows of the one schema and the plot, and reports; and it picks the allocator environments it says."""

import csv
import subprocess

import pytest
import torch

import lossext
from bench import environment, report, run
from bench.measure import user_step


def run_tiny(tmp_path, family: str, ops: str, shape: str, implementations: str):
    args = run.parse_args([
        "--family", family, "--ops", ops, "--shapes", shape, "--dtypes", "fp32", "--devices", "cpu",
        "--implementations", implementations, "--warmup", "0", "--repeats", "3", "--copy-mib", "1",
        "--threads", str(torch.get_num_threads()), "--results-dir", str(tmp_path),
    ])
    results = run.run_benchmark(args, run_id="smoke")
    (csv_path,) = results
    run.final_report([csv_path], "smoke")
    with csv_path.open(newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == report.COLUMNS
        rows = list(reader)
    assert csv_path.with_name(f"{csv_path.stem}-{family}.png").stat().st_size > 0
    return rows


def assert_complete_row(row, family: str, op: str, shape: str) -> None:
    assert (row["family"], row["op"], row["shape"], row["dtype"]) == (family, op, shape, "fp32")
    samples = [float(ms) for ms in row["ms_samples"].split()]
    faults = [int(count) for count in row["page_fault_samples"].split()]
    assert len(samples) == len(faults) == int(row["repeats"]) == 3
    assert float(row["ms_min"]) == pytest.approx(min(samples), rel=1e-3)
    assert float(row["ms_max"]) == pytest.approx(max(samples), rel=1e-3)
    assert float(row["ms_min"]) <= float(row["ms_median"]) <= float(row["ms_max"])
    assert float(row["ms_mean"]) == pytest.approx(sum(samples) / 3, rel=1e-3)
    assert float(row["page_faults_mean"]) == pytest.approx(sum(faults) / 3, rel=1e-5)  # written with 6 digits (:g)
    # An odd number of samples: the median is one of them, so at least that one is within 10% of it.
    assert 1 / 3 - 1e-3 <= float(row["steps_within_10pct"]) <= 1
    if family == "heads" and row["implementation"] != "copy":
        assert row["bytes_moved"] == row["effective_gbps"] == row["fraction_of_copy"] == ""  # GEMM-bound: no GB/s
    else:
        assert float(row["effective_gbps"]) > 0
    assert row["torch_version"] == torch.__version__ and row["git_commit"] and row["device_name"]
    assert row["environment"] == environment.running_allocator()


def test_tiny_loss_case_writes_complete_csv_rows(tmp_path, capsys):
    # No compiled_reference: compiling takes seconds even for a tiny shape.
    rows = run_tiny(tmp_path, "losses", "cross_entropy", "64x10",
                    "native,reference,lossext_fused,lossext_recompute,lossext_kernel")
    expected = {"native", "reference", "copy"}
    if lossext.backend() == "extension":
        expected |= {"lossext_fused", "lossext_recompute", "lossext_kernel"}
    assert {row["implementation"] for row in rows} == expected
    for row in rows:
        assert_complete_row(row, "losses", "cross_entropy", "64x10")
    assert "Targets" in capsys.readouterr().out


def test_tiny_activation_cases_write_rows_of_the_same_schema(tmp_path, capsys):
    # prelu: a per-channel parameter (dim 1 of the shape) that takes a gradient too.
    rows = run_tiny(tmp_path, "activations", "gelu_tanh,prelu", "4x3x5", "native,reference,lossext")
    expected = {"native", "reference", "copy"} | ({"lossext"} if lossext.backend() == "extension" else set())
    for op in ("gelu_tanh", "prelu"):
        op_rows = [row for row in rows if row["op"] == op]
        assert {row["implementation"] for row in op_rows} == expected
        for row in op_rows:
            assert_complete_row(row, "activations", op, "4x3x5")
            assert row["default_gradient_mode"] == ""
            if row["implementation"] != "copy":
                # x, y, g, one saved tensor and dx, 4 bytes an element.
                assert int(row["bytes_moved"]) == 5 * 4 * 60
    assert "Targets" not in capsys.readouterr().out  # they are the losses'


def test_tiny_head_case_writes_rows_with_the_heads_columns(tmp_path, capsys):
    # No compiled_unfused or torch_lce_chunked: compiling takes seconds even for a tiny shape. Logits of 4 MB,
    # far above glibc's 128 KiB mmap threshold that the peak-memory children run with.
    rows, hidden, classes = 512, 16, 2000
    shape = f"{rows}x{hidden}x{classes}"
    results = run_tiny(tmp_path, "heads", "cross_entropy", shape, "products,lossext,unfused,torch_lce")
    expected = {"products", "unfused", "torch_lce", "copy"} | ({"lossext"} if lossext.backend() == "extension"
                                                                 else set())
    assert {row["implementation"] for row in results} == expected
    by_name = {row["implementation"]: row for row in results}
    for row in results:
        assert_complete_row(row, "heads", "cross_entropy", shape)
        if row["implementation"] == "copy":
            assert row["time_vs_products"] == row["peak_extra_bytes"] == row["grad_error_vs_float64"] == ""
            continue
        assert float(row["time_vs_products"]) == pytest.approx(
            float(row["ms_median"]) / float(by_name["products"]["ms_median"]), rel=1e-3)
        assert float(row["speedup_vs_unfused"]) == pytest.approx(
            float(by_name["unfused"]["ms_median"]) / float(row["ms_median"]), rel=1e-3)
        int(row["peak_extra_bytes"])  # measured for every implementation
        if row["implementation"] == "products":
            assert row["grad_error_vs_float64"] == ""  # its "gradients" are products of the logits, not of a loss
        else:
            assert float(row["grad_error_vs_float64"]) < 1e-5  # fp32 gradients against float64
    logits_bytes = rows * classes * 4
    # The products' step holds the logits and nothing else beyond the gradients it returns (the resident-size
    # counters are exact to some 64 pages a thread); the unfused head holds at least its logits.
    assert int(by_name["products"]["peak_extra_bytes"]) == pytest.approx(logits_bytes, rel=0.15)
    assert int(by_name["unfused"]["peak_extra_bytes"]) >= logits_bytes
    table = report.format_table(results)
    assert "t/products" in table and "peak MB" in table and "grad err" in table and "% copy" not in table
    assert "Targets" not in capsys.readouterr().out  # they are the losses'


def test_user_step_drops_the_gradient_before_backward():
    x = torch.randn(3, 4, requires_grad=True)
    x.grad = torch.full_like(x, 100.0)  # would be accumulated into if the step did not drop it
    user_step(lambda: (2 * x).sum(), [x])()
    torch.testing.assert_close(x.grad, torch.full_like(x, 2.0))


def test_environments_set_one_allocator_and_clear_the_others(monkeypatch):
    monkeypatch.setattr(environment, "find_tcmalloc", lambda: "/usr/lib/libtcmalloc_minimal.so.4")
    user = {"PATH": "/bin", "LD_PRELOAD": "/opt/libother.so:/old/libtcmalloc.so.4", "THP_MEM_ALLOC_ENABLE": "1"}
    assert environment.environment_for("tcmalloc", user) == {
        "PATH": "/bin", "LD_PRELOAD": "/usr/lib/libtcmalloc_minimal.so.4 /opt/libother.so", **environment.TCMALLOC_TUNED}
    assert environment.environment_for("glibc-tuned", user) == {
        "PATH": "/bin", "LD_PRELOAD": "/opt/libother.so", **environment.GLIBC_TUNED}
    assert environment.environment_for("default", user) == {"PATH": "/bin", "LD_PRELOAD": "/opt/libother.so"}
    assert environment.steady_allocator("auto") == "tcmalloc"


def test_steady_state_without_tcmalloc_falls_back_to_tuned_glibc_and_says_so(monkeypatch, capsys):
    monkeypatch.setattr(environment, "find_tcmalloc", lambda: None)
    assert environment.steady_allocator("auto") == "glibc-tuned"
    assert environment.TCMALLOC_PACKAGE in capsys.readouterr().err
    with pytest.raises(SystemExit, match=environment.TCMALLOC_PACKAGE):
        environment.environment_for("tcmalloc", {})


def test_results_go_to_an_ignored_folder_unless_asked():
    assert run.parse_args([]).results_dir == run.DEFAULT_RESULTS_DIR
    ignored = subprocess.run(["git", "-C", str(run.REPO_ROOT), "check-ignore", "-q",
                                  str(run.DEFAULT_RESULTS_DIR / "x.csv")])
    assert ignored.returncode == 0
