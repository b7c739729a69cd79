#!/usr/bin/env bash
# Set everything up and run the main job on embedded defaults (SQLite, local files under ./.mlops).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"
exec mlops demo "$@"
