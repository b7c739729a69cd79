#!/usr/bin/env bash
# Set everything up and run the whole test suite (slow end-to-end tests included).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"
exec pytest "$@"
