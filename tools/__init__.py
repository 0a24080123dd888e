"""Benchmarks, evaluation and reference scripts: run beside the service, never shipped in it."""

import bot  # noqa: F401  (first: the service's thread limits apply before numpy loads, as in the server)
