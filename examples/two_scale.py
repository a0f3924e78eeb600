"""Train one small network with cross-entropy and with the adaptive two-scale loss, and compare.

Berlyand, Creese & Jabin (2021): the two-scale loss (eq. 13) gives rows whose margin
X_t - max_{j != t} X_j is below eta the scale r1 and the others r2, both trained with the
network (eq. 14). As in the paper, eta = 0.01, r1 = R0 and r2 = 10 R0, with R0 the size of the
initial network (eq. 9).

Data needs no download: scikit-learn's bundled 8x8 digits when scikit-learn is installed,
otherwise (or with --data synthetic) a synthetic 10-class problem of overlapping Gaussian
clusters. Prints train/test accuracy, top-k and acc_at for both losses and saves the learning
curves to two_scale_curves.png (or --plot PATH).

    python examples/two_scale.py [--epochs 30] [--data digits|synthetic] [--seed 0]
"""

import argparse
import copy
import time

import torch

import lossext
from lossext import metrics


def load_data(kind: str, seed: int):
    """(x_train, y_train, x_test, y_test) as float32 / int64 tensors, features standardised."""
    generator = torch.Generator().manual_seed(seed)
    if kind == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = torch.tensor(digits.data, dtype=torch.float32)
        y = torch.tensor(digits.target, dtype=torch.int64)
    else:
        classes, dims, per_class = 10, 32, 300
        centres = torch.randn(classes, dims, generator=generator) * 1.2
        y = torch.arange(classes).repeat_interleave(per_class)
        x = centres[y] + torch.randn(len(y), dims, generator=generator) * 1.5
    order = torch.randperm(len(y), generator=generator)
    x, y = x[order], y[order]
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    split = int(0.7 * len(y))
    return x[:split], y[:split], x[split:], y[split:]


def make_network(inputs: int, classes: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(inputs, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
                               torch.nn.ReLU(), torch.nn.Linear(64, classes))


def evaluate(network, x, y, predict_proba):
    with torch.no_grad():
        logits = network(x)
        probs = predict_proba(logits)
    return {
        "accuracy": metrics.accuracy(logits, y).item(),
        "top-3": metrics.top_k_accuracy(logits, y, 3).item(),
        "acc_at 0.05": metrics.close_enough_accuracy(probs, y, 0.05).item(),
    }


def train(name, network, criterion, data, epochs, batch_size, seed):
    x_train, y_train, x_test, y_test = data
    parameters = list(network.parameters()) + list(criterion.parameters())
    optimiser = torch.optim.SGD(parameters, lr=0.1)
    generator = torch.Generator().manual_seed(seed)
    two_scale = isinstance(criterion, lossext.nn.TwoScaleCrossEntropyLoss)
    curves = {"train": [], "test": []}
    for _ in range(epochs):
        order = torch.randperm(len(y_train), generator=generator)
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            logits = network(x_train[batch])
            if two_scale:
                loss = criterion(logits, y_train[batch], norm=lossext.parameter_norm(network))
            else:
                loss = criterion(logits, y_train[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            curves["train"].append(metrics.accuracy(network(x_train), y_train).item())
            curves["test"].append(metrics.accuracy(network(x_test), y_test).item())

    if two_scale:
        def predict_proba(logits):
            return criterion.predict_proba(logits, norm=lossext.parameter_norm(network))
    else:
        def predict_proba(logits):
            return logits.softmax(dim=1)
    results = {split: evaluate(network, x, y, predict_proba)
               for split, (x, y) in {"train": (x_train, y_train), "test": (x_test, y_test)}.items()}
    return curves, results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--data", choices=["digits", "synthetic"], default=None,
                        help="default: digits if scikit-learn is installed, else synthetic")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default="two_scale_curves.png")
    args = parser.parse_args()
    if args.data is None:
        try:
            import sklearn  # noqa: F401

            args.data = "digits"
        except ImportError:
            args.data = "synthetic"

    data = load_data(args.data, args.seed)
    classes = int(data[1].max()) + 1
    initial = make_network(data[0].shape[1], classes, args.seed)
    initial_size = lossext.parameter_norm(initial).item()
    print(f"data: {args.data}, {len(data[1])} train / {len(data[3])} test rows, {classes} classes; "
          f"R0 = {initial_size:.3f}; lossext backend: {lossext.backend()}")

    runs = {
        "cross-entropy": lossext.nn.CrossEntropyLoss(),
        "two-scale (adaptive)": lossext.nn.TwoScaleCrossEntropyLoss(eta=0.01, r1=initial_size,
                                                                    r2=10 * initial_size, mode="adaptive"),
    }
    all_curves = {}
    for name, criterion in runs.items():
        started = time.perf_counter()
        curves, results = train(name, copy.deepcopy(initial), criterion, data, args.epochs, args.batch_size,
                                args.seed)
        all_curves[name] = curves
        print(f"\n{name}  ({time.perf_counter() - started:.1f} s)")
        for split, values in results.items():
            print(f"  {split:5s} " + "  ".join(f"{key} {value:.3f}" for key, value in values.items()))
        if isinstance(criterion, lossext.nn.TwoScaleCrossEntropyLoss):
            print(f"  learned r1 = {criterion.r1.item():.3f}, r2 = {criterion.r2.item():.3f}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for axis, split in zip(axes, ["train", "test"]):
        for name, curves in all_curves.items():
            axis.plot(range(1, args.epochs + 1), curves[split], label=name)
        axis.set_title(f"{split} accuracy ({args.data})")
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy")
    axes[0].legend()
    figure.tight_layout()
    figure.savefig(args.plot, dpi=120)
    print(f"\nlearning curves saved to {args.plot}")


if __name__ == "__main__":
    main()
