"""Benchmarks, evaluation and reference scripts: run beside the service, never shipped in it."""
