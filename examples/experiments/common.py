"""Data, results files, summary tables and the loss-share profile shared by the reproduction scripts."""

import csv
import os
import time
from typing import Callable, Dict, Iterable, List, Sequence

import torch

EXAMPLES = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_RESULTS = os.path.join(EXAMPLES, "results")
DIGITS_LABEL = "sklearn digits 8x8 (MNIST stand-in)"


def set_seed(seed: int) -> None:
    torch.manual_seed(seed)


def load_digits_split(seed: int, train_fraction: float = 0.7) -> tuple:
    """scikit-learn's bundled 8x8 digits (1797 images, no download), the MNIST stand-in: pixels scaled
    from 0..16 to [0, 1] as MNIST's are, a seeded shuffle, then (x_train, y_train, x_test, y_test)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.int64)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    x, y = x[order], y[order]
    split = int(train_fraction * len(y))
    return x[:split], y[:split], x[split:], y[split:]


def mlp(inputs: int, hidden: int, depth: int, classes: int, dropout: float = 0.0, bias: bool = True
        ) -> torch.nn.Sequential:
    """`depth` hidden layers of `hidden` ReLU units (each followed by dropout when > 0), then a linear output."""
    layers: List[torch.nn.Module] = []
    width = inputs
    for _ in range(depth):
        layers += [torch.nn.Linear(width, hidden, bias=bias), torch.nn.ReLU()]
        if dropout > 0:
            layers.append(torch.nn.Dropout(dropout))
        width = hidden
    layers.append(torch.nn.Linear(width, classes, bias=bias))
    return torch.nn.Sequential(*layers)


def batches(n: int, batch_size: int, generator: torch.Generator) -> Iterable[torch.Tensor]:
    """Endless minibatch indices: a fresh seeded permutation per epoch, the last short batch dropped."""
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start:start + batch_size]


def write_csv(path: str, rows: Sequence[Dict], header_comment: str) -> None:
    """rows as CSV under a '# ...' line saying what was measured and on which data."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as handle:
        handle.write(f"# {header_comment}\n")
        writer = csv.DictWriter(handle, fieldnames=list(rows[0].keys()))
        writer.writeheader()
        writer.writerows(rows)


def format_table(rows: Sequence[Dict], columns: Sequence[str]) -> str:
    """A plain-text table of `columns` of `rows`; floats with 3 decimals."""
    def cell(value):
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    cells = [[cell(row[column]) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    lines = ["  ".join(column.ljust(width) for column, width in zip(columns, widths)),
             "  ".join("-" * width for width in widths)]
    lines += ["  ".join(value.ljust(width) for value, width in zip(line, widths)) for line in cells]
    return "\n".join(lines)


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_share_of_step(step: Callable[[], torch.Tensor], loss_of_logits: Callable[[torch.Tensor], torch.Tensor],
                       logits_shape: Sequence[int], steps: int = 20) -> Dict[str, float]:
    """Wall time of one whole training step (`step`: forward, loss, backward, optimiser) and of the loss's
    forward + backward alone on logits of the same shape, median over `steps` runs each; and their ratio."""
    def median_seconds(function):
        function()  # warm-up
        times = []
        for _ in range(steps):
            started = time.perf_counter()
            function()
            times.append(time.perf_counter() - started)
        return sorted(times)[len(times) // 2]

    logits = torch.randn(*logits_shape, requires_grad=True)

    def loss_alone():
        loss_of_logits(logits).backward()

    step_s, loss_s = median_seconds(step), median_seconds(loss_alone)
    return {"step_ms": 1e3 * step_s, "loss_ms": 1e3 * loss_s, "loss_fraction": loss_s / step_s}


class StackedMLP(torch.nn.Module):
    """`copies` independent copies of one nn.Sequential MLP (Linear / ReLU / Dropout), evaluated together
    with batched matrix products: output (copies, batch, classes), copy k's logits at [k]. Trained with a
    sum of per-copy losses and an elementwise optimiser (Adam, SGD), each copy follows exactly the path it
    would alone (gradients do not mix across copies), at the Python cost of one network instead of many."""

    def __init__(self, network: torch.nn.Sequential, copies: int):
        super().__init__()
        self.copies = copies
        self.weights = torch.nn.ParameterList()
        self.biases = torch.nn.ParameterList()
        self.plan = []  # per layer of `network`: ("linear", index), ("relu",) or ("dropout", p)
        for layer in network:
            if isinstance(layer, torch.nn.Linear):
                self.plan.append(("linear", len(self.weights)))
                self.weights.append(torch.nn.Parameter(layer.weight.detach().t().repeat(copies, 1, 1)))
                self.biases.append(torch.nn.Parameter(layer.bias.detach().repeat(copies, 1, 1)))
            elif isinstance(layer, torch.nn.ReLU):
                self.plan.append(("relu",))
            elif isinstance(layer, torch.nn.Dropout):
                self.plan.append(("dropout", layer.p))
            else:
                raise TypeError(f"StackedMLP: cannot stack a {type(layer).__name__}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.expand(self.copies, *x.shape)
        for step in self.plan:
            if step[0] == "linear":
                h = torch.baddbmm(self.biases[step[1]], h, self.weights[step[1]])
            elif step[0] == "relu":
                h = torch.relu(h)
            else:
                h = torch.nn.functional.dropout(h, step[1], self.training)
        return h


def read_csv(path: str) -> List[Dict]:
    """Rows written by write_csv, numbers back as int / float."""
    def number(text):
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
        return text

    with open(path, newline="") as handle:
        lines = [line for line in handle if not line.startswith("# ")]
    return [{key: number(value) for key, value in row.items()} for row in csv.DictReader(lines)]


def suptitle(figure, text: str) -> None:
    """A figure title wrapped to the figure's width (about 16 characters per inch at size 9)."""
    import textwrap

    figure.suptitle(textwrap.fill(text, int(16 * figure.get_figwidth())), fontsize=9)
