#!/usr/bin/env bash
# Set everything up and run the whole loop on the local stack (servers on 127.0.0.1, state under ./.mlops).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"
exec mlops loop "$@"
