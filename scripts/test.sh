#!/usr/bin/env bash
# Run the test suite, setting up the Python environment first if needed.
#   usage: bash scripts/test.sh [pytest args]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
eval "$(bash "$repo/scripts/setup_env.sh" --print-activate)"
cd "$repo"
exec python -m pytest -q tests "$@"
