"""The 2-D toy sets of Janocha & Czarnecki (2017), Sec. 3: checkerboard, 4-class spiral, random labels.

Each generator returns (x, y): x float32 of shape (n, 2) in [-1, 1]^2, y int64 class indices in {0..3}.
"""

import math

import torch

CLASSES = 4
CHECKERBOARD_CELLS_PER_SIDE = 8  # [-1, 1]^2 cut into 8 x 8 = 64 squares


def checkerboard_cell(x: torch.Tensor) -> torch.Tensor:
    """(row, column) of the 8 x 8 grid cell of each point, as an (n, 2) int64 tensor."""
    cell = ((x + 1) / 2 * CHECKERBOARD_CELLS_PER_SIDE).floor().long()
    return cell.clamp(0, CHECKERBOARD_CELLS_PER_SIDE - 1)


def checkerboard_label(x: torch.Tensor) -> torch.Tensor:
    """Cyclic class assignment of the 64 squares: the square (row, column) has class (row + column) mod 4,
    so every row and every column of squares runs through the classes 0, 1, 2, 3, 0, ... in turn."""
    cell = checkerboard_cell(x)
    return (cell[:, 0] + cell[:, 1]) % CLASSES


def checkerboard(n: int, generator: torch.Generator) -> tuple:
    """n points uniform on [-1, 1]^2, labelled by their square of the 8 x 8 checkerboard."""
    x = torch.rand(n, 2, generator=generator) * 2 - 1
    return x, checkerboard_label(x)


def spiral(n: int, generator: torch.Generator, turns: float = 1.5, noise: float = 0.02) -> tuple:
    """The 4-class generalisation of the two-spirals set: n // 4 points per class (the remainder to the
    first classes) on arm k, r = t, angle = 2 pi turns t + k pi / 2 for t uniform in (0, 1], plus noise."""
    counts = [n // CLASSES + (1 if k < n % CLASSES else 0) for k in range(CLASSES)]
    y = torch.cat([torch.full((count,), k, dtype=torch.int64) for k, count in enumerate(counts)])
    t = torch.rand(n, generator=generator) * 0.95 + 0.05
    angle = 2 * math.pi * turns * t + y.float() * math.pi / 2
    x = torch.stack([t * angle.cos(), t * angle.sin()], dim=1)
    x = x + noise * torch.randn(n, 2, generator=generator)
    return x.clamp(-1, 1), y


def random_labels(n: int, generator: torch.Generator) -> tuple:
    """n points uniform on [-1, 1]^2 with labels drawn uniformly from the 4 classes: nothing to learn
    but memorisation (the paper's overfitting check)."""
    x = torch.rand(n, 2, generator=generator) * 2 - 1
    return x, torch.randint(0, CLASSES, (n,), generator=generator)


GENERATORS = {"checkerboard": checkerboard, "spiral": spiral, "random labels": random_labels}


def toy_split(name: str, n_train: int, n_test: int, seed: int) -> tuple:
    """(x_train, y_train, x_test, y_test) of toy set `name`, drawn from one seeded generator."""
    generator = torch.Generator().manual_seed(seed)
    x, y = GENERATORS[name](n_train + n_test, generator)
    order = torch.randperm(n_train + n_test, generator=generator)
    x, y = x[order], y[order]
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]
