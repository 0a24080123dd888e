"""Clinic chatbot: answers patients only from the clinic's own articles."""

import os

# numpy's OpenBLAS runs every matrix product on a thread per core that spins while it waits; next to the embedding
# model's own threads that doubled /chat latency on 2 cores (p50 42 -> 21 ms at concurrency 1, int8). The service's
# products are small (a message against a few thousand examples): one thread is faster. Set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
