#!/usr/bin/env bash
# The issue-8 target run: a throwaway Postgres (scripts/with-services.sh), one worker on it
# with its defaults (apart from the settings below), and the swarm generator against it.
#   loadtest/swarm/target.sh [generator options…]     e.g. --connections 10000 --duration 300 --json
# The worker's PHAROS_MAX_CONNECTIONS is --connections + 1000 unless set, and so is its
# PHAROS_MAX_NON_MEMBER_CONNECTIONS (the light connections are unregistered peers), and the open-file
# limit is raised to --connections + 1024 (the hard limit too, where the user may).
# The worker's stdout goes to $SWARM_WORKER_LOG (default: a temp file, named on stderr);
# $SWARM_WORKER_NODE_ARGS are extra node flags for the worker (e.g. --cpu-prof).
# $SWARM_WORKER_CPUS and $SWARM_GENERATOR_CPUS pin the worker and the generator to CPUs
# (taskset lists, e.g. 1 and 0), so the worker's lag is not the generator's CPU contention.
# $SWARM_GENERATOR_SCRIPT runs another driver in the generator's place (default
# loadtest/swarm/cli.ts; e.g. loadtest/swarm/heap-steps.ts), with the same arguments.
set -euo pipefail
if [ -z "${TEST_PG_ADMIN_URL:-}" ]; then exec scripts/with-services.sh "$0" "$@"; fi

node=node_modules/.bin/node
token=loadtest-swarm-token-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
log=${SWARM_WORKER_LOG:-$(mktemp /tmp/pharos-swarm-worker.XXXXXX.log)}
data=$(mktemp -d /tmp/pharos-swarm-data.XXXXXX)
echo "[target] worker log: $log" >&2

# How many connections the generator will open (its --connections, default 100).
connections=100
previous=
for arg in "$@"; do
  case $previous in --connections) connections=$arg ;; esac
  case $arg in --connections=*) connections=${arg#--connections=} ;; esac
  previous=$arg
done
# Every connection is a file descriptor in the worker (and one in a generator process), and
# the worker has about a hundred of its own (listeners, Postgres pool, pipes): raise the soft
# limit to what the run needs, and the hard one too where allowed (CAP_SYS_RESOURCE). The
# accept probe (--probe-size, default 500) opens that many more above the connections held.
fds=$((connections + 1024))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$fds" ]; then
  if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$fds" ]; then ulimit -Hn "$fds" 2>/dev/null || true; fi
  if ! ulimit -n "$fds" 2>/dev/null; then
    ulimit -n "$(ulimit -Hn)"
    echo "[target] WARNING: $connections connections want $fds file descriptors; the hard limit is $(ulimit -Hn): expect EMFILE near the top (lower --connections or --probe-size, or raise the hard limit)" >&2
  fi
fi
echo "[target] file descriptors: $(ulimit -n)" >&2

# Room for the generator's 500-connection accept probe above the connections held.
DATABASE_URL=$TEST_PG_ADMIN_URL PHAROS_DATA_DIR=$data PHAROS_P2P_HOST=127.0.0.1 \
  PHAROS_P2P_TCP_PORT=0 PHAROS_P2P_WS_PORT=0 PHAROS_HTTP_PORT=0 PHAROS_ADMIN_TOKENS=$token \
  PHAROS_MAX_CONNECTIONS=${PHAROS_MAX_CONNECTIONS:-$((connections + 1000))} \
  PHAROS_MAX_NON_MEMBER_CONNECTIONS=${PHAROS_MAX_NON_MEMBER_CONNECTIONS:-$((connections + 1000))} \
  ${SWARM_WORKER_CPUS:+taskset -c "$SWARM_WORKER_CPUS"} "$node" ${SWARM_WORKER_NODE_ARGS:-} services/beacon/src/main.ts > "$log" 2>&1 &
worker=$!
trap 'kill $worker 2>/dev/null || true; wait $worker 2>/dev/null || true; rm -rf "$data"' EXIT

started=
for _ in $(seq 1 300); do
  started=$(grep -m1 '"pharos beacon started"' "$log" || true)
  [ -n "$started" ] && break
  kill -0 $worker 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.2
done
[ -n "$started" ] || { echo "[target] worker did not start" >&2; exit 1; }
bootstrap=$(printf '%s' "$started" | "$node" -e 'const r=JSON.parse(require("fs").readFileSync(0,"utf8")); process.stdout.write(r.multiaddrs.join(","))')
http=$(printf '%s' "$started" | "$node" -e 'const r=JSON.parse(require("fs").readFileSync(0,"utf8")); process.stdout.write(r.adminUrl.replace(/\/v1\/node$/, ""))')

PHAROS_ADMIN_TOKEN=$token SWARM_WORKER_PIDS=$worker ${SWARM_GENERATOR_CPUS:+taskset -c "$SWARM_GENERATOR_CPUS"} "$node" --disable-warning=ExperimentalWarning "${SWARM_GENERATOR_SCRIPT:-loadtest/swarm/cli.ts}" \
  --bootstrap "$bootstrap" --http "$http" "$@"
