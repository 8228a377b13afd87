#!/usr/bin/env bash
# The one start-up script of every production process: the Dockerfile, docker-compose, the bare-metal
# start in the README and the production smoke tests all call it, so testing it tests the image.
#
#   scripts/serve.sh migrate         apply database migrations, then exit
#   scripts/serve.sh collectstatic   collect static files in production mode (hashed names, manifest,
#                                    gzip/brotli copies) into STATIC_ROOT, then exit
#   scripts/serve.sh web             [migrate] [collectstatic], then gunicorn in the foreground
#   scripts/serve.sh worker          a Celery worker for the CPU queue "default"
#   scripts/serve.sh gpu-worker      a Celery worker for the queue "gpu" (one group of models at a time)
#   scripts/serve.sh dicom-listener  the DICOM listener (C-STORE from nodes on the allow-list; docs/pacs.md)
#
# Environment (besides the application's own settings, README "Configuration"):
#   BIND (0.0.0.0:8000)          gunicorn's address
#   WEB_WORKERS (2 × cores + 1)  gunicorn worker processes; WEB_THREADS (1) threads in each (keep 1: threads
#                                share a worker's interpreter lock; docs/production.md, *Load benchmark*)
#   WEB_TIMEOUT (120)            seconds before gunicorn restarts a silent worker
#   SERVE_MIGRATE (1)            `web` applies migrations first; set 0 where a separate `migrate` runs
#   SERVE_COLLECTSTATIC (1)      `web` collects static files first; the image sets 0 (it collected at build)
#   WORKER_CONCURRENCY (2)       processes of the `default` worker
#   WORKER_NAME (cpu@host / gpu@host)  the worker's node name; keep it stable so a restarted worker resumes
#                                its own jobs
#   PYTHON                       the interpreter (default: .venv/bin/python beside this script, else python)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"
elif [ -x .venv/bin/python ]; then PY=.venv/bin/python
else PY=python
fi

cores() { "$PY" -c 'import os; print(len(os.sched_getaffinity(0)))'; }

migrate() { "$PY" manage.py migrate --noinput; }

# Production storage (manifest + compressed) is chosen by DEBUG=0; secrets are not needed to collect.
collectstatic() { DEBUG=0 "$PY" manage.py collectstatic --noinput -v0; }

web() {
  [ "${SERVE_MIGRATE:-1}" = 1 ] && migrate
  [ "${SERVE_COLLECTSTATIC:-1}" = 1 ] && collectstatic
  local workers="${WEB_WORKERS:-$(( 2 * $(cores) + 1 ))}"
  exec "$PY" -m gunicorn config.wsgi:application \
    --bind "${BIND:-0.0.0.0:8000}" --workers "$workers" --threads "${WEB_THREADS:-1}" \
    --timeout "${WEB_TIMEOUT:-120}" --access-logfile - --error-logfile - --no-control-socket \
    --forwarded-allow-ips "${FORWARDED_ALLOW_IPS:-127.0.0.1}"
}

worker() {
  exec "$PY" -m celery -A config worker -Q default --concurrency "${WORKER_CONCURRENCY:-2}" \
    -n "${WORKER_NAME:-cpu@%h}" -l "${WORKER_LOG_LEVEL:-info}"
}

gpu_worker() {
  exec "$PY" -m celery -A config worker -Q gpu --concurrency 1 --prefetch-multiplier 1 \
    -n "${WORKER_NAME:-gpu@%h}" -l "${WORKER_LOG_LEVEL:-info}"
}

dicom_listener() {
  exec "$PY" manage.py dicom_listener
}

case "${1:-}" in
  migrate) migrate ;;
  collectstatic) collectstatic ;;
  web) web ;;
  worker) worker ;;
  gpu-worker) gpu_worker ;;
  dicom-listener) dicom_listener ;;
  *) echo "usage: scripts/serve.sh migrate|collectstatic|web|worker|gpu-worker|dicom-listener" >&2; exit 2 ;;
esac
