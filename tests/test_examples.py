"""The examples run end to end (briefly)."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_two_scale_example_runs(tmp_path):
    plot = tmp_path / "curves.png"
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "examples", "two_scale.py"), "--epochs", "2", "--data", "synthetic",
         "--plot", str(plot)],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", "")))
    assert result.returncode == 0, result.stderr
    for name in ("cross-entropy", "two-scale (adaptive)", "learned r1"):
        assert name in result.stdout
    assert plot.stat().st_size > 10_000  # a real PNG, not an empty file
