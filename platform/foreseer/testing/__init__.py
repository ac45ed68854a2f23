"""Helpers for testing and benchmarking Foreseer itself (after ``optuna.testing``): not part of
the user API, shipped so that the test suite and ``benchmarks/`` import them the same way."""
