# Shared by scripts/run.sh and scripts/test.sh: find Python 3.11, make .venv, install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DIGICLINIC_VENV:-$ROOT/.venv}"

die() { echo "error: $*" >&2; exit 1; }

find_python() {
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  die "Python 3.11 is required (found: $(python3 --version 2>&1 || echo none)); install python3.11 and python3.11-venv"
}

ensure_venv() {
  local extras="$1"
  if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating $VENV"
    "$(find_python)" -m venv "$VENV" || die "could not create a virtualenv (is python3.11-venv installed?)"
  fi
  local stamp="$VENV/.installed-$extras"
  if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
    echo "==> installing Python dependencies ($extras)"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip ||
      die "pip could not be upgraded (no access to the package index?)"
    "$VENV/bin/python" -m pip install --quiet -e "$ROOT[$extras]" ||
      die "Python dependencies could not be installed (see pip's message above)"
    touch "$stamp"
  fi
}

# ensure_debian_packages CMD:PACKAGE ... - install a Debian package when its command is missing
ensure_debian_packages() {
  local missing=()
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair##*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "==> installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq || die "apt-get update failed (no access to the Debian mirror?)"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null ||
    die "apt-get could not install: ${missing[*]}"
}

# ensure_node_dev_tools - the web client's development tools from package-lock.json
# (axe-core for the accessibility checks): npm ci into node_modules/ when missing or stale.
ensure_node_dev_tools() {
  ensure_debian_packages node:nodejs npm:npm
  local stamp="$ROOT/node_modules/.package-lock.json"
  if [ ! -f "$stamp" ] || [ "$ROOT/package-lock.json" -nt "$stamp" ]; then
    echo "==> installing the web client's development tools (npm ci)"
    (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error) ||
      die "npm ci failed (no access to the npm registry?)"
  fi
}
