#!/usr/bin/env bash
# Create .venv with the exact versions in requirements.lock, through a per-user wheel cache so a
# second setup (or CI run) on the same machine installs offline in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

py="${PYTHON:-}"
if [ -z "$py" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      py="$candidate"; break
    fi
  done
fi
[ -n "$py" ] || { echo "setup: Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2; exit 1; }

venv=.venv
wheels="${XDG_CACHE_HOME:-$HOME/.cache}/dataops-cv/wheels"
stamp="$venv/.dataops-cv-setup"
want="$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/dataops-cv" ]; then
  exit 0
fi

[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
mkdir -p "$wheels"
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
if ! "${pip[@]}" install -q --no-index --find-links "$wheels" -r requirements.lock 2>/dev/null; then
  echo "setup: fetching pinned wheels into $wheels (first time only)…" >&2
  "${pip[@]}" download -q --only-binary=:all: -d "$wheels" -r requirements.lock
  "${pip[@]}" install -q --no-index --find-links "$wheels" -r requirements.lock
fi
"${pip[@]}" install -q --no-deps --no-build-isolation -e .
"${pip[@]}" check
echo "$want" > "$stamp"
