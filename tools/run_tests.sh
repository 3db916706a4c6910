#!/usr/bin/env bash
# README command 2: set up (idempotent), then run the test suite. Extra arguments go to pytest.
set -eo pipefail
source "$(dirname "$0")/setup_env.sh"
cd "$(dirname "$0")/.."
"$CENTERNET_PY" -m pytest tests "$@"
