"""Benchmarks: each script starts its own servers on 127.0.0.1 and prints ratios (see docs/benchmarks.md)."""
