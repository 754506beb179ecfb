"""Reproducible benchmarks; each prints its results and the command that reproduces them."""
