"""Benchmarks of lossext against PyTorch and its own reference: python bench/run.py --help."""
