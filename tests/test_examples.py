"""The paper-reproduction scripts in examples/ run end to end (in a form smaller than --quick), and the
toy-set generators match the definitions of Janocha & Czarnecki (2017), Sec. 3."""

import os
import subprocess
import sys

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(REPO, "examples")
sys.path.insert(0, EXAMPLES)
from experiments import toy_data  # noqa: E402

# One loss per family of Janocha's Table 1 (regression, expectation, margin, log, other).
ONE_LOSS_PER_FAMILY = ["L2", "L1∘σ (expectation)", "hinge²", "log", "Cauchy-Schwarz"]


def run_script(name, *arguments):
    result = subprocess.run([sys.executable, os.path.join(EXAMPLES, name), *arguments], capture_output=True,
                            text=True, timeout=600,
                            env=dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", "")))
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def assert_results(folder, csvs, pngs):
    for name in csvs:
        with open(folder / name) as handle:
            lines = handle.read().splitlines()
        assert lines[0].startswith("# ") and len(lines) >= 3, name  # what was measured, a header, data rows
    for name in pngs:
        assert (folder / name).stat().st_size > 10_000, name  # a real figure, not an empty file


def test_checkerboard_assigns_the_64_squares_cyclically():
    centres = (torch.arange(8) + 0.5) / 8 * 2 - 1
    rows, columns = torch.meshgrid(centres, centres, indexing="ij")
    labels = toy_data.checkerboard_label(torch.stack([columns.flatten(), rows.flatten()], 1)).reshape(8, 8)
    # Along each row and each column the classes run 0, 1, 2, 3, 0, ... : the next square is the next class.
    assert torch.equal(labels[:, 1:], (labels[:, :-1] + 1) % 4)
    assert torch.equal(labels[1:, :], (labels[:-1, :] + 1) % 4)
    assert torch.equal(torch.bincount(labels.flatten(), minlength=4), torch.full((4,), 16))


def test_checkerboard_points_carry_their_squares_label():
    x, y = toy_data.checkerboard(800, torch.Generator().manual_seed(0))
    assert x.shape == (800, 2) and x.min() >= -1 and x.max() <= 1
    cell = ((x + 1) * 4).floor().long()
    assert torch.equal(y, (cell[:, 0] + cell[:, 1]) % 4)
    assert torch.bincount(y, minlength=4).min() > 150  # uniform points: about 200 per class


@pytest.mark.parametrize("n", [800, 1600, 803])
def test_spiral_has_four_equal_arms(n):
    x, y = toy_data.spiral(n, torch.Generator().manual_seed(1))
    counts = torch.bincount(y, minlength=4)
    assert counts.sum() == n and counts.max() - counts.min() <= 1
    assert x.shape == (n, 2) and x.abs().max() <= 1


def test_random_labels_are_uniform_over_four_classes():
    x, y = toy_data.random_labels(800, torch.Generator().manual_seed(2))
    assert x.shape == (800, 2) and x.abs().max() <= 1
    counts = torch.bincount(y, minlength=4)
    assert len(counts) == 4 and counts.min() > 150


def test_toy_split_is_800_and_800_and_seeded():
    first = toy_data.toy_split("checkerboard", 800, 800, seed=3)
    again = toy_data.toy_split("checkerboard", 800, 800, seed=3)
    assert [len(part) for part in first] == [800, 800, 800, 800]
    assert all(torch.equal(a, b) for a, b in zip(first, again))


def test_changed_labels_change_exactly_the_fraction():
    import janocha_losses

    y = torch.arange(1000) % 10
    noisy = janocha_losses.changed_labels(y, 0.3, 10, seed=0)
    assert (noisy != y).sum() == 300 and noisy.min() >= 0 and noisy.max() <= 9


def test_janocha_losses_smoke(tmp_path):
    stdout = run_script("janocha_losses.py", "--losses", ",".join(ONE_LOSS_PER_FAMILY), "--toy-iterations", "20",
                        "--toy-depths", "1", "--digits-iterations", "20", "--digits-depths", "1",
                        "--label-iterations", "20", "--label-depths", "1", "--label-noise", "0.3",
                        "--results", str(tmp_path))
    assert_results(tmp_path, ["toy_curves.csv", "toy_summary.csv", "digits_curves.csv", "digits_summary.csv",
                              "digits_input_noise.csv", "label_noise_curves.csv", "loss_share_of_step.csv"],
                   ["toy_learning_curves.png", "toy_decision_boundaries.png", "digits_learning_curves_train.png",
                    "digits_learning_curves_test.png", "digits_learning_speed.png", "digits_input_noise.png",
                    "label_noise_curves.png"])
    for title in ("== Toy sets", "== Digits", "== Label noise", "== Share of a training step"):
        assert title in stdout
    table = stdout[stdout.index("== Toy sets"):]
    for loss in ONE_LOSS_PER_FAMILY:
        assert loss in table


def test_two_scale_smoke(tmp_path):
    stdout = run_script("two_scale.py", "--seeds", "2", "--iterations", "20", "--etas", "0.01,0.5",
                        "--results", str(tmp_path))
    assert_results(tmp_path, ["curves.csv", "final_metrics.csv", "test_probabilities.csv", "scales.csv",
                              "summary.csv", "loss_share_of_step.csv"],
                   ["fig1_accuracy.png", "fig2_close_enough.png", "fig3_top_k.png", "fig4_max_probability.png",
                    "fig5_correct_probability.png", "fig6_misclassification_gap.png"])
    table = stdout[stdout.index("== End of training"):]
    for model in ("cross-entropy", "two-scale eta=0.01", "two-scale eta=0.5"):
        assert model in table


def test_stacked_copies_train_as_separate_networks():
    # janocha_losses trains one copy per loss in a StackedMLP; each copy must follow the path that the
    # same network trained alone on its loss follows (Adam is elementwise, the losses do not mix).
    import copy

    import lossext
    from experiments import common

    torch.manual_seed(0)
    initial = common.mlp(2, 16, 2, 4)
    x, y = torch.randn(32, 2), torch.randint(0, 4, (32,))
    losses = [lossext.cross_entropy, lambda o, t: lossext.hinge(o, t, p=2)]
    stacked = common.StackedMLP(initial, len(losses))
    separate = [copy.deepcopy(initial) for _ in losses]
    optimisers = [torch.optim.Adam(net.parameters(), lr=1e-2) for net in separate]
    stacked_optimiser = torch.optim.Adam(stacked.parameters(), lr=1e-2)
    for _ in range(5):
        logits = stacked(x)
        stacked_optimiser.zero_grad()
        sum(loss(logits[k], y) for k, loss in enumerate(losses)).backward()
        stacked_optimiser.step()
        for net, optimiser, loss in zip(separate, optimisers, losses):
            optimiser.zero_grad()
            loss(net(x), y).backward()
            optimiser.step()
    for k, net in enumerate(separate):
        torch.testing.assert_close(stacked(x)[k], net(x), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(stacked(x)[0], stacked(x)[1])  # the two losses did train differently
