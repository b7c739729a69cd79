#!/usr/bin/env bash
# Print the Bento's Python requirements: the `service` dependency group of pyproject.toml at the versions in
# uv.lock, with everything it pulls in. The committed copy is deploy/service-requirements.txt:
#   deploy/export-requirements.sh > deploy/service-requirements.txt
# after changing the group or the lock (a unit test fails while the copy differs from what this prints).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
echo "# Generated from uv.lock by deploy/export-requirements.sh; do not edit."
exec "${UV:-uv}" export --frozen --only-group service --no-emit-project --no-hashes --no-header --quiet
