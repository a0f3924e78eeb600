"""Janocha & Czarnecki (2017), "On loss functions for deep neural networks in classification",
Sec. 3 rerun with lossext's kernels: the twelve losses of Table 1 on the paper's toy sets and on a
MNIST stand-in.

Parts (--parts, default all):
  toy     checkerboard (4 classes, [-1, 1]^2 cut into 64 squares, cyclic classes), 4-class spiral and
          uniform points with random labels; 800 train / 800 test points; rectifier nets of 0..5 hidden
          layers of 200 units; Adam, batch 50. Learning curves (Fig. 2 top) and decision boundaries
          (Fig. 2 bottom: L1, log, L1 o sigma, hinge^2).
  digits  scikit-learn's 8x8 digits (1797 images, shipped with scikit-learn; the MNIST stand-in: no data
          set can be downloaded here); nets of 0..5 hidden layers of 512 ReLU units, dropout 0.5; Adam,
          batch 100. Learning curves and speed of learning (Fig. 3), training accuracy under input noise
          N(0, eps I) (Fig. 4 top).
  labels  digits with a fraction eps of the training labels changed to another class: test accuracy
          over training (Fig. 4 middle/bottom).

Settings: the default is the paper's (60,000 toy / 100,000 digits iterations at lr 3e-5); --quick runs
the same code on fewer depths and iterations. With fewer iterations than the paper the learning rate is
scaled to keep lr x iterations at the paper's value (capped at 3e-3) unless --lr is given.
Results (CSV + PNG, and a summary table printed at the end) go to --results (examples/results/janocha).

    python examples/janocha_losses.py --quick
    python examples/janocha_losses.py --parts toy --toy-iterations 6000 --toy-depths 0,1,3,5
"""

import argparse
import os
import sys
import time

import torch
from tqdm import tqdm

import lossext
from lossext import metrics

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from experiments import common, toy_data  # noqa: E402

# Table 1, in the paper's order: name -> (family, loss of (logits, class-index target)).
LOSSES = {
    "L1": ("regression", lossext.l1),
    "L2": ("regression", lossext.l2),
    "L1∘σ (expectation)": ("expectation", lossext.expectation),
    "L2∘σ (reg. expectation)": ("expectation", lossext.regularized_expectation),
    "L∞∘σ (Chebyshev)": ("expectation", lossext.chebyshev),
    "hinge": ("margin", lambda o, t: lossext.hinge(o, t, p=1)),
    "hinge²": ("margin", lambda o, t: lossext.hinge(o, t, p=2)),
    "hinge³": ("margin", lambda o, t: lossext.hinge(o, t, p=3)),
    "log": ("log", lossext.cross_entropy),
    "log²": ("log", lossext.squared_log),
    "Tanimoto": ("other", lossext.tanimoto),
    "Cauchy-Schwarz": ("other", lossext.cauchy_schwarz),
}
FAMILY_STYLE = {"regression": ":", "expectation": "--", "margin": "-", "log": "-.", "other": (0, (5, 1, 1, 1))}
BOUNDARY_LOSSES = ["L1", "log", "L1∘σ (expectation)", "hinge²"]  # Fig. 2 bottom row

PAPER = {"lr": 3e-5, "toy_iterations": 60_000, "toy_batch": 50, "toy_hidden": 200,
         "digits_iterations": 100_000, "digits_batch": 100, "digits_hidden": 512, "dropout": 0.5}
QUICK = {"toy_iterations": 120, "toy_depths": "1,5", "digits_iterations": 200, "digits_depths": "0,1",
         "label_iterations": 200, "label_depths": "1", "label_noise": "0.3"}
FULL = {"toy_iterations": PAPER["toy_iterations"], "toy_depths": "0,1,2,3,4,5",
        "digits_iterations": PAPER["digits_iterations"], "digits_depths": "0,1,2,3,4,5",
        "label_iterations": PAPER["digits_iterations"], "label_depths": "0,1,3,5", "label_noise": "0.1,0.2,0.3,0.5"}
INPUT_NOISE = [0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]  # variances eps of N(0, eps I), pixels in [0, 1]
EVALUATIONS = 20  # points on each learning curve


def learning_rate(args, iterations: int, paper_iterations: int) -> float:
    """--lr, or the paper's 3e-5 scaled so that lr x iterations stays the paper's (at most 3e-3)."""
    if args.lr is not None:
        return args.lr
    return min(3e-3, PAPER["lr"] * paper_iterations / iterations)


def train(network, loss_fns, data, iterations, batch_size, lr, seed, progress):
    """Adam on a StackedMLP whose copy k is trained on loss_fns[k] (the copies share the batches); returns
    each copy's learning curve [(iteration, train accuracy, test accuracy)] at EVALUATIONS evenly spaced
    iterations (accuracies in eval mode, on the whole sets)."""
    x_train, y_train, x_test, y_test = data
    optimiser = torch.optim.Adam(network.parameters(), lr=lr)
    order = common.batches(len(y_train), batch_size, torch.Generator().manual_seed(seed))
    checkpoints = {round(iterations * (k + 1) / EVALUATIONS) for k in range(EVALUATIONS)}
    curves = [[] for _ in loss_fns]
    for iteration in range(1, iterations + 1):
        batch = next(order)
        network.train()
        logits, target = network(x_train[batch]), y_train[batch]
        loss = sum(loss_fn(logits[k], target) for k, loss_fn in enumerate(loss_fns))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if iteration in checkpoints:
            network.eval()
            with torch.no_grad():
                train_logits, test_logits = network(x_train), network(x_test)
            for k, curve in enumerate(curves):
                curve.append((iteration, metrics.accuracy(train_logits[k], y_train).item(),
                              metrics.accuracy(test_logits[k], y_test).item()))
            progress.update(len(loss_fns) * (iterations // EVALUATIONS))
    return curves


def curve_rows(setting: dict, loss: str, curve) -> list:
    return [dict(setting, loss=loss, family=LOSSES[loss][0], iteration=i, train_accuracy=tr, test_accuracy=te)
            for i, tr, te in curve]


def speed(curve, column: int) -> float:
    """The paper's speed of learning (Fig. 3): expected accuracy at an iteration drawn uniformly from the
    last 90% of training, here the mean over the curve's evaluations after the first 10%."""
    values = [point[column] for point in curve if point[0] > curve[-1][0] / 10]
    return sum(values) / len(values)


def run_grid(args, sets, depths, hidden, dropout, iterations, paper_iterations, batch_size, losses, description,
             keep=()):
    """Every (set, depth, loss), the losses of one (set, depth) from the same initial network and batch
    order. Returns (curve rows, summary rows, {(set, depth, loss): trained network} for `keep` losses)."""
    lr = learning_rate(args, iterations, paper_iterations)
    rows, summary, kept = [], [], {}
    total = len(sets) * len(depths) * len(losses) * (iterations // EVALUATIONS) * EVALUATIONS
    with tqdm(total=total, desc=f"{description} (lr {lr:g})", unit="it", mininterval=2, file=sys.stdout) as bar:
        for set_name, data in sets.items():
            classes = int(torch.cat([data[1], data[3]]).max()) + 1
            for depth in depths:
                common.set_seed(args.seed)
                network = common.StackedMLP(common.mlp(data[0].shape[1], hidden, depth, classes, dropout),
                                            len(losses))
                curves = train(network, [LOSSES[loss][1] for loss in losses], data, iterations, batch_size, lr,
                               args.seed, bar)
                network.eval()
                for k, (loss, curve) in enumerate(zip(losses, curves)):
                    setting = {"data": set_name, "depth": depth}
                    rows += curve_rows(setting, loss, curve)
                    summary.append(dict(setting, loss=loss, final_train=curve[-1][1], final_test=curve[-1][2],
                                        speed_train=speed(curve, 1), speed_test=speed(curve, 2)))
                    if loss in keep:
                        kept[(set_name, depth, loss)] = CopyOf(network, k)
    return rows, summary, kept, lr


class CopyOf:
    """Copy k of a trained StackedMLP: logits(x) of shape (batch, classes). The stacked network runs once
    per distinct input (the last output is cached), however many of its copies are asked."""

    def __init__(self, network: common.StackedMLP, k: int):
        self.network, self.k = network, k

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        cache = getattr(self.network, "last_output", None)
        if cache is None or cache[0] is not x:
            self.network.last_output = (x, self.network(x))
        return self.network.last_output[1][self.k]


def plot_curves(rows, panels, column, title, path, panel_key="depth", x_key="iteration"):
    """One panel per (row value, panel value) of `panels` = (row key, row values, panel values)."""
    plt = common.pyplot()
    row_key, row_values, panel_values = panels
    figure, axes = plt.subplots(len(row_values), len(panel_values), squeeze=False, sharey=True,
                                figsize=(3.2 * len(panel_values) + 2.5, 2.8 * len(row_values)))
    cmap = plt.get_cmap("tab20")
    for r, row_value in enumerate(row_values):
        for c, panel_value in enumerate(panel_values):
            axis = axes[r][c]
            for k, loss in enumerate(LOSSES):
                points = [row for row in rows if row[row_key] == row_value and row[panel_key] == panel_value
                          and row["loss"] == loss]
                if points:
                    axis.plot([p[x_key] for p in points], [p[column] for p in points], color=cmap(k),
                              linestyle=FAMILY_STYLE[LOSSES[loss][0]], label=loss)
            axis.set_title(f"{row_value}, {panel_key} {panel_value}", fontsize=9)
            axis.grid(alpha=0.3)
            axis.set_xlabel(x_key)
        axes[r][0].set_ylabel(column.replace("_", " "))
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="center right", fontsize=8)
    common.suptitle(figure, title)
    figure.tight_layout(rect=(0, 0, 1 - 2.3 / figure.get_figwidth(), 1 - 0.5 / figure.get_figheight()))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_boundaries(kept, sets, path):
    """Fig. 2 bottom: predicted class over [-1, 1]^2 for the kept networks, training points on top."""
    plt = common.pyplot()
    keys = sorted(kept, key=lambda key: (key[0], BOUNDARY_LOSSES.index(key[2])))
    set_names = sorted({key[0] for key in keys})
    figure, axes = plt.subplots(len(set_names), len(BOUNDARY_LOSSES), squeeze=False,
                                figsize=(3 * len(BOUNDARY_LOSSES), 3 * len(set_names)))
    grid = torch.linspace(-1, 1, 200)
    xx, yy = torch.meshgrid(grid, grid, indexing="xy")
    points = torch.stack([xx.flatten(), yy.flatten()], dim=1)
    for set_name, depth, loss in keys:  # sorted by set: one stacked evaluation per set
        axis = axes[set_names.index(set_name)][BOUNDARY_LOSSES.index(loss)]
        predicted = kept[(set_name, depth, loss)].logits(points).argmax(dim=1).reshape(xx.shape)
        axis.imshow(predicted, origin="lower", extent=(-1, 1, -1, 1), cmap="tab10", vmin=0, vmax=9, alpha=0.45)
        x, y = sets[set_name][0], sets[set_name][1]
        axis.scatter(x[:, 0], x[:, 1], c=y, cmap="tab10", vmin=0, vmax=9, s=3)
        axis.set_title(f"{loss}, {set_name}, depth {depth}", fontsize=8)
        axis.set_xticks([])
        axis.set_yticks([])
    common.suptitle(figure, "Decision boundaries (predicted class) after training; dots: training points")
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.4 / figure.get_figheight()))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def input_noise_rows(kept, data, seed):
    """Fig. 4 top: training accuracy of each trained digits network on x + N(0, eps I), same noise draw
    for every network."""
    x_train, y_train = data[0], data[1]
    unit_noise = torch.randn(x_train.shape, generator=torch.Generator().manual_seed(seed + 1))
    noisy = {eps: x_train + eps ** 0.5 * unit_noise for eps in INPUT_NOISE}
    rows = []
    for eps in INPUT_NOISE:
        for (set_name, depth, loss), network in kept.items():
            accuracy = metrics.accuracy(network.logits(noisy[eps]), y_train).item()
            rows.append({"data": set_name, "depth": depth, "loss": loss, "family": LOSSES[loss][0],
                         "input_noise_variance": eps, "train_accuracy": accuracy})
    return rows


def changed_labels(y: torch.Tensor, fraction: float, classes: int, seed: int) -> torch.Tensor:
    """y with round(fraction * n) labels, chosen at random, each moved to a different random class."""
    generator = torch.Generator().manual_seed(seed + 2)
    chosen = torch.randperm(len(y), generator=generator)[:round(fraction * len(y))]
    shift = torch.randint(1, classes, (len(chosen),), generator=generator)
    noisy = y.clone()
    noisy[chosen] = (y[chosen] + shift) % classes
    return noisy


def profile_rows(losses, settings):
    """Share of a training step taken by the loss (its forward + backward), per loss and setting."""
    rows = []
    for setting, (inputs, hidden, depth, classes, dropout, batch_size) in settings.items():
        common.set_seed(0)
        network = common.mlp(inputs, hidden, depth, classes, dropout)
        optimiser = torch.optim.Adam(network.parameters(), lr=1e-4)
        x, y = torch.rand(batch_size, inputs), torch.randint(0, classes, (batch_size,))
        for loss in losses:
            loss_fn = LOSSES[loss][1]

            def step():
                value = loss_fn(network(x), y)
                optimiser.zero_grad(set_to_none=True)
                value.backward()
                optimiser.step()

            share = common.loss_share_of_step(step, lambda logits: loss_fn(logits, y), (batch_size, classes))
            rows.append(dict(setting=setting, loss=loss, **share))
    return rows


def parse_list(text, kind=int):
    return [kind(value) for value in text.split(",") if value]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer depths and iterations (a few minutes)")
    parser.add_argument("--parts", default="toy,digits,labels")
    parser.add_argument("--losses", default=",".join(LOSSES), help="comma-separated names of LOSSES")
    parser.add_argument("--toy-sets", default=",".join(toy_data.GENERATORS))
    for key in ("toy_iterations", "toy_depths", "digits_iterations", "digits_depths", "label_iterations",
                "label_depths", "label_noise"):
        parser.add_argument("--" + key.replace("_", "-"), default=None)
    parser.add_argument("--lr", type=float, default=None, help="default: the paper's 3e-5 scaled, see above")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--results", default=os.path.join(common.DEFAULT_RESULTS, "janocha"))
    args = parser.parse_args(argv)
    mode = QUICK if args.quick else FULL
    for key, value in mode.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for key in ("toy_iterations", "digits_iterations", "label_iterations"):
        setattr(args, key, int(getattr(args, key)))
    torch.set_num_threads(args.threads)
    losses = [name for name in args.losses.split(",") if name]
    unknown = set(losses) - set(LOSSES)
    if unknown:
        parser.error(f"unknown losses {sorted(unknown)}; choose from {list(LOSSES)}")
    parts = set(parse_list(args.parts, str))
    os.makedirs(args.results, exist_ok=True)
    print(f"lossext backend: {lossext.backend()}; losses: {', '.join(losses)}; results: {args.results}")
    started = time.perf_counter()
    tables = []

    def save(name, rows, comment):
        common.write_csv(os.path.join(args.results, name), rows, comment)

    if "toy" in parts:
        sets = {name: toy_data.toy_split(name, 800, 800, args.seed) for name in parse_list(args.toy_sets, str)}
        depths = parse_list(args.toy_depths)
        rows, summary, kept, lr = run_grid(args, sets, depths, PAPER["toy_hidden"], 0.0, args.toy_iterations,
                                           PAPER["toy_iterations"], PAPER["toy_batch"], losses, "toy sets",
                                           keep=[loss for loss in BOUNDARY_LOSSES if loss in losses])
        what = (f"toy sets (800 train / 800 test points), {PAPER['toy_hidden']}-unit ReLU nets, Adam lr {lr:g}, "
                f"batch {PAPER['toy_batch']}, {args.toy_iterations} iterations, seed {args.seed}")
        save("toy_curves.csv", rows, "accuracy over training; " + what)
        save("toy_summary.csv", summary, "final and mean-over-last-90% accuracy; " + what)
        plot_curves(rows, ("data", list(sets), depths), "train_accuracy", "Training accuracy, " + what,
                    os.path.join(args.results, "toy_learning_curves.png"))
        deepest = {key: network for key, network in kept.items() if key[1] == max(depths)}
        if deepest:
            plot_boundaries(deepest, sets, os.path.join(args.results, "toy_decision_boundaries.png"))
        tables.append(("Toy sets: final training accuracy (" + what + ")",
                       pivot(summary, "final_train", [(s, d) for s in sets for d in depths], losses)))

    digits = common.load_digits_split(args.seed) if parts & {"digits", "labels"} else None
    classes = 10
    if "digits" in parts:
        depths = parse_list(args.digits_depths)
        rows, summary, kept, lr = run_grid(args, {common.DIGITS_LABEL: digits}, depths, PAPER["digits_hidden"],
                                           PAPER["dropout"], args.digits_iterations, PAPER["digits_iterations"],
                                           PAPER["digits_batch"],
                                           losses, "digits", keep=losses)
        what = (f"{common.DIGITS_LABEL}, {len(digits[1])} train / {len(digits[3])} test, 512-unit ReLU nets "
                f"with dropout 0.5, Adam lr {lr:g}, batch {PAPER['digits_batch']}, {args.digits_iterations} "
                f"iterations, seed {args.seed}")
        save("digits_curves.csv", rows, "accuracy over training; " + what)
        save("digits_summary.csv", summary, "final accuracy and speed of learning (mean accuracy over the "
                                            "last 90% of training); " + what)
        for column in ("train_accuracy", "test_accuracy"):
            plot_curves(rows, ("data", [common.DIGITS_LABEL], depths), column,
                        f"{column.replace('_', ' ')}, " + what,
                        os.path.join(args.results, f"digits_learning_curves_{column.split('_')[0]}.png"))
        speed_rows = [dict(row, data="speed of learning (train)", iteration=row["depth"], train_accuracy=row["speed_train"])
                      for row in summary] + [dict(row, data="speed of learning (test)", iteration=row["depth"],
                                                  train_accuracy=row["speed_test"]) for row in summary]
        plot_by_x(speed_rows, ["speed of learning (train)", "speed of learning (test)"], "depth", "train_accuracy",
                  "Expected accuracy at an iteration drawn from the last 90% of training (Fig. 3 bottom), " + what,
                  os.path.join(args.results, "digits_learning_speed.png"), y_label="expected accuracy")
        noise = input_noise_rows(kept, digits, args.seed)
        save("digits_input_noise.csv", noise, "training accuracy with N(0, eps I) added to the inputs; " + what)
        noise_plot = [dict(row, data=f"depth {row['depth']}", iteration=row["input_noise_variance"]) for row in noise]
        plot_by_x(noise_plot, [f"depth {d}" for d in depths], "input_noise_variance", "train_accuracy",
                  "Training accuracy under input noise N(0, eps I) (Fig. 4 top), " + what,
                  os.path.join(args.results, "digits_input_noise.png"), log_x=True)
        tables.append(("Digits: final test accuracy / speed of learning (train) (" + what + ")",
                       pivot(summary, "final_test", [(common.DIGITS_LABEL, d) for d in depths], losses,
                             second="speed_train")))
        noisiest = max(INPUT_NOISE)
        tables.append((f"Digits: training accuracy at input noise variance {0.1} and {noisiest}",
                       noise_table(noise, depths, losses, [0.1, noisiest])))

    if "labels" in parts:
        depths = parse_list(args.label_depths)
        fractions = parse_list(args.label_noise, float)
        noisy_sets = {f"{fraction:g} of labels changed": (digits[0], changed_labels(digits[1], fraction, classes,
                                                                                   args.seed), digits[2], digits[3])
                      for fraction in fractions}
        rows, summary, _, lr = run_grid(args, noisy_sets, depths, PAPER["digits_hidden"], PAPER["dropout"],
                                        args.label_iterations, PAPER["digits_iterations"], PAPER["digits_batch"], losses,
                                        "label noise")
        what = (f"{common.DIGITS_LABEL}, training labels partly changed, clean test labels; 512-unit ReLU nets, "
                f"dropout 0.5, Adam lr {lr:g}, {args.label_iterations} iterations, seed {args.seed}")
        save("label_noise_curves.csv", rows, "accuracy over training (train accuracy against the changed "
                                             "labels); " + what)
        save("label_noise_summary.csv", summary, "final accuracies; " + what)
        plot_curves(rows, ("data", list(noisy_sets), depths), "test_accuracy",
                    "Test accuracy with a fraction of training labels changed (Fig. 4 middle/bottom), " + what,
                    os.path.join(args.results, "label_noise_curves.png"))
        tables.append(("Label noise: final test accuracy (" + what + ")",
                       pivot(summary, "final_test", [(s, d) for s in noisy_sets for d in depths], losses)))

    profile = profile_rows(losses, {"toy, depth 5, batch 50": (2, 200, 5, 4, 0.0, 50),
                                    "digits, depth 2, batch 100": (64, 512, 2, 10, 0.5, 100)})
    save("loss_share_of_step.csv", profile, "wall time of one Adam training step and of the loss's forward + "
                                            "backward alone (median of 20, CPU, lossext kernels)")
    tables.append(("Share of a training step spent in the loss (forward + backward)",
                   common.format_table(profile, ["setting", "loss", "step_ms", "loss_ms", "loss_fraction"])))
    print()
    for title, table in tables:
        print(f"== {title}\n{table}\n")
    print(f"total {time.perf_counter() - started:.0f} s; CSV and PNG files in {args.results}")


def pivot(summary, value, columns, losses, second=None):
    """Rows: losses; columns: (data, depth); cells: `value` (and `second` after a slash)."""
    rows = []
    for loss in losses:
        row = {"loss": loss}
        for set_name, depth in columns:
            match = [s for s in summary if s["loss"] == loss and s["data"] == set_name and s["depth"] == depth][0]
            cell = f"{match[value]:.3f}" + (f" / {match[second]:.3f}" if second else "")
            row[f"{set_name[:14]} d{depth}"] = cell
        rows.append(row)
    return common.format_table(rows, list(rows[0]))


def noise_table(noise, depths, losses, variances):
    rows = []
    for loss in losses:
        row = {"loss": loss}
        for depth in depths:
            for eps in variances:
                row[f"d{depth} eps {eps:g}"] = [r["train_accuracy"] for r in noise if r["loss"] == loss
                                                and r["depth"] == depth and r["input_noise_variance"] == eps][0]
        rows.append(row)
    return common.format_table(rows, list(rows[0]))


def plot_by_x(rows, panel_values, x_label, column, title, path, log_x=False, y_label="training accuracy"):
    """One panel per value of rows' "data"; x from rows' "iteration"; a line per loss."""
    plt = common.pyplot()
    figure, axes = plt.subplots(1, len(panel_values), squeeze=False, sharey=True,
                                figsize=(3.4 * len(panel_values) + 2.5, 3.2))
    cmap = plt.get_cmap("tab20")
    for c, panel in enumerate(panel_values):
        axis = axes[0][c]
        for k, loss in enumerate(LOSSES):
            points = sorted((row["iteration"], row[column]) for row in rows if row["data"] == panel
                            and row["loss"] == loss)
            if points:
                xs = [max(x, 1e-3) for x, _ in points] if log_x else [x for x, _ in points]
                axis.plot(xs, [y for _, y in points], marker=".", color=cmap(k),
                          linestyle=FAMILY_STYLE[LOSSES[loss][0]], label=loss)
        if log_x:
            axis.set_xscale("log")
        axis.set_title(panel, fontsize=9)
        axis.set_xlabel(x_label + (" (0 drawn at 1e-3)" if log_x else ""))
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel(y_label)
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="center right", fontsize=8)
    common.suptitle(figure, title)
    figure.tight_layout(rect=(0, 0, 1 - 2.3 / figure.get_figwidth(), 1 - 0.6 / figure.get_figheight()))
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    main()
