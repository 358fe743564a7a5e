#!/usr/bin/env bash
# Make sure PostgreSQL (127.0.0.1:5432, database "test") and Redis (127.0.0.1:6379) answer;
# start or install them when they do not. Idempotent: quick when both already run.
set -u

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }

if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! command -v redis-server >/dev/null 2>&1; then
  if ! pg_up || ! redis_up; then
    echo "installing PostgreSQL and Redis from Debian packages"
    as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      postgresql redis-server >/dev/null
  fi
fi

if ! pg_up; then
  echo "starting PostgreSQL"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  for _ in $(seq 30); do pg_up && break; sleep 1; done
fi
if ! psql -h 127.0.0.1 -U postgres -d test -Atc 'select 1' >/dev/null 2>&1; then
  # Fresh clusters use peer auth for local sockets; open TCP on loopback for the test user.
  as_root su postgres -c "psql -Atc \"ALTER USER postgres PASSWORD NULL\"" >/dev/null 2>&1 || true
  hba=$(ls /etc/postgresql/*/main/pg_hba.conf 2>/dev/null | head -1)
  if [ -n "$hba" ] && ! grep -q "127.0.0.1/32 *trust" "$hba"; then
    as_root sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
    as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main reload || true
  fi
  as_root su postgres -c "createdb test" >/dev/null 2>&1 || true
fi
pg_up && echo "PostgreSQL: ready" || { echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }

if ! redis_up; then
  echo "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 20); do redis_up && break; sleep 0.5; done
fi
redis_up && echo "Redis: ready" || { echo "Redis is not reachable on 127.0.0.1:6379" >&2; exit 1; }
