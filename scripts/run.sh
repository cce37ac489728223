#!/usr/bin/env bash
# Set up (first time) and run digiclinic on 127.0.0.1 with the embedded defaults:
# in-process state, no Redis, no coturn. Extra arguments go to `digiclinic serve`.
source "$(dirname "$0")/_env.sh"
ensure_venv "run"
cd "$ROOT"
exec "$VENV/bin/digiclinic" serve "$@"
