"""Benchmarks and the real-server launcher they share with the integration tests."""
