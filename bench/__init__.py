"""Benchmarks: `make bench` runs them and writes results under bench/results/."""
