#!/usr/bin/env bash
# Set up (first time) and run everything CI runs: lint, format check, type check, tests.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/unit -k rtp).
source "$(dirname "$0")/_env.sh"
# real coturn for the TURN tests, Debian's Chromium for the browser tests,
# a real redis-server for the cluster tests, Janus for the fan-out comparison's smoke test
ensure_debian_packages turnserver:coturn chromium:chromium redis-server:redis-server janus:janus
ensure_venv "test"
ensure_node_dev_tools  # axe-core for the browser tests' accessibility checks
cd "$ROOT"
echo "==> ruff check";         "$VENV/bin/ruff" check .
echo "==> ruff format --check"; "$VENV/bin/ruff" format --check .
echo "==> mypy";               "$VENV/bin/mypy"
echo "==> tsc (the web client's JSDoc types)"; "$ROOT/node_modules/.bin/tsc" -p "$ROOT/tsconfig.json"
echo "==> pytest"
exec "$VENV/bin/python" -m pytest "$@"
