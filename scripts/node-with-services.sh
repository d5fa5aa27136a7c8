#!/bin/sh
# Runs `node "$@"` against throwaway Postgres and Redis (scripts/with-services.sh), or
# against the ones already given in TEST_PG_ADMIN_URL (as `npm run bench` does).
#
# The bench npm scripts call this rather than an inline `if … fi`: npm appends the
# arguments after `--` to the script's text, and after `fi` they are a shell syntax error
# (`npm run bench:ingest -- --quick` failed with "Syntax error: word unexpected"). Here
# they arrive as "$@" and go to node untouched.
set -eu
if [ -z "${TEST_PG_ADMIN_URL:-}" ]; then
  exec "$(dirname "$0")/with-services.sh" node "$@"
fi
exec node "$@"
