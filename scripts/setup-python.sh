#!/usr/bin/env bash
# Create .venv with exactly the versions in requirements.lock.
#
# uv (pinned, bootstrapped once into the per-user cache) installs from its own cache by hard
# links: a second setup, another clone or a CI run on the same machine costs seconds and almost
# no disk. The first setup downloads ~3.5 GB (torch's CUDA build is what PyPI serves for Linux)
# and unpacks ~7 GB into the cache; the check below says so instead of failing half-way.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
NEED_GB=9  # first install: unpacked wheels in the uv cache + headroom

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
cache="${XDG_CACHE_HOME:-$HOME/.cache}"
stamp="$venv/.dataops-cv-setup"
want="$(cat requirements.lock pyproject.toml setup.py | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/dataops-cv" ]; then
  exit 0
fi

# uv itself, once per machine and version.
tools="$cache/dataops-cv/tools/uv-$UV_VERSION"
uv="$tools/bin/uv"
if [ ! -x "$uv" ]; then
  rm -rf "$tools"
  "$py" -m venv "$tools"
  "$tools/bin/python" -m pip install -q --disable-pip-version-check --no-cache-dir "uv==$UV_VERSION"
fi
export UV_CACHE_DIR="${UV_CACHE_DIR:-$cache/uv}"
export UV_PYTHON_DOWNLOADS=never
mkdir -p "$UV_CACHE_DIR"

# Say up front when the disk cannot hold a first install (a warm cache needs next to nothing).
if [ ! -f "$UV_CACHE_DIR/.dataops-cv-warm-$want" ]; then
  free_kb="$(df -Pk "$UV_CACHE_DIR" | awk 'NR == 2 {print $4}')"
  if [ "$free_kb" -lt $((NEED_GB * 1024 * 1024)) ]; then
    echo "setup: the first install needs ~${NEED_GB} GB free for $UV_CACHE_DIR;" \
         "only $((free_kb / 1024)) MB are (df -h $UV_CACHE_DIR)" >&2
    exit 1
  fi
fi

[ -x "$venv/bin/python" ] || "$uv" venv -q --seed --python "$py" "$venv"
if ! "$uv" pip sync -q --offline --python "$venv/bin/python" requirements.lock 2>/dev/null; then
  echo "setup: installing requirements.lock (first time on this machine: ~3.5 GB to download)…" >&2
  "$uv" pip sync -q --python "$venv/bin/python" requirements.lock
fi
"$uv" pip install -q --python "$venv/bin/python" --no-deps -e .
"$uv" pip check -q --python "$venv/bin/python"
touch "$UV_CACHE_DIR/.dataops-cv-warm-$want"
echo "$want" > "$stamp"
