#!/usr/bin/env bash
# Runs a command with throwaway, real Postgres and Redis servers on loopback.
#
# Installs the Debian packages `postgresql`, `redis-server`, `prometheus` (for promtool) and
# `prometheus-alertmanager` (for amtool) when missing, starts each in
# a fresh temp dir on a free port, exports DATABASE_URL / REDIS_URL (and the TEST_* copies
# tests use to start their own workers), runs "$@", and tears everything down on any exit.
# Postgres refuses to run as root, so when we are root it runs as the `postgres` user.
set -euo pipefail

log() { printf '[with-services] %s\n' "$*" >&2; }

need_pkgs=()
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ] || need_pkgs+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need_pkgs+=(redis-server)
# promtool checks the Prometheus config and alert rules in deploy/ (deploy-surface test).
command -v promtool >/dev/null 2>&1 || need_pkgs+=(prometheus)
# amtool checks the Alertmanager config in deploy/ and the chart's (deploy-surface test).
command -v amtool >/dev/null 2>&1 || need_pkgs+=(prometheus-alertmanager)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

work=$(mktemp -d /tmp/pharos-services.XXXXXX)
chmod 755 "$work"
pg_port=$(free_port)
redis_port=$(free_port)
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  as_pg=(runuser -u postgres --)
  chown postgres "$work"
fi

cleanup() {
  status=$?
  set +e
  [ -f "$work/redis.pid" ] && kill "$(cat "$work/redis.pid")" 2>/dev/null
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1
  rm -rf "$work"
  exit $status
}
trap cleanup EXIT INT TERM

log "postgres on 127.0.0.1:$pg_port"
"${as_pg[@]}" "$pg_bin/initdb" -D "$work/pg" -U pharos --auth=trust -E UTF8 >/dev/null
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w \
  -o "-h 127.0.0.1 -p $pg_port -k $work -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" start >/dev/null
"$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U pharos pharos

log "redis on 127.0.0.1:$redis_port"
redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
  --daemonize yes --pidfile "$work/redis.pid" --dir "$work" --logfile "$work/redis.log"
for _ in $(seq 1 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

export TEST_DATABASE_URL="postgres://pharos@127.0.0.1:$pg_port/pharos"
export TEST_REDIS_URL="redis://127.0.0.1:$redis_port"
# Superuser connection details, so tests can create one database per test file.
export TEST_PG_ADMIN_URL="$TEST_DATABASE_URL"
export TEST_PG_BIN="$pg_bin"
export TEST_SERVICES_DIR="$work"

"$@"
