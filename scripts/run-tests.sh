#!/usr/bin/env bash
# Run the test suite against real servers (the session fixtures start lakeFS on 127.0.0.1).
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "run-tests: pytest collected no tests — that is a failure, not a pass" >&2
  exit 1
fi
exit "$rc"
