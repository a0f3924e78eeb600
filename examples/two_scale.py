"""Berlyand, Creese & Jabin (2021), "A novel multi-scale loss function for classification problems in
machine learning", Sec. 3 rerun with lossext's kernels: the adaptive two-scale loss against cross-entropy.

The paper's protocol where the data allow: SGD with lr 0.1 and batch 128; eta in {0.01, 0.05, 0.1, 0.5};
r1 = R and r2 = 10 R with R the size (eq. 9, lossext.parameter_norm) of the initial network; the network's
current size passed to the loss at every step (eq. 13-14); probabilities at the scale r1 at test time;
every model of one seed from the same initial network and batch order; results averaged over seeds.
Data: scikit-learn's 8x8 digits (1797 images, shipped with scikit-learn), the stand-in for MNIST (no data
set can be downloaded here), 70/30 train/test split. Network: the paper's MNIST one, two fully connected
layers (64 -> 128 -> 10, ReLU), without biases so that the output is exactly R times the normalised
network's (eq. 9-10). Baseline: cross-entropy on the network's output (the paper's single scale R).

Figures (analogues of the paper's): Fig. 1 training/test accuracy over training; Fig. 2 close-enough
accuracy acc_at; Fig. 3 top-k; Fig. 4-6 histograms of the max probability, the correct-class probability
and delta p of misclassified test objects, eta = 0.01 against cross-entropy (lossext.metrics throughout).

Full mode (default): 30 seeds x 1000 SGD iterations, the paper's MNIST protocol (1000 iterations are
about 100 epochs of the digits' 1257 training images). --quick: 5 seeds x 300 iterations.

    python examples/two_scale.py --quick
"""

import argparse
import copy
import os
import sys
import time

import torch
from tqdm import tqdm

import lossext
from lossext import metrics

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from experiments import common  # noqa: E402

ETAS = (0.01, 0.05, 0.1, 0.5)
CROSS_ENTROPY = "cross-entropy"
HIDDEN = 128
AT_GRID = [round(0.005 * k, 3) for k in range(11)]  # acc_at for 0 <= at <= 0.05 (Fig. 2)
TOP_K = range(1, 6)
HISTOGRAM_ETA = 0.01  # Fig. 4-6 compare this eta with cross-entropy


def model_name(eta) -> str:
    return CROSS_ENTROPY if eta is None else f"two-scale eta={eta:g}"


class Run:
    """One (loss, seed) training run: SGD on the network and, for two-scale, the loss's own scales."""

    def __init__(self, network: torch.nn.Module, eta, initial_size: float, mode: str, lr: float):
        self.network = network
        self.criterion = None if eta is None else lossext.nn.TwoScaleCrossEntropyLoss(
            eta=eta, r1=initial_size, r2=10 * initial_size, mode=mode)
        parameters = list(network.parameters()) + ([] if eta is None else list(self.criterion.parameters()))
        self.optimiser = torch.optim.SGD(parameters, lr=lr)

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.criterion is None:
            return lossext.cross_entropy(logits, target)
        return self.criterion(logits, target, norm=lossext.parameter_norm(self.network))

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        loss = self.loss(self.network(x), y)
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        self.optimiser.step()

    @torch.no_grad()
    def final_scales(self) -> dict:
        """The network's size R and the two scales now (for "separation": R and R_s R)."""
        size = lossext.parameter_norm(self.network).item()
        if self.criterion.mode == "separation":
            return {"final_R": size, "final_r1": size, "final_r2": self.criterion.separation.item() * size}
        return {"final_R": size, "final_r1": self.criterion.r1.item(), "final_r2": self.criterion.r2.item()}

    @torch.no_grad()
    def scores(self, x: torch.Tensor) -> tuple:
        """(logits, probabilities): softmax(X) for cross-entropy, softmax((r1 / R) X) for two-scale."""
        logits = self.network(x)
        if self.criterion is None:
            return logits, logits.softmax(dim=1)
        return logits, self.criterion.predict_proba(logits, norm=lossext.parameter_norm(self.network))


def train_seed(seed, etas, data, args, progress):
    """Every model of one seed; returns (curve rows, final metric rows, test probability rows, scale rows)."""
    x_train, y_train, x_test, y_test = data
    common.set_seed(seed)
    initial = common.mlp(x_train.shape[1], HIDDEN, 1, 10, bias=False)
    initial_size = lossext.parameter_norm(initial).item()
    curves, finals, probabilities, scales = [], [], [], []
    for eta in etas:
        name = model_name(eta)
        run = Run(copy.deepcopy(initial), eta, initial_size, args.mode, args.lr)
        order = common.batches(len(y_train), args.batch_size, torch.Generator().manual_seed(seed))
        for iteration in range(1, args.iterations + 1):
            batch = next(order)
            run.step(x_train[batch], y_train[batch])
            if iteration % args.eval_every == 0 or iteration == args.iterations:
                row = {"model": name, "seed": seed, "iteration": iteration}
                for split, (x, y) in {"train": (x_train, y_train), "test": (x_test, y_test)}.items():
                    row[f"{split}_accuracy"] = metrics.accuracy(run.scores(x)[0], y).item()
                curves.append(row)
                progress.update(args.eval_every if iteration % args.eval_every == 0
                                else iteration % args.eval_every)
        for split, (x, y) in {"train": (x_train, y_train), "test": (x_test, y_test)}.items():
            logits, probs = run.scores(x)
            row = {"model": name, "seed": seed, "split": split, "accuracy": metrics.accuracy(logits, y).item()}
            row.update({f"top_{k}": metrics.top_k_accuracy(logits, y, k).item() for k in TOP_K})
            row.update({f"acc_at_{at:g}": metrics.close_enough_accuracy(probs, y, at).item() for at in AT_GRID})
            finals.append(row)
        _, probs = run.scores(x_test)
        correct = probs.gather(1, y_test[:, None])[:, 0]
        probabilities += [{"model": name, "seed": seed, "max_probability": m, "correct_probability": c,
                           "delta_p": c - m} for m, c in zip(probs.amax(dim=1).tolist(), correct.tolist())]
        if run.criterion is not None:
            scales.append(dict(model=name, seed=seed, initial_R=initial_size, **run.final_scales()))
    return curves, finals, probabilities, scales


def mean_and_std(values):
    values = torch.tensor(values, dtype=torch.float64)
    return values.mean().item(), (values.std().item() if len(values) > 1 else 0.0)


def by_model(rows, names, key, **where):
    return {name: [row[key] for row in rows if row["model"] == name
                   and all(row[k] == v for k, v in where.items())] for name in names}


def plot_accuracy(curves, names, path, what):
    """Fig. 1: accuracy over training on the training set (left) and the test set (right), seed mean."""
    plt = common.pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    iterations = sorted({row["iteration"] for row in curves})
    for axis, split in zip(axes, ["train", "test"]):
        for name in names:
            means = [mean_and_std(by_model(curves, [name], f"{split}_accuracy", iteration=i)[name])[0]
                     for i in iterations]
            axis.plot(iterations, means, label=name, linewidth=2 if name == CROSS_ENTROPY else 1.2,
                      color="black" if name == CROSS_ENTROPY else None)
        axis.set_title(f"{split} accuracy (Fig. 1 analogue)")
        axis.set_xlabel("SGD iteration")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy, mean over seeds")
    axes[1].legend(fontsize=8)
    common.suptitle(figure, what)
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.5 / figure.get_figheight()))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_final_metric(finals, names, keys, xs, x_label, title, path, what):
    """Fig. 2 / 3: an end-of-training metric against its parameter, train (left) and test (right)."""
    plt = common.pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for axis, split in zip(axes, ["train", "test"]):
        for name in names:
            means = [mean_and_std(by_model(finals, [name], key, split=split)[name])[0] for key in keys]
            axis.plot(xs, means, marker=".", label=name, linewidth=2 if name == CROSS_ENTROPY else 1.2,
                      color="black" if name == CROSS_ENTROPY else None)
        axis.set_title(f"{title}, {split} set")
        axis.set_xlabel(x_label)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("mean over seeds")
    axes[1].legend(fontsize=8)
    common.suptitle(figure, what)
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.5 / figure.get_figheight()))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_histograms(probabilities, key, title, path, what, bins):
    """Fig. 4-6: histogram of `key` over the test set pooled over seeds, two-scale (left) vs cross-entropy."""
    plt = common.pyplot()
    names = [model_name(HISTOGRAM_ETA), CROSS_ENTROPY]
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for axis, name in zip(axes, names):
        values = [row[key] for row in probabilities if row["model"] == name and (key != "delta_p" or row[key] < 0)]
        axis.hist(values, bins=bins, color="tab:blue" if name != CROSS_ENTROPY else "tab:gray")
        axis.set_title(f"{name}: {title} ({len(values)} objects)", fontsize=9)
        axis.set_xlabel(key.replace("_", " "))
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("test objects, all seeds")
    common.suptitle(figure, what)
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.5 / figure.get_figheight()))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def profile(etas, data, args):
    """Share of an SGD step spent in the loss's forward + backward (parameter_norm included for two-scale)."""
    x, y = data[0][:args.batch_size], data[1][:args.batch_size]
    rows = []
    for eta in etas[:2]:
        common.set_seed(0)
        network = common.mlp(x.shape[1], HIDDEN, 1, 10, bias=False)
        run = Run(network, eta, lossext.parameter_norm(network).item(), args.mode, args.lr)
        share = common.loss_share_of_step(lambda: run.step(x, y), lambda logits: run.loss(logits, y),
                                          (len(y), 10))
        rows.append(dict(model=model_name(eta), **share))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 seeds x 300 iterations (a few minutes)")
    parser.add_argument("--seeds", type=int, default=None, help="default 30 (quick: 5)")
    parser.add_argument("--iterations", type=int, default=None, help="default 1000 (quick: 300)")
    parser.add_argument("--etas", default=",".join(f"{eta:g}" for eta in ETAS))
    parser.add_argument("--mode", choices=lossext.nn.TwoScaleCrossEntropyLoss.MODES, default="adaptive")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--eval-every", type=int, default=None, help="default: iterations / 40")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--plot-only", action="store_true",
                        help="redraw the figures and the table from the CSV files already in --results")
    parser.add_argument("--results", default=os.path.join(common.DEFAULT_RESULTS, "two_scale"))
    args = parser.parse_args(argv)
    args.seeds = args.seeds or (5 if args.quick else 30)
    args.iterations = args.iterations or (300 if args.quick else 1000)
    args.eval_every = args.eval_every or max(1, args.iterations // 40)
    torch.set_num_threads(args.threads)
    etas = [None] + [float(eta) for eta in args.etas.split(",") if eta]
    if HISTOGRAM_ETA not in etas:
        parser.error(f"--etas must include {HISTOGRAM_ETA:g}, the eta of the histograms (Fig. 4-6)")
    names = [model_name(eta) for eta in etas]
    data = common.load_digits_split(seed=0)
    what = (f"{common.DIGITS_LABEL}, {len(data[1])} train / {len(data[3])} test; 64-128-10 ReLU net; "
            f"SGD lr {args.lr:g}, batch {args.batch_size}, {args.iterations} iterations; {args.mode} two-scale, "
            f"r1 = R0, r2 = 10 R0; mean of {args.seeds} seeds")
    os.makedirs(args.results, exist_ok=True)
    print(f"lossext backend: {lossext.backend()}; {what}; results: {args.results}")

    def path(name):
        return os.path.join(args.results, name)

    files = {"curves": ("curves.csv", "accuracy over training, per seed"),
             "finals": ("final_metrics.csv", "end of training: accuracy, top-k, acc_at"),
             "probabilities": ("test_probabilities.csv", "test objects at the end of training: max and "
                                                         "correct-class probability"),
             "scales": ("scales.csv", "two-scale losses' R (eq. 9) and scales r1, r2")}
    if args.plot_only:
        rows = {key: common.read_csv(path(name)) for key, (name, _) in files.items()}
        elapsed = None
    else:
        started = time.perf_counter()
        rows = {key: [] for key in files}
        with tqdm(total=args.seeds * len(etas) * args.iterations, desc="two-scale vs cross-entropy", unit="it",
                  mininterval=2, file=sys.stdout) as progress:
            for seed in range(args.seeds):
                for key, new in zip(files, train_seed(seed, etas, data, args, progress)):
                    rows[key] += new
        elapsed = time.perf_counter() - started
        for key, (name, comment) in files.items():
            common.write_csv(path(name), rows[key], f"{comment}; {what}")
    curves, finals, probabilities, scales = (rows[key] for key in files)
    plot_accuracy(curves, names, path("fig1_accuracy.png"), what)
    plot_final_metric(finals, names, [f"acc_at_{at:g}" for at in AT_GRID], AT_GRID, "at",
                      "close-enough accuracy acc_at (Fig. 2)", path("fig2_close_enough.png"), what)
    plot_final_metric(finals, names, [f"top_{k}" for k in TOP_K], list(TOP_K), "k", "top-k accuracy (Fig. 3)",
                      path("fig3_top_k.png"), what)
    plot_histograms(probabilities, "max_probability", "max probability (Fig. 4)", path("fig4_max_probability.png"),
                    what, bins=[i / 40 for i in range(41)])
    plot_histograms(probabilities, "correct_probability", "correct-class probability (Fig. 5)",
                    path("fig5_correct_probability.png"), what, bins=[i / 40 for i in range(41)])
    plot_histograms(probabilities, "delta_p", "delta p of misclassified objects (Fig. 6)",
                    path("fig6_misclassification_gap.png"), what, bins=[-1 + i / 40 for i in range(41)])

    summary = []
    for name in names:
        row = {"model": name}
        for split in ("train", "test"):
            for key, label in (("accuracy", "acc"), ("acc_at_0.05", "acc_at .05"), ("top_3", "top-3")):
                mean, std = mean_and_std(by_model(finals, [name], key, split=split)[name])
                row[f"{split} {label}"] = f"{mean:.3f}±{std:.3f}"
        ratios = [s["final_r2"] / s["final_r1"] for s in scales if s["model"] == name]
        row["r2/r1 end"] = f"{mean_and_std(ratios)[0]:.2f}" if ratios else "-"
        summary.append(row)
    common.write_csv(path("summary.csv"), summary, "mean ± std over seeds at the end of training; " + what)
    shares = profile(etas, data, args)
    common.write_csv(path("loss_share_of_step.csv"), shares, "wall time of one SGD step and of the loss's forward "
                                                             "+ backward alone (median of 20, CPU)")
    print(f"\n== End of training, mean ± std over {args.seeds} seeds ({what})")
    print(common.format_table(summary, list(summary[0])))
    print("\n== Share of a training step spent in the loss (forward + backward)")
    print(common.format_table(shares, list(shares[0])))
    if elapsed is not None:
        print(f"\ntraining {elapsed:.0f} s", end="; ")
    print(f"CSV and PNG files in {args.results}")


if __name__ == "__main__":
    main()
