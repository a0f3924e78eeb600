"""Shared pieces of the paper-reproduction scripts in examples/ (janocha_losses.py, two_scale.py)."""
