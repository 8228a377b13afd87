#!/usr/bin/env bash
# The test command of the README. Pass 1: the whole suite on SQLite and the embedded broker.
# Pass 2: every database test again on PostgreSQL (and the worker tests over Redis) where they run here, but
# the five end-to-end Keras trainings (slow, not worker): their database paths (claims, locks, results) are
# run on PostgreSQL by the fast tests and the two slow worker tests, so training again only costs minutes;
# where PostgreSQL or Redis is missing, those tests are skipped with a message and the rest still passes.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export DEBUG=1
PG_URL="${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/sarcoma}"

echo "== pass 1: SQLite + embedded broker (+ Redis where running) =="
env -u DATABASE_URL -u CELERY_BROKER_URL $PY -m pytest --durations=25 "$@"
rc1=$?

if $PY - "$PG_URL" <<'PYEOF'
import sys, psycopg2
try:
    psycopg2.connect(sys.argv[1].rsplit("/", 1)[0] + "/postgres", connect_timeout=3).close()
except Exception as exc:
    print(f"PostgreSQL not reachable at {sys.argv[1]}: {exc}".strip()); sys.exit(1)
PYEOF
then
  echo "== pass 2: database tests on PostgreSQL ($PG_URL) =="
  DATABASE_URL="$PG_URL" $PY -m pytest --durations=15 -m "db and not browser and (worker or not slow)" "$@"
  rc2=$?
  [ $rc2 -eq 5 ] && rc2=0  # no test selected is not a failure
else
  echo "== pass 2 SKIPPED: PostgreSQL is not running; the database tests ran on SQLite only =="
  rc2=0
fi
exit $(( rc1 != 0 ? rc1 : rc2 ))
