# The bot: slim Python, CPU torch, non-root, model baked in at build time, health-checked.
FROM python:3.11-slim

# The CPU wheels of torch; with them `torch==2.13.0` resolves to the CPU build, as on the dev machines.
ENV PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    DATA_DIR=/data \
    KNOWLEDGE_DIR=/app/knowledge

RUN apt-get update && apt-get install -y --no-install-recommends make && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt requirements.lock Makefile ./
# The same install the README's `make run` does (PY=python: the image's only interpreter).
RUN make install PY=python
COPY bot ./bot
COPY knowledge ./knowledge
COPY ingest.py pyproject.toml ./
# Bake the model in: load it once now, so a container never looks for weights at run time.
RUN .venv/bin/python -c "from bot.config import Settings; from bot.embeddings import make_embedder; make_embedder(Settings()).embed(['ok'])"

RUN useradd --create-home --uid 10001 bot && mkdir -p /data && chown bot:bot /data
USER bot
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD .venv/bin/python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status == 200 else 1)"
CMD [".venv/bin/python", "-m", "bot", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
