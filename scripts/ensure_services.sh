#!/usr/bin/env bash
# Start the local Redis and PostgreSQL the integration tests talk to, if they are not running.
# Tests use their own PostgreSQL databases (biasaudit_test_*) and Redis db indexes 13-15.
set -euo pipefail
REDIS_PORT="${BIASAUDIT_TEST_REDIS_PORT:-6379}"

if ! redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  echo "starting redis on 127.0.0.1:$REDIS_PORT"
  mkdir -p /tmp/biasaudit-redis-$REDIS_PORT
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" \
    --appendonly no --dir /tmp/biasaudit-redis-$REDIS_PORT --logfile /tmp/biasaudit-redis-$REDIS_PORT/redis.log
  for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null

if ! pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
  echo "starting postgresql on 127.0.0.1:5432"
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  else
    echo "PostgreSQL is not running and pg_ctlcluster is not available" >&2
    exit 1
  fi
  for _ in $(seq 1 100); do pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1 && break; sleep 0.1; done
fi
pg_isready -h 127.0.0.1 -p 5432 >/dev/null
echo "services: redis and postgresql are up"
