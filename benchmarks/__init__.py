"""Benchmark scripts (not part of the test run); each prints one JSON object."""
