#!/usr/bin/env bash
# Install the locked environment into .venv (uv from PyPI when it is not on PATH). Sourced by the other scripts.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UV_VERSION="0.13.8"

if command -v uv >/dev/null 2>&1; then
  UV="uv"
else
  if [ ! -x "$ROOT/.tools/bin/uv" ]; then
    python3 -m venv "$ROOT/.tools"
    "$ROOT/.tools/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
  fi
  UV="$ROOT/.tools/bin/uv"
fi

# --frozen: exactly the versions in uv.lock, no resolution on a fresh machine.
"$UV" sync --frozen --project "$ROOT" --quiet
# uv stays on the PATH: `bentoml build` installs the Bento's packages with it.
export PATH="$ROOT/.venv/bin:$(dirname "$(command -v "$UV")"):$PATH"
