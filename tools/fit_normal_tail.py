"""Fit the polynomial Q of csrc/cpu/vec/math.h's normal_cdf_and_density and check it.

For z >= 0 and t = 1 / (1 + z/2) (Numerical Recipes' variable for erfc),
    erfc(z) = t Q(t) exp(-z^2),   Q(t) = erfcx(z) / t,
a smooth function of t in (0, 1]. Q is fitted by least squares in the relative
error on 4000 Chebyshev nodes of t in [1/6, 1] (z in [0, 10]; beyond z = 9.3,
exp(-z^2) is below float32's range and the product is 0 whatever Q is),
against torch.special.erfcx in float64. Prints the coefficients of Q / 2
(highest degree first, for Horner; vec/math.h folds Phi's factor 1/2 into them)
and the fit's relative error in exact arithmetic and in float32 Horner with
fused multiply-adds.

    python tools/fit_normal_tail.py [degree]
"""

import sys

import numpy as np
import torch

T_MIN = 1.0 / 6.0


def q_exact(t: np.ndarray) -> np.ndarray:
    z = torch.from_numpy(2.0 / t - 2.0)
    return torch.special.erfcx(z).numpy() / t


def main() -> None:
    degree = int(sys.argv[1]) if len(sys.argv) > 1 else 9
    k = np.arange(4000)
    t = (np.cos(np.pi * (k + 0.5) / len(k)) + 1) / 2 * (1 - T_MIN) + T_MIN
    target = q_exact(t)
    coefficients = np.polyfit(t, target, degree, w=1 / target)

    grid = np.linspace(T_MIN, 1.0, 1_000_001)
    exact = q_exact(grid)
    fitted = np.polyval(coefficients, grid)
    c32 = torch.tensor(coefficients, dtype=torch.float32)
    t32 = torch.tensor(grid, dtype=torch.float32)
    horner = torch.full_like(t32, float(c32[0]))
    for c in c32[1:]:
        horner = torch.addcmul(c.expand_as(t32), horner, t32)  # one rounding per step, as an FMA
    print("coefficients of Q / 2 (highest degree first):")
    for c in coefficients:
        print(f"  {float(np.float32(c) * np.float32(0.5)):.9e}f")
    print(f"relative error, exact arithmetic: {np.abs(fitted / exact - 1).max():.2e}")
    print(f"relative error, float32 Horner:   {np.abs(horner.double().numpy() / exact - 1).max():.2e}")


if __name__ == "__main__":
    main()
