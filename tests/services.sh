#!/usr/bin/env bash
# The real services the suite drives, started or installed when missing (called by `make test`):
# PostgreSQL and Redis on loopback, Debian's chromium (never a downloaded browser), docker-compose and
# axe-core (npm).
set -uo pipefail

if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null && command -v pg_ctlcluster >/dev/null 2>&1; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && command -v redis-server >/dev/null 2>&1; then
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/tests.log || true
fi
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} (Debian packages)"
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" \
    || echo "could not install ${missing[*]}: the tests that need them will fail and say so" >&2
fi
# axe-core for the accessibility tests, from npm at the version pinned in tests/.axe/package-lock.json.
axe="$(dirname "$0")/.axe"
if [ ! -f "$axe/node_modules/axe-core/axe.min.js" ]; then
  if command -v npm >/dev/null 2>&1 || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q npm; }; then
    npm ci --prefix "$axe" --no-audit --no-fund --silent \
      || echo "could not install axe-core: the accessibility tests will fail and say so" >&2
  fi
fi
exit 0
