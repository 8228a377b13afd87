#!/usr/bin/env bash
# `make demo`: migrate, demo users and synthetic demo data, then a worker and the web server.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export DEBUG="${DEBUG:-1}"
HOST="${DEMO_HOST:-127.0.0.1}"; PORT="${DEMO_PORT:-8000}"
mkdir -p var
$PY manage.py migrate --noinput -v0
$PY -m celery -A config worker -Q default,gpu --pool=solo -n demo@%h --without-mingle --without-gossip \
  -l warning > var/worker.log 2>&1 &
WORKER=$!
trap 'kill $WORKER 2>/dev/null || true' EXIT INT TERM
$PY manage.py demo_setup
echo
echo "Worker log: var/worker.log"
echo "Open http://$HOST:$PORT and log in with one of the users above. Ctrl-C stops the demo."
$PY manage.py runserver "$HOST:$PORT" --noreload
