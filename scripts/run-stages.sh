#!/bin/sh
# Runs each argument as a shell command, one after the other, even when an earlier one fails,
# and exits non-zero at the end if any failed, naming them. `npm run test:all` uses it so that
# a failing node test cannot hide the fault scenario's result: both stages always run.
failed=""
for stage in "$@"; do
  echo "=== stage: $stage"
  if ! sh -c "$stage"; then
    failed="$failed
  - $stage"
  fi
done
if [ -n "$failed" ]; then
  echo "=== failed stages:$failed" >&2
  exit 1
fi
echo "=== every stage passed ($#)"
