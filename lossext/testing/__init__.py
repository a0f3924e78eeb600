"""Op-info tables: what the tests and the benchmark know about each op, one entry per op.

`loss_info.LOSSES` describes the row losses and `activation_info.ACTIVATIONS` the activations:
the public function, its reference, its parameter sets, how to draw inputs for it, and the
flags that select the generic checks (tests/) and the benchmark cases (bench/cases.py).

These modules live in the package, not under tests/, so that bench/ imports them as it imports
lossext; they use torch and lossext only (never pytest).
"""
