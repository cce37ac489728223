#!/usr/bin/env bash
# Verify the Dockerfile without a Docker engine (none runs on the development
# machines, so `docker build` cannot be used):
#
#   a) static invariants: final stage FROM python:3.11-slim, a non-root USER,
#      HEALTHCHECK, CMD, STOPSIGNAL, EXPOSE 8080/tcp and the UDP port(s) of
#      deploy/config.production.yaml (media.udp_port with udp_mode one_port,
#      else the udp_port_min..udp_port_max range), ...
#   b) replay the build: the build context filtered by .dockerignore, then the
#      builder stage's WORKDIR/ENV/COPY and its RUN commands, unchanged (same
#      pip commands), into a temporary "image root" with a fresh venv of
#      Python 3.11; the final stage's ENV/COPY/WORKDIR on top. Then check that
#      the venv's native code needs no library beyond what python:3.11-slim
#      has, and that the production config loads with the real loader.
#   c) run the image's CMD from that venv as the unprivileged user `nobody`,
#      with the image's environment plus overrides that keep it on 127.0.0.1;
#   d) run the Dockerfile's HEALTHCHECK command against it;
#   e) send the STOPSIGNAL (SIGINT) and require exit status 0 within 10 s, and
#      the same again with SIGTERM (docker's and Kubernetes' default);
#   f) clean up (KEEP_WORK=1 keeps the temporary directory for inspection).
#
# Runs as root on a fresh Debian machine (installs python3.11 and
# python3.11-venv with apt-get when no Python 3.11 usable by `nobody` is
# found). Needs network access to PyPI. Takes a minute or two.
#
#   sudo scripts/check-dockerfile.sh

set -euo pipefail
umask 022

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DOCKERFILE="$ROOT/Dockerfile"
PROD_CONFIG="$ROOT/deploy/config.production.yaml"
START_TIME=$(date +%s)
WORK=""
RESULTS=()
FINISHED=0

note() { printf '    %s\n' "$*"; }
step() { printf '\n==> %s\n' "$*"; }
pass() { RESULTS+=("PASS  $*"); printf '    ok: %s\n' "$*"; }
fail() {
  RESULTS+=("FAIL  $*")
  printf '    FAILED: %s\n' "$*" >&2
  exit 1
}

summary() {
  local rc=$1 elapsed=$(( $(date +%s) - START_TIME ))
  printf '\n==== check-dockerfile summary (%ss) ====\n' "$elapsed"
  local line
  for line in "${RESULTS[@]}"; do printf '  %s\n' "$line"; done
  if [ "$rc" -eq 0 ] && [ "$FINISHED" -eq 1 ]; then
    printf 'PASS: the Dockerfile checks out (%s checks)\n' "${#RESULTS[@]}"
  else
    printf 'FAIL: see the messages above (exit status %s)\n' "$rc"
  fi
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  # a server the helper started and could not stop itself (script interrupted)
  if [ -n "$WORK" ] && [ -f "$WORK/server.pid" ]; then
    local pid
    pid="$(cat "$WORK/server.pid" 2>/dev/null || true)"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    if [ "${KEEP_WORK:-0}" = "1" ]; then
      note "kept $WORK (KEEP_WORK=1)"
    else
      rm -rf -- "$WORK"
    fi
  fi
  [ "$rc" -eq 0 ] && [ "$FINISHED" -ne 1 ] && rc=1
  summary "$rc"
  exit "$rc"
}
trap cleanup EXIT
trap 'printf "\ninterrupted\n" >&2; exit 130' INT TERM HUP

# ---------------------------------------------------------------------------
step "prerequisites"
# ---------------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || fail "run as root (needs to switch to the user nobody)"
[ -f "$DOCKERFILE" ] || fail "no Dockerfile at $DOCKERFILE"
[ -f "$PROD_CONFIG" ] || fail "no production config at $PROD_CONFIG"

apt_install() {
  command -v apt-get >/dev/null 2>&1 || fail "missing $* and no apt-get to install it"
  note "installing Debian packages: $*"
  apt-get update -qq >/dev/null || fail "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null ||
    fail "apt-get could not install: $*"
}

command -v setpriv >/dev/null 2>&1 || apt_install util-linux
command -v ldd >/dev/null 2>&1 || apt_install libc-bin
command -v setpriv >/dev/null 2>&1 || fail "setpriv (util-linux) is required"

if ! id -u nobody >/dev/null 2>&1; then
  note "creating the system user nobody"
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin nobody
fi
RUN_UID="$(id -u nobody)"
RUN_GID="$(id -g nobody)"
as_nobody() { (cd / && setpriv --reuid="$RUN_UID" --regid="$RUN_GID" --clear-groups -- "$@"); }

# A Python 3.11 with venv/ensurepip that `nobody` can execute (a pyenv build
# under /root cannot be: /root is private).
usable_python() {
  [ -x "$1" ] && as_nobody "$1" -c \
    'import sys, venv, ensurepip; sys.exit(sys.version_info[:2] != (3, 11))' >/dev/null 2>&1
}
find_python() {
  local c real
  for c in /usr/bin/python3.11 /usr/local/bin/python3.11 "$(command -v python3.11 || true)"; do
    [ -n "$c" ] || continue
    real="$(readlink -f "$c" 2>/dev/null || true)"
    # a pyenv shim is a shell script: ask it where the interpreter is
    if [ -n "$real" ] && ! head -c 4 "$real" 2>/dev/null | grep -q 'ELF'; then
      real="$("$c" -c 'import sys; print(sys.executable)' 2>/dev/null || true)"
    fi
    if [ -n "$real" ] && usable_python "$real"; then
      printf '%s\n' "$real"
      return 0
    fi
  done
  return 1
}
PY="$(find_python || true)"
if [ -z "$PY" ]; then
  apt_install python3.11 python3.11-venv
  PY="$(find_python || true)"
fi
[ -n "$PY" ] || fail "no Python 3.11 (with venv) that the user nobody can run; install python3.11 python3.11-venv"
pass "Python $("$PY" -c 'import platform; print(platform.python_version())') at $PY, usable by nobody (uid $RUN_UID)"

WORK="$(mktemp -d /tmp/check-dockerfile.XXXXXX)"
chmod 0755 "$WORK"   # nobody must reach the image root below it
HELPER="$WORK/dockerfile_replay.py"
IMAGE_ROOT="$WORK/image-root"
CONTEXT="$WORK/context"
mkdir -p "$IMAGE_ROOT" "$WORK/shim"
# `python` as the base image has it (/usr/local/bin/python): the Python 3.11
# found above. A wrapper, not a symlink, so that a venv made with it records
# the real interpreter's directory as its home.
printf '#!/bin/sh\nexec %s "$@"\n' "$PY" >"$WORK/shim/python"
cp "$WORK/shim/python" "$WORK/shim/python3"
chmod 0755 "$WORK/shim/python" "$WORK/shim/python3"

# ---------------------------------------------------------------------------
# The helper: Dockerfile parsing, .dockerignore filtering, build replay,
# library and config checks, server run. Standard library only.
# ---------------------------------------------------------------------------
cat >"$HELPER" <<'PYTHON'
"""Helper of scripts/check-dockerfile.sh: replays a Dockerfile without Docker."""

from __future__ import annotations

import glob
import json
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time

# Paths the base image provides: used from the host as they are. Every other
# absolute path the Dockerfile names lives in the temporary image root.
SYSTEM_PREFIXES = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
                   "/proc", "/sys", "/dev")
# Environment of the python:3.11-slim base image that matters here.
BASE_ENV = {"PATH": "/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8"}
# Host settings a build step needs to reach the package index as this machine does.
PASSTHROUGH = ("HOME", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
               "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
# Shared libraries an extension module may load from the system: glibc (libc6,
# libmvec included), libcrypt, libgcc/libstdc++ and zlib are in every Debian
# image, python:3.11-slim included.
SYSTEM_LIBS = {"libc.so.6", "libm.so.6", "libmvec.so.1", "libdl.so.2", "librt.so.1",
               "libpthread.so.0", "libanl.so.1", "libutil.so.1", "libresolv.so.2",
               "libcrypt.so.1", "libgcc_s.so.1",
               "libstdc++.so.6", "libz.so.1", "linux-vdso.so.1", "linux-gate.so.1",
               "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1", "ld-linux.so.2"}
COMPILERS = re.compile(r"\b(gcc|g\+\+|cc|clang|build-essential|make|cmake|rustc|cargo|"
                       r"python3?-dev|libc6-dev)\b")


class Failure(Exception):
    pass


def ok(msg: str) -> None:
    print(f"    ok: {msg}", flush=True)


def info(msg: str) -> None:
    print(f"    {msg}", flush=True)


# ----------------------------------------------------------------- parsing

class Instr:
    def __init__(self, lineno: int, keyword: str, rest: str) -> None:
        self.lineno, self.keyword, self.flags = lineno, keyword, {}
        while rest.startswith("--"):
            token, _, rest = rest.partition(" ")
            name, _, value = token[2:].partition("=")
            self.flags[name] = value
            rest = rest.lstrip()
        self.rest = rest

    def exec_or_shell(self, text: str | None = None) -> tuple[list[str], bool]:
        text = (self.rest if text is None else text).strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
                if isinstance(value, list) and all(isinstance(v, str) for v in value):
                    return value, True
            except ValueError:
                pass
        return ["/bin/sh", "-c", text], False

    def __str__(self) -> str:
        flags = "".join(f"--{k}={v} " for k, v in self.flags.items())
        return f"line {self.lineno}: {self.keyword} {flags}{self.rest}"


def parse_dockerfile(path: str) -> list[dict]:
    lines = open(path, encoding="utf-8").read().splitlines()
    escape = "\\"
    for line in lines:  # parser directives
        m = re.match(r"^#\s*([A-Za-z]+)\s*=\s*(\S+)\s*$", line)
        if not m:
            break
        if m.group(1).lower() == "escape":
            escape = m.group(2)
    instrs: list[Instr] = []
    buf: str | None = None
    start = 0
    for n, line in enumerate(lines, 1):
        s = line.strip()
        if s.startswith("#"):
            continue  # comments, also inside a continuation
        if buf is None:
            if not s:
                continue
            buf, start = "", n
        elif not s:
            continue
        body = line.rstrip()
        if body.endswith(escape):
            buf += body[: -len(escape)]
            continue
        buf += body
        keyword, _, rest = buf.strip().partition(" ")
        instrs.append(Instr(start, keyword.upper(), rest.strip()))
        buf = None
    if buf is not None:
        raise Failure(f"line {start}: the Dockerfile ends inside a line continuation")
    stages: list[dict] = []
    for ins in instrs:
        if ins.keyword == "FROM":
            parts = ins.rest.split()
            name = parts[2] if len(parts) >= 3 and parts[1].lower() == "as" else None
            stages.append({"image": parts[0], "name": name, "instrs": [], "lineno": ins.lineno})
        elif ins.keyword in ("ARG",) and not stages:
            continue  # global ARG before the first FROM
        else:
            if not stages:
                raise Failure(f"{ins}: instruction before the first FROM")
            stages[-1]["instrs"].append(ins)
    if not stages:
        raise Failure("no FROM instruction")
    return stages


def expand(text: str, env: dict[str, str]) -> str:
    def sub(m: re.Match) -> str:
        name = m.group(1) or m.group(3)
        default = m.group(2)
        value = env.get(name)
        if value is None or (value == "" and default is not None):
            return default or ""
        return value
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)",
                  sub, text)


def parse_env(ins: Instr, env: dict[str, str]) -> list[tuple[str, str]]:
    tokens = shlex.split(ins.rest, posix=True)
    if tokens and "=" not in tokens[0]:  # legacy form: ENV KEY value with spaces
        key, _, value = ins.rest.partition(" ")
        return [(key, expand(value.strip(), env))]
    pairs = []
    for t in tokens:
        key, _, value = t.partition("=")
        pairs.append((key, expand(value, env)))
    return pairs


def read_yaml_scalars(path: str) -> dict[str, str]:
    """section.key -> scalar, for a plain two-level YAML file (cross-checked
    later with the project's own loader)."""
    out: dict[str, str] = {}
    section = None
    for raw in open(path, encoding="utf-8"):
        line = re.sub(r"\s+#.*$|^\s*#.*$", "", raw.rstrip("\n")).rstrip()
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        key, sep, value = line.strip().partition(":")
        if not sep:
            continue
        if indent == 0:
            section = key
        elif section:
            out[f"{section}.{key}"] = value.strip().strip("\"'")
    return out


# ------------------------------------------------------------ static check

def cmd_check(dockerfile: str, config: str) -> int:
    stages = parse_dockerfile(dockerfile)
    final = stages[-1]
    problems: list[str] = []

    def check(cond: bool, good: str, bad: str) -> None:
        if cond:
            ok(good)
        else:
            problems.append(bad)
            print(f"    FAIL: {bad}", flush=True)

    info(f"{len(stages)} stage(s): " + ", ".join(
        f"{s['image']}" + (f" AS {s['name']}" if s["name"] else "") for s in stages))
    check(len(stages) >= 2, "multi-stage build", "expected a builder stage and a final stage")
    check(final["image"] == "python:3.11-slim", "final stage FROM python:3.11-slim",
          f"final stage is FROM {final['image']}, expected python:3.11-slim")
    for s in stages[:-1]:
        check(s["image"].startswith("python:3.11"),
              f"builder stage {s['name'] or s['image']} uses Python 3.11 ({s['image']})",
              f"builder stage FROM {s['image']}: must be Python 3.11 like the final stage "
              "(the venv is copied across)")

    # the builder must copy everything the wheel is built from
    pyproject = os.path.join(os.path.dirname(os.path.abspath(dockerfile)), "pyproject.toml")
    if os.path.exists(pyproject):
        import tomllib
        meta = tomllib.load(open(pyproject, "rb"))
        packages = meta.get("tool", {}).get("setuptools", {}).get("packages", [])
        readme = meta.get("project", {}).get("readme")
        needed = ["pyproject.toml"] + ([readme] if isinstance(readme, str) else [])
        needed += [pkg.split(".")[0] for pkg in packages]
        copied: set[str] = set()
        for s in stages[:-1]:
            for ins in s["instrs"]:
                if ins.keyword in ("COPY", "ADD") and "from" not in ins.flags:
                    srcs = shlex.split(ins.rest)[:-1]
                    copied.update(os.path.normpath(x) for x in srcs)
        missing = [n for n in dict.fromkeys(needed) if os.path.normpath(n) not in copied
                   and "." not in copied]
        check(not missing,
              f"builder COPYs pyproject.toml, the readme and every package ({', '.join(needed[1:])})",
              f"builder stage does not COPY {', '.join(missing)} (pyproject.toml's readme / "
              "[tool.setuptools] packages): the wheel cannot be built")

    by_kw: dict[str, list[Instr]] = {}
    for ins in final["instrs"]:
        by_kw.setdefault(ins.keyword, []).append(ins)

    users = by_kw.get("USER", [])
    user = users[-1].rest.split(":")[0] if users else "root"
    check(bool(users) and user not in ("root", "0"),
          f"runs as non-root USER {users[-1].rest}" if users else "",
          f"final stage USER is {user!r}: must be a non-root user")
    if users and not user.isdigit():
        info(f"note: USER {user} is a name; a numeric uid lets Kubernetes check runAsNonRoot")

    check("CMD" in by_kw, f"CMD {by_kw['CMD'][-1].rest}" if "CMD" in by_kw else "",
          "final stage has no CMD")
    hcs = by_kw.get("HEALTHCHECK", [])
    hc_text = hcs[-1].rest if hcs else ""
    check(bool(hcs) and not hc_text.upper().startswith("NONE"), "HEALTHCHECK present",
          "final stage has no HEALTHCHECK")
    if hcs:
        check("urllib" in hc_text and "/healthz" in hc_text and "127.0.0.1" in hc_text
              and not re.search(r"\b(curl|wget)\b", hc_text),
              "HEALTHCHECK uses Python's urllib against 127.0.0.1 .../healthz",
              "HEALTHCHECK should use Python's urllib (stdlib) against http://127.0.0.1:<port>/healthz")

    stop = by_kw.get("STOPSIGNAL", [])
    stop_sig = stop[-1].rest.strip() if stop else "SIGTERM"
    check(stop_sig in ("SIGINT", "SIGTERM", "2", "15", "INT", "TERM"),
          f"STOPSIGNAL {stop_sig} (aiohttp's run_app exits gracefully on SIGINT and SIGTERM)",
          f"STOPSIGNAL {stop_sig}: aiohttp's run_app handles only SIGINT and SIGTERM gracefully")

    env: dict[str, str] = dict(BASE_ENV)
    for ins in final["instrs"]:
        if ins.keyword == "ENV":
            env.update(parse_env(ins, env))
    for var in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"):
        check(env.get(var) == "1", f"ENV {var}=1", f"final stage lacks ENV {var}=1")
    cfg_path = env.get("DIGICLINIC_CONFIG", "")
    check(bool(cfg_path), f"ENV DIGICLINIC_CONFIG={cfg_path}", "final stage lacks ENV DIGICLINIC_CONFIG")
    copies = [i for i in by_kw.get("COPY", []) if "from" not in i.flags]
    check(any(shlex.split(i.rest)[-1] == cfg_path and
              "deploy/config.production.yaml" in shlex.split(i.rest)[:-1] for i in copies),
          f"COPY deploy/config.production.yaml {cfg_path}",
          f"no COPY of deploy/config.production.yaml to {cfg_path or '$DIGICLINIC_CONFIG'}")

    for ins in by_kw.get("RUN", []):
        found = COMPILERS.search(ins.rest)
        check(not found, f"final-stage RUN installs no build tools ({str(ins)[:60]}...)",
              f"{ins}: final stage must not install build tools ({found.group(0) if found else ''})")
        if re.search(r"\b(apt-get|apt|apk|dnf|yum)\b[^&;|]*\binstall\b", ins.rest):
            info(f"note: {ins}: installs OS packages (the wheels should not need any)")

    cfg = read_yaml_scalars(config)
    exposed = [tok for ins in by_kw.get("EXPOSE", []) for tok in ins.rest.split()]
    info(f"EXPOSE {' '.join(exposed)}")
    tcp = {t.split("/")[0] for t in exposed if not t.endswith("/udp")}
    port = cfg.get("server.port", "8080")
    check("8080" in tcp, "EXPOSE 8080/tcp", "no EXPOSE 8080/tcp")
    check(port == "8080", f"config server.port {port} = exposed 8080",
          f"config server.port {port} is not the exposed 8080")
    udp = [t[: -len("/udp")] for t in exposed if t.endswith("/udp")]
    if cfg.get("media.udp_mode", "one_port") == "one_port":
        want = cfg.get("media.udp_port", "40000")
        check(udp == [want],
              f"EXPOSE {want}/udp = media.udp_port of the production config (one media port)",
              f"EXPOSE udp {udp} must be exactly the config's media.udp_port ({want})")
    else:
        lo, hi = cfg.get("media.udp_port_min"), cfg.get("media.udp_port_max")
        want = f"{lo}-{hi}"
        check(udp == [want],
              f"EXPOSE {want}/udp = media.udp_port_min..udp_port_max of the production config "
              f"({int(hi) - int(lo) + 1} ports)" if lo and hi else "",
              f"EXPOSE udp {udp} must be exactly one range equal to the config's "
              f"media.udp_port_min..udp_port_max ({want})")

    if problems:
        print(f"    {len(problems)} invariant(s) violated", flush=True)
        return 1
    return 0


# -------------------------------------------------------------- .dockerignore

def _pattern_regex(pattern: str) -> re.Pattern:
    out, i = "^", 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            if pattern[i:i + 2] == "**":
                i += 2
                if pattern[i:i + 1] == "/":
                    out += "(?:.*/)?"
                    i += 1
                else:
                    out += ".*"
                continue
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j < 0:
                out += re.escape(c)
            else:
                cls = pattern[i + 1:j]
                if cls.startswith("^") or cls.startswith("!"):
                    cls = "^" + cls[1:]
                out += f"[{cls}]"
                i = j
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out + "$")


def load_dockerignore(path: str) -> list[tuple[bool, re.Pattern]]:
    rules = []
    if not os.path.exists(path):
        return rules
    for raw in open(path, encoding="utf-8"):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        if negate:
            line = line[1:].strip()
        line = os.path.normpath(line).lstrip("/")
        if line in ("", "."):
            continue
        rules.append((negate, _pattern_regex(line)))
    return rules


def ignored(rel: str, rules: list[tuple[bool, re.Pattern]]) -> bool:
    """Docker's rule: a path is excluded when a pattern matches it or one of
    its parent directories; the last matching pattern wins."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for negate, rx in rules:
        if any(rx.match(p) for p in prefixes):
            result = not negate
    return result


def cmd_context(src: str, dst: str) -> int:
    rules = load_dockerignore(os.path.join(src, ".dockerignore"))
    has_negation = any(n for n, _ in rules)
    files = skipped = 0
    skipped_top: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(src):
        rel_dir = os.path.relpath(dirpath, src)
        rel_dir = "" if rel_dir == "." else rel_dir
        keep = []
        for d in dirnames:
            rel = f"{rel_dir}/{d}" if rel_dir else d
            if ignored(rel, rules) and not has_negation:
                skipped_top.add(rel)
                continue
            keep.append(d)
        dirnames[:] = keep
        for f in filenames:
            rel = f"{rel_dir}/{f}" if rel_dir else f
            if ignored(rel, rules):
                skipped += 1
                continue
            target = os.path.join(dst, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy2(os.path.join(src, rel), target, follow_symlinks=False)
            files += 1
    ok(f"build context: {files} files ({skipped} files and {len(skipped_top)} directories "
       "excluded by .dockerignore)")
    info("excluded directories: " + (", ".join(sorted(skipped_top)) or "none"))
    for must_not in (".venv", ".git", ".digiclinic", "benchmarks/results"):
        if os.path.exists(os.path.join(src, must_not)) and os.path.exists(os.path.join(dst, must_not)):
            raise Failure(f".dockerignore lets {must_not} into the build context")
    ok(".venv, .git, .digiclinic, benchmarks/results stay out of the context")
    return 0


# ------------------------------------------------------------------ replay

def image_owned(path: str) -> bool:
    return (path.startswith("/") and not path.startswith("//")
            and not any(path == p or path.startswith(p + "/") for p in SYSTEM_PREFIXES))


def to_host(root: str, path: str) -> str:
    return root + path if image_owned(path) else path


def env_to_host(env: dict[str, str], root: str, shim: str) -> dict[str, str]:
    out = {}
    for key, value in env.items():
        parts = value.split(":")
        if value and all(re.fullmatch(r"/[A-Za-z0-9._+/-]*", p) for p in parts):
            mapped = []
            for p in parts:
                if key == "PATH" and p == "/usr/local/bin" and shim not in mapped:
                    mapped.append(shim)  # the base image's `python`
                mapped.append(to_host(root, p))
            value = ":".join(mapped)
        out[key] = value
    return out


def _copy(ins: Instr, env: dict[str, str], workdir: str, context: str, root: str,
          stage_names: set[str]) -> None:
    args, _ = ins.exec_or_shell()
    if args[:2] == ["/bin/sh", "-c"]:
        args = shlex.split(ins.rest)
    srcs, dest = args[:-1], expand(args[-1], env)
    if not srcs:
        raise Failure(f"{ins}: COPY needs a source and a destination")
    if not dest.startswith("/"):
        dest = os.path.join(workdir, dest)  # keeps a trailing slash
    if "from" in ins.flags:
        if ins.flags["from"] not in stage_names:
            raise Failure(f"{ins}: --from={ins.flags['from']} is not an earlier stage")
        for s in srcs:
            # one image root for every stage: the copy is in place already, and
            # must be, since a venv's scripts name its absolute path
            if os.path.normpath(s) != os.path.normpath(dest):
                raise Failure(f"{ins}: copies {s} to another path ({dest}); a venv's "
                              "scripts carry its absolute path, keep it the same")
            if not os.path.exists(to_host(root, s)):
                raise Failure(f"{ins}: {s} was not produced by the builder stage")
        ok(f"COPY --from={ins.flags['from']} {' '.join(srcs)} (same path in both stages)")
        return
    host_dest = to_host(root, dest)
    dest_is_dir = dest.endswith("/") or len(srcs) > 1
    for s in srcs:
        if os.path.isabs(s) or ".." in s.split("/"):
            raise Failure(f"{ins}: source {s} is outside the build context")
        matches = sorted(glob.glob(os.path.join(context, s)))
        if not matches:
            raise Failure(f"{ins}: {s} is not in the build context (excluded by .dockerignore?)")
        for m in matches:
            if os.path.isdir(m):
                shutil.copytree(m, host_dest, symlinks=True, dirs_exist_ok=True)
            else:
                target = (os.path.join(host_dest, os.path.basename(m))
                          if dest_is_dir or os.path.isdir(host_dest) else host_dest)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copy2(m, target)
    flags = " (--chown/--chmod not replayed)" if {"chown", "chmod"} & set(ins.flags) else ""
    ok(f"COPY {' '.join(srcs)} -> {dest}{flags}")


def cmd_build(dockerfile: str, context: str, root: str, shim: str, log_path: str,
              runtime_path: str) -> int:
    stages = parse_dockerfile(dockerfile)
    names: set[str] = set()
    passthrough = {k: v for k, v in os.environ.items()
                   if k in PASSTHROUGH or k.startswith("PIP_")}
    log = open(log_path, "ab")
    env: dict[str, str] = {}
    workdir = "/"
    for index, stage in enumerate(stages):
        final = index == len(stages) - 1
        label = "final stage" if final else f"stage {stage['name'] or index}"
        info(f"-- {label}: FROM {stage['image']}")
        env, workdir = dict(BASE_ENV), "/"
        for ins in stage["instrs"]:
            kw = ins.keyword
            if kw == "ENV":
                env.update(parse_env(ins, env))
            elif kw == "ARG":
                name, _, default = ins.rest.partition("=")
                env.setdefault(name.strip(), default.strip().strip("\"'"))
            elif kw == "WORKDIR":
                workdir = os.path.normpath(os.path.join(workdir, expand(ins.rest, env)))
                os.makedirs(to_host(root, workdir), exist_ok=True)
            elif kw in ("COPY", "ADD"):
                if kw == "ADD" and re.search(r"https?://|\.tar", ins.rest):
                    raise Failure(f"{ins}: ADD of URLs/archives is not replayed; use COPY")
                _copy(ins, env, workdir, context, root, names)
            elif kw == "RUN" and not final:
                argv, is_exec = ins.exec_or_shell()
                text = " ".join(argv) if is_exec else argv[2]
                bad = [m.group(1) for m in re.finditer(
                    r"(?:^|(?<=[\s\"'=]))(/[A-Za-z0-9._+/-]+)", text) if image_owned(m.group(1))]
                if bad:
                    raise Failure(f"{ins}: absolute path(s) {', '.join(bad)} in a builder RUN "
                                  "cannot be relocated by the replay; use $VIRTUAL_ENV or "
                                  "paths relative to WORKDIR")
                run_env = dict(passthrough)
                run_env.update(env_to_host(env, root, shim))
                cwd = to_host(root, workdir)
                info(f"RUN (line {ins.lineno}) in {workdir} -> {cwd}")
                for part in re.split(r"\s+&&\s+", text):
                    info(f"    {part.strip()}")
                log.write(f"\n### {ins}\n".encode())
                log.flush()
                t0 = time.monotonic()
                result = subprocess.run(argv, env=run_env, cwd=cwd, stdout=log,
                                        stderr=subprocess.STDOUT)
                if result.returncode != 0:
                    raise Failure(f"{ins}: exit status {result.returncode} (log: {log_path})")
                ok(f"RUN line {ins.lineno} succeeded in {time.monotonic() - t0:.0f}s")
            elif kw == "RUN":
                info(f"not replayed (image setup; the replay runs as nobody): "
                     f"{' '.join(ins.rest.split())[:110]}...")
        if stage["name"]:
            names.add(stage["name"])
    final_stage = stages[-1]
    last = {i.keyword: i for i in final_stage["instrs"]}
    entrypoint = last["ENTRYPOINT"].exec_or_shell()[0] if "ENTRYPOINT" in last else []
    cmd = last["CMD"].exec_or_shell()[0] if "CMD" in last else []
    hc = last.get("HEALTHCHECK")
    hc_cmd: list[str] = []
    if hc is not None:
        kind, _, rest = hc.rest.partition(" ")
        if kind.upper() == "CMD":
            hc_cmd = hc.exec_or_shell(rest)[0]
    runtime = {
        "image_env": env,
        "host_env": env_to_host(env, root, shim),
        "workdir": workdir,
        "host_workdir": to_host(root, workdir),
        "argv": entrypoint + cmd,
        "healthcheck": hc_cmd,
        "healthcheck_flags": hc.flags if hc is not None else {},
        "stopsignal": last["STOPSIGNAL"].rest.strip() if "STOPSIGNAL" in last else "SIGTERM",
        "venv": to_host(root, env.get("VIRTUAL_ENV", "/opt/digiclinic")),
    }
    with open(runtime_path, "w") as out:
        json.dump(runtime, out, indent=2)
    return 0


# ---------------------------------------------------------- venv inspection

def cmd_inspect(runtime_path: str) -> int:
    rt = json.load(open(runtime_path))
    venv = rt["venv"]
    py = os.path.join(venv, "bin", "python")
    listing = subprocess.run([py, "-m", "pip", "list", "--format=json"], capture_output=True,
                             text=True, check=True)
    dists = json.loads(listing.stdout)
    info("installed: " + ", ".join(f"{d['name']}=={d['version']}" for d in dists))
    ok(f"{len(dists)} distributions in the venv, all installed from wheels (--only-binary=:all:)")
    sos = []
    for dirpath, _dirs, files in os.walk(venv):
        for f in files:
            if f.endswith(".so") or ".so." in f:
                sos.append(os.path.join(dirpath, f))
    system: dict[str, set[str]] = {}
    bundled: set[str] = set()
    bad: list[str] = []
    for so in sos:
        out = subprocess.run(["ldd", so], capture_output=True, text=True)
        if out.returncode != 0 and "not a dynamic executable" in (out.stdout + out.stderr):
            continue
        for line in out.stdout.splitlines():
            line = line.strip()
            m = re.match(r"^(\S+)\s+=>\s+(not found|\S+)", line) or re.match(r"^(\S+)\s+\(", line)
            if not m:
                continue
            name = os.path.basename(m.group(1))
            where = m.group(2) if m.lastindex and m.lastindex >= 2 else m.group(1)
            rel = os.path.relpath(so, venv)
            if where == "not found":
                bad.append(f"{rel}: {name} not found")
            elif os.path.realpath(where).startswith(os.path.realpath(venv) + os.sep):
                bundled.add(os.path.relpath(os.path.dirname(os.path.realpath(where)),
                                            os.path.realpath(venv)).split("site-packages/")[-1])
            elif name in SYSTEM_LIBS:
                system.setdefault(name, set()).add(rel)
            else:
                bad.append(f"{rel}: needs the system library {name} ({where})")
    info(f"{len(sos)} shared objects checked with ldd; bundled library dirs: "
         + (", ".join(sorted(bundled)) or "none"))
    info("system libraries used: " + ", ".join(sorted(system)))
    if bad:
        for b in sorted(set(bad))[:20]:
            print(f"    FAIL: {b}", flush=True)
        raise Failure("extension modules need libraries that python:3.11-slim lacks "
                      "(an apt package in the final image, or a missing wheel)")
    ok("native code needs only glibc/libgcc/libstdc++/zlib from the system: "
       "no apt packages needed in python:3.11-slim")
    return 0


CONFIG_PROBE = r"""
import json, os, sys
from signaling.config import ConfigError, load_config
path = os.environ["DIGICLINIC_CONFIG"]
out = {}
try:
    load_config(path, environ={})
    out["without_ice"] = "loaded"
except ConfigError as exc:
    out["without_ice"] = "error: " + str(exc)
c = load_config(path, environ={"DIGICLINIC_MEDIA__ICE_ADDRESSES": "192.0.2.10"})
out.update(host=c.server.host, port=c.server.port,
           udp=[c.media.udp_port_min, c.media.udp_port_max], ice=c.media.ice_addresses,
           udp_mode=c.media.udp_mode, udp_port=c.media.udp_port,
           secret=c.auth.dev_secret_file, level=c.logging.level, issuers=len(c.auth.issuers))
print(json.dumps(out))
"""


def cmd_config(runtime_path: str, dockerfile: str) -> int:
    rt = json.load(open(runtime_path))
    env = dict(rt["host_env"])
    cfg_image = rt["image_env"]["DIGICLINIC_CONFIG"]
    if not os.path.isfile(env["DIGICLINIC_CONFIG"]):
        raise Failure(f"{cfg_image} is not in the image")
    out = subprocess.run([os.path.join(rt["venv"], "bin", "python"), "-c", CONFIG_PROBE],
                         env=env, cwd="/", capture_output=True, text=True)
    if out.returncode != 0:
        raise Failure(f"the production config does not load: {out.stderr.strip()[-800:]}")
    c = json.loads(out.stdout)
    info(f"{cfg_image} loaded by signaling.config: {c}")
    problems = []
    if c["host"] != "0.0.0.0" or c["port"] != 8080:
        problems.append(f"server {c['host']}:{c['port']}, expected 0.0.0.0:8080")
    if not c["secret"].startswith("/var/lib/digiclinic/"):
        problems.append(f"auth.dev_secret_file {c['secret']} is not under /var/lib/digiclinic")
    if c["level"].upper() != "INFO":
        problems.append(f"logging.level {c['level']}, expected INFO")
    if "ice_addresses" not in c["without_ice"]:
        problems.append("media.ice_addresses should be left for the operator to set "
                        f"(got: {c['without_ice']})")
    exposed = [t for line in open(dockerfile) if line.strip().upper().startswith("EXPOSE")
               for t in line.split()[1:] if t.endswith("/udp")]
    media_ports = (
        f"{c['udp_port']}" if c["udp_mode"] == "one_port" else f"{c['udp'][0]}-{c['udp'][1]}"
    )
    if exposed != [f"{media_ports}/udp"]:
        problems.append(f"EXPOSE {exposed} != the media port(s) {media_ports} ({c['udp_mode']})")
    if problems:
        for p in problems:
            print(f"    FAIL: {p}", flush=True)
        raise Failure("production config")
    ok(f"production config: 0.0.0.0:8080, UDP {media_ports} ({c['udp_mode']}) "
       f"= EXPOSE, ice_addresses required ({c['without_ice']})")
    return 0


# --------------------------------------------------------------------- run

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _seconds(value: str | None, default: float) -> float:
    if not value:
        return default
    total = 0.0
    for num, unit in re.findall(r"([\d.]+)(ms|s|m|h)", value):
        total += float(num) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total or default


def cmd_serve(runtime_path: str, uid: str, gid: str, sig_name: str, pid_file: str,
              log_path: str) -> int:
    rt = json.load(open(runtime_path))
    sig = (signal.Signals(int(sig_name)) if sig_name.isdigit()
           else getattr(signal, "SIG" + sig_name.upper().removeprefix("SIG")))
    port = _free_port()
    workdir = rt["host_workdir"]
    os.makedirs(workdir, exist_ok=True)
    os.chown(workdir, int(uid), int(gid))  # the image's RUN install -d -o 10001 ...
    os.chmod(workdir, 0o700)
    secret = os.path.join(workdir, "dev-secret")  # a writable temporary path
    if os.path.exists(secret):
        os.remove(secret)
    env = dict(rt["host_env"])
    env.update({
        "HOME": workdir,  # docker sets HOME from the USER's passwd entry
        "DIGICLINIC_SERVER__HOST": "127.0.0.1",
        "DIGICLINIC_SERVER__PORT": str(port),
        "DIGICLINIC_MEDIA__ICE_ADDRESSES": "127.0.0.1",
        "DIGICLINIC_AUTH__DEV_SECRET_FILE": secret,
    })
    drop = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"]

    def resolve(argv: list[str]) -> list[str]:
        exe = argv[0] if "/" in argv[0] else shutil.which(argv[0], path=env["PATH"])
        if not exe:
            raise Failure(f"{argv[0]} is not on the image's PATH ({env['PATH']})")
        return [exe, *argv[1:]]

    argv = resolve(rt["argv"])
    if not argv[0].startswith(rt["venv"] + "/"):
        raise Failure(f"CMD {rt['argv'][0]} resolves to {argv[0]}, not the image's venv")
    hc = rt["healthcheck"]
    hc_text = " ".join(hc)
    if "DIGICLINIC_SERVER__PORT" in hc_text:
        how = "follows DIGICLINIC_SERVER__PORT"
    else:
        hc = [a.replace("127.0.0.1:8080", f"127.0.0.1:{port}") for a in hc]
        how = f"127.0.0.1:8080 rewritten to 127.0.0.1:{port}"
    hc = resolve(hc)
    flags = rt["healthcheck_flags"]
    hc_timeout = _seconds(flags.get("timeout"), 30)
    budget = min(90.0, max(30.0, _seconds(flags.get("start-period"), 0)
                           + _seconds(flags.get("interval"), 30)
                           * int(flags.get("retries", "3") or 3)))

    info(f"{' '.join(rt['argv'])} -> {argv[0]} as uid {uid}, in {rt['workdir']} -> {workdir}")
    info(f"DIGICLINIC_CONFIG={rt['image_env'].get('DIGICLINIC_CONFIG')} (the image's copy of "
         f"deploy/config.production.yaml); overrides: HOST=127.0.0.1 PORT={port} "
         f"ICE_ADDRESSES=127.0.0.1 DEV_SECRET_FILE={secret}")
    log = open(log_path, "wb")
    t_start = time.monotonic()
    proc = subprocess.Popen(drop + argv, env=env, cwd=workdir, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    with open(pid_file, "w") as f:
        f.write(str(proc.pid))

    def tail() -> str:
        log.flush()
        text = open(log_path, errors="replace").read()
        return "\n".join("      | " + line for line in text.splitlines()[-25:])

    try:
        # (d) the HEALTHCHECK command, as the image user, until it passes
        attempts = 0
        while True:
            if proc.poll() is not None:
                raise Failure(f"the server exited early (status {proc.returncode}):\n{tail()}")
            attempts += 1
            try:
                r = subprocess.run(drop + hc, env=env, cwd=workdir, capture_output=True,
                                   text=True, timeout=hc_timeout)
                passed = r.returncode == 0
                last = (r.stderr or r.stdout).strip().splitlines()[-1:] or [""]
            except subprocess.TimeoutExpired:
                passed, last = False, [f"timed out after {hc_timeout}s"]
            if passed:
                break
            if time.monotonic() - t_start > budget:
                raise Failure(f"HEALTHCHECK still failing after {budget:.0f}s: {last[0]}\n{tail()}")
            time.sleep(0.5)
        ok(f"HEALTHCHECK passed ({how}) {time.monotonic() - t_start:.1f}s after start, "
           f"attempt {attempts}")
        if os.path.basename(hc[0]).startswith("python") and "-S" not in hc:
            r = subprocess.run(drop + [hc[0], "-S", *hc[1:]], env=env, cwd=workdir,
                               capture_output=True, timeout=hc_timeout)
            if r.returncode != 0:
                raise Failure("HEALTHCHECK fails without site-packages: not stdlib-only")
            ok("HEALTHCHECK also passes with python -S: standard library only")
        st = os.stat(secret)
        if st.st_uid != int(uid) or stat.S_IMODE(st.st_mode) != 0o600:
            raise Failure(f"dev secret {secret}: uid {st.st_uid} mode {oct(st.st_mode)}")
        ok("dev secret created by the unprivileged user, mode 0600")

        # (e) the stop signal: a clean exit within 10 s
        t_stop = time.monotonic()
        proc.send_signal(sig)
        try:
            rc = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise Failure(f"no exit within 10 s of {sig.name}:\n{tail()}") from None
        took = time.monotonic() - t_stop
        text = open(log_path, errors="replace").read()
        if rc != 0 or "Traceback" in text:
            raise Failure(f"{sig.name}: exit status {rc} after {took:.1f}s:\n{tail()}")
        ok(f"{sig.name}: clean exit (status 0, no traceback) in {took:.1f}s")
        return 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        if os.path.exists(pid_file):
            os.remove(pid_file)


def main() -> int:
    cmd, args = sys.argv[1], sys.argv[2:]
    try:
        return {"check": cmd_check, "context": cmd_context, "build": cmd_build,
                "inspect": cmd_inspect, "config": cmd_config, "serve": cmd_serve}[cmd](*args)
    except Failure as exc:
        print(f"    FAIL: {exc}", flush=True)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
PYTHON

helper() { "$PY" "$HELPER" "$@"; }

# ---------------------------------------------------------------------------
step "a) Dockerfile invariants"
# ---------------------------------------------------------------------------
helper check "$DOCKERFILE" "$PROD_CONFIG" ||
  fail "Dockerfile invariants (see FAIL lines above)"
pass "Dockerfile invariants: python:3.11-slim, non-root USER, HEALTHCHECK, CMD, EXPOSE 8080/tcp + UDP range = config"

# ---------------------------------------------------------------------------
step "b) replay the build in $IMAGE_ROOT"
# ---------------------------------------------------------------------------
helper context "$ROOT" "$CONTEXT" || fail "build context (.dockerignore)"
pass "build context filtered by .dockerignore"

note "builder RUN output goes to $WORK/build.log"
T_BUILD=$(date +%s)
if ! helper build "$DOCKERFILE" "$CONTEXT" "$IMAGE_ROOT" "$WORK/shim" "$WORK/build.log" \
      "$WORK/runtime.json"; then
  [ -f "$WORK/build.log" ] && tail -n 30 "$WORK/build.log" | sed 's/^/      | /'
  fail "build replay"
fi
pass "build replayed: same RUN commands, fresh Python 3.11 venv ($(( $(date +%s) - T_BUILD ))s)"

helper inspect "$WORK/runtime.json" || fail "venv inspection (native libraries)"
pass "what pip installed needs no apt packages in python:3.11-slim"

helper config "$WORK/runtime.json" "$DOCKERFILE" || fail "production config"
pass "deploy/config.production.yaml loads with signaling.config and matches EXPOSE"

# ---------------------------------------------------------------------------
STOPSIG="$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["stopsignal"])' "$WORK/runtime.json")"
case "$STOPSIG" in
  2 | INT | SIGINT) STOPSIG=SIGINT ;;
  15 | TERM | SIGTERM) STOPSIG=SIGTERM ;;
  *) fail "STOPSIGNAL $STOPSIG: expected SIGINT or SIGTERM" ;;
esac
OTHER=SIGTERM
[ "$STOPSIG" = "SIGTERM" ] && OTHER=SIGINT

step "c-e) run the CMD as nobody, HEALTHCHECK, then STOPSIGNAL $STOPSIG"
helper serve "$WORK/runtime.json" "$RUN_UID" "$RUN_GID" "$STOPSIG" "$WORK/server.pid" \
  "$WORK/server-1.log" || fail "run with STOPSIGNAL $STOPSIG"
pass "runs unprivileged, HEALTHCHECK passes, $STOPSIG stops it cleanly within 10 s"

step "c-e) again, stopped with $OTHER"
helper serve "$WORK/runtime.json" "$RUN_UID" "$RUN_GID" "$OTHER" "$WORK/server.pid" \
  "$WORK/server-2.log" || fail "run stopped with $OTHER"
pass "$OTHER stops it cleanly within 10 s too"

step "f) clean up"
FINISHED=1
