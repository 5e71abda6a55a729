"""Measuring endpoints: readiness, the smoke check after a (re)start, and benchmarks."""
