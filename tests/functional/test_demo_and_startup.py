"""The demo's entry, the favicon, the headers of /client/ and the start-up banner (issue 20).

- ``GET /`` keeps the query string on its redirect to the demo (the path fixed);
- ``/favicon.ico`` is served (type, caching, revalidation), demo or not;
- the CORS and framing headers of ``/client/`` are the ones docs/widget.md and
  docs/protocol.md describe (the test reads the header from the docs);
- ``digiclinic serve`` prints a URL a browser can open and its commands as the
  user types them (``.venv/bin/…`` from the repository), never a secret.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from signaling.favicon import CONTENT_TYPE
from tests.conftest import RunningServer

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
VENV_BIN = Path(sys.prefix) / "bin"
PORTAL = "https://portal.hospital-a.example"

ServerFactory = Callable[..., Awaitable[RunningServer]]


# -- GET / ------------------------------------------------------------------------


async def test_root_redirects_to_the_demo_with_its_query_string(server: RunningServer) -> None:
    async with aiohttp.ClientSession() as http:
        root = server.server.make_url("/")
        async with http.get(root, allow_redirects=False) as resp:
            assert resp.status == 302
            assert resp.headers["Location"] == "/client/demo/index.html"
        # what the demo page reads, encoded as sent (a "&" inside a value stays one value)
        query = "role=specialist&lang=fr&room=ward-7&name=Ada%20%26%20Bo"
        async with http.get(f"{root}?{query}", allow_redirects=False) as resp:
            assert resp.status == 302
            location = URL(resp.headers["Location"])
        assert location.path == "/client/demo/index.html"
        assert not location.host  # relative to this server
        assert dict(location.query) == {
            "role": "specialist",
            "lang": "fr",
            "room": "ward-7",
            "name": "Ada & Bo",
        }
        async with http.get(f"{root}?{query}") as resp:  # and the page is there
            assert resp.status == 200
            assert resp.url.path == "/client/demo/index.html"
            assert resp.url.query["lang"] == "fr"


@pytest.mark.parametrize(
    "query",
    [
        "next=//evil.example/x",
        "x=%0d%0aLocation:%20https://evil.example",
        "%2F%2Fevil.example=1",
        "a=https://evil.example&a=2",
    ],
)
async def test_root_redirect_never_leaves_the_demo_page(server: RunningServer, query: str) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{server.server.make_url('/')}?{query}", allow_redirects=False) as resp,
    ):
        assert resp.status == 302
        location = resp.headers["Location"]
    assert location.startswith("/client/demo/index.html?"), location
    assert "\r" not in location and "\n" not in location
    parsed = URL(location)
    assert (parsed.scheme, parsed.host, parsed.path) == ("", None, "/client/demo/index.html")


# -- /favicon.ico -------------------------------------------------------------------


def _ico_png(body: bytes) -> tuple[int, int]:
    """The width and height of the one PNG image of an ICO file (checked on the way)."""
    reserved, kind, count = struct.unpack_from("<HHH", body)
    assert (reserved, kind, count) == (0, 1, 1)
    width, height, _, _, planes, bits, size, offset = struct.unpack_from("<BBBBHHII", body, 6)
    assert (planes, bits) == (1, 32)
    png = body[offset : offset + size]
    assert len(png) == size and png.startswith(b"\x89PNG\r\n\x1a\n")
    position, idat = 8, b""
    png_size: tuple[int, int] = (0, 0)
    while position < len(png):  # every chunk's CRC, and the image data inflates
        (length,) = struct.unpack_from(">I", png, position)
        kind_bytes = png[position + 4 : position + 8]
        data = png[position + 8 : position + 8 + length]
        (crc,) = struct.unpack_from(">I", png, position + 8 + length)
        assert crc == zlib.crc32(kind_bytes + data), kind_bytes
        if kind_bytes == b"IHDR":
            png_size = struct.unpack_from(">II", data)
        elif kind_bytes == b"IDAT":
            idat += data
        position += 12 + length
    assert (width, height) == png_size
    assert len(zlib.decompress(idat)) == height * (1 + 4 * width)  # RGBA rows
    return png_size


@pytest.mark.parametrize("demo", [True, False])
async def test_favicon_is_served_with_its_type_and_caching(
    server_factory: ServerFactory, demo: bool
) -> None:
    server = await server_factory(server={"demo": demo})
    url = server.server.make_url("/favicon.ico")
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as resp:
            assert resp.status == 200
            assert resp.content_type == CONTENT_TYPE == "image/vnd.microsoft.icon"
            assert resp.headers["Cache-Control"] == "public, max-age=86400"
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            etag = resp.headers["ETag"]
            body = await resp.read()
        assert _ico_png(body) == (32, 32)
        assert len(body) < 2048
        async with http.get(url, headers={"If-None-Match": etag}) as resp:
            assert resp.status == 304
            assert await resp.read() == b""
        async with http.head(url) as resp:
            assert resp.status == 200
        # a page of this server asks for it (same origin): allowed
        own = str(server.server.make_url("/")).rstrip("/")
        async with http.get(url, headers={"Origin": own}) as resp:
            assert resp.status == 200


def test_demo_page_links_the_favicon_under_its_policy() -> None:
    page = (ROOT / "web-client" / "demo" / "index.html").read_text()
    assert '<link rel="icon" href="/favicon.ico"' in page
    policy = re.search(r'http-equiv="Content-Security-Policy"\s+content="([^"]+)"', page)
    assert policy is not None
    directives = dict(d.strip().split(" ", 1) for d in policy.group(1).split(";") if d.strip())
    assert "'self'" in directives["img-src"].split()  # a same-origin image


# -- the headers of /client/, as the docs describe them ---------------------------------

FRAMING_DOC = "Content-Security-Policy: frame-ancestors 'self' <server.allowed_origins>"
OLD_STATEMENTS = [
    "does\n**not** send `Access-Control-Allow-Origin` for `/client/`",
    "sends no `frame-ancestors`",
    "responses under `/api/` carry",
]


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_docs_describe_the_client_headers_the_same_way() -> None:
    for name in ("widget.md", "protocol.md"):
        text = _flat((DOCS / name).read_text())
        assert _flat(FRAMING_DOC) in text, name
        assert "X-Content-Type-Options: nosniff" in text, name
        assert "Access-Control-Allow-Origin: <that origin>" in text, name
        for old in OLD_STATEMENTS:
            assert _flat(old) not in text, (name, old)
    protocol = _flat((DOCS / "protocol.md").read_text())
    assert "responses under `/api/` **and `/client/`**" in protocol


@pytest.mark.parametrize("allowed", [[], [PORTAL], [PORTAL, "https://portal-b.example"]])
async def test_client_headers_are_the_documented_ones(
    server_factory: ServerFactory, allowed: list[str]
) -> None:
    server = await server_factory(server={"allowed_origins": list(allowed)})
    framing = FRAMING_DOC.split(": ", 1)[1].replace("<server.allowed_origins>", " ".join(allowed))
    framing = framing.strip()
    module = server.server.make_url("/client/widget/digiclinic-consult.js")
    embed = server.server.make_url("/client/widget/embed.html")
    demo = server.server.make_url("/client/demo/index.html")
    async with aiohttp.ClientSession() as http:
        for url in (module, embed, demo):
            async with http.get(url) as resp:  # a navigation or a non-browser client
                assert resp.status == 200, url
                assert resp.headers["Content-Security-Policy"] == framing, url
                assert resp.headers["X-Content-Type-Options"] == "nosniff", url
                assert "Access-Control-Allow-Origin" not in resp.headers, url
        if allowed:  # a portal loads the modules cross-origin (CORS)
            async with http.get(module, headers={"Origin": PORTAL}) as resp:
                assert resp.status == 200
                assert resp.headers["Access-Control-Allow-Origin"] == PORTAL
                assert resp.headers["Vary"] == "Origin"
                assert resp.headers["Content-Security-Policy"] == framing
        library = server.server.make_url("/client/digiclinic-client.js")
        async with http.get(library, headers={"Origin": "https://evil.example"}) as resp:
            assert resp.status == 403
            assert (await resp.json())["code"] == "origin_not_allowed"
            assert "Access-Control-Allow-Origin" not in resp.headers
        async with http.get(server.server.make_url("/healthz")) as resp:  # not /client/
            assert "Content-Security-Policy" not in resp.headers


# -- digiclinic serve: the start-up banner ----------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _config_file(tmp_path: Path) -> Path:
    config = tmp_path / "digiclinic.yaml"
    config.write_text(
        f"auth:\n  dev_secret_file: {tmp_path / 'dev-secret'}\n"
        "admin:\n  token: admin-token-never-printed-0123456789\n"
        "media:\n  ice_addresses: [127.0.0.1]\n  udp_port: 0\n"
    )
    return config


# runs ``argv[1:]`` in a network namespace of its own with only loopback (exit 77: not allowed)
PRIVATE_NETWORK = """
import ctypes, fcntl, os, socket, struct, sys
if ctypes.CDLL(None, use_errno=True).unshare(0x40000000) != 0:  # CLONE_NEWNET
    sys.exit(77)
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:  # lo up (SIOCSIFFLAGS)
    fcntl.ioctl(sock, 0x8914, struct.pack("16sh14x", b"lo", 0x1 | 0x8 | 0x40))
os.execv(sys.argv[1], sys.argv[1:])
"""


def _banner(
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    private_network: bool = False,
) -> str:
    """What ``argv`` (a ``serve``) prints up to its ``tokens:`` line; the server is stopped."""
    if private_network:
        argv = [sys.executable, "-c", PRIVATE_NETWORK, *argv]
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    output = b""
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            deadline = time.monotonic() + 30
            while not re.search(rb"tokens:.*\n", output):
                if time.monotonic() > deadline or not selector.select(deadline - time.monotonic()):
                    raise AssertionError(f"no banner:\n{output.decode()}")
                chunk = os.read(fd, 4096)
                if not chunk:
                    if private_network and proc.wait() == 77:
                        pytest.skip("no network namespace of its own for the server (not root?)")
                    raise AssertionError(f"the server exited:\n{output.decode()}")
                output += chunk
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            rest, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            rest, _ = proc.communicate()
    return (output + (rest or b"")).decode()


@pytest.fixture
def serve_env() -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGICLINIC_")}
    # as in a shell where the virtualenv is not activated
    env["PATH"] = os.pathsep.join(
        p
        for p in env.get("PATH", "").split(os.pathsep)
        if p and Path(p).resolve() != VENV_BIN.resolve()
    )
    yield env


def _assert_no_secret(output: str, tmp_path: Path) -> None:
    secret = (tmp_path / "dev-secret").read_text().strip()
    assert secret and secret not in output
    assert "admin-token-never-printed" not in output
    assert "eyJ" not in output  # no token


@pytest.mark.skipif(
    not (ROOT / ".venv" / "bin" / "digiclinic").exists()
    or Path(sys.prefix).resolve() != (ROOT / ".venv").resolve(),
    reason="needs the repository's .venv (scripts/test.sh makes it)",
)
def test_banner_from_the_repository_names_the_venv_commands(
    tmp_path: Path, serve_env: dict[str, str]
) -> None:
    """As ./scripts/run.sh (and the README) run it: from the repository, .venv/bin/digiclinic."""
    port = _free_port()
    config = _config_file(tmp_path)
    argv = [".venv/bin/digiclinic", "--config", str(config), "serve", "--port", str(port)]
    output = _banner(argv, ROOT, serve_env)
    assert f"digiclinic listening on http://127.0.0.1:{port}\n" in output, output
    assert f"open http://127.0.0.1:{port}/ " in output, output
    assert (
        f"try it:  .venv/bin/python -m signaling.demo_call --url ws://127.0.0.1:{port}/ws" in output
    ), output
    assert f"tokens:  .venv/bin/digiclinic --config {config} token --room demo" in output, output
    assert "  python -m" not in output and "  digiclinic token" not in output, output
    _assert_no_secret(output, tmp_path)


@pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="tests run in a virtualenv")
def test_banner_elsewhere_names_the_commands_by_their_path(
    tmp_path: Path, serve_env: dict[str, str]
) -> None:
    """From another directory, with the virtualenv not on PATH: its commands' full paths."""
    port = _free_port()
    config = _config_file(tmp_path)
    argv = [str(VENV_BIN / "digiclinic"), "--config", str(config), "serve", "--port", str(port)]
    output = _banner(argv, tmp_path, serve_env)
    venv_bin = Path(sys.prefix).resolve() / "bin"
    assert f"try it:  {venv_bin}/python -m signaling.demo_call" in output, output
    assert f"tokens:  {venv_bin}/digiclinic --config {config} token" in output, output
    with_venv = {**serve_env, "PATH": f"{VENV_BIN}{os.pathsep}{serve_env['PATH']}"}
    output = _banner(argv, tmp_path, with_venv)  # activated: the bare commands
    assert "try it:  python -m signaling.demo_call" in output, output
    assert f"tokens:  digiclinic --config {config} token" in output, output
    _assert_no_secret(output, tmp_path)


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_banner_on_all_interfaces_prints_a_url_a_browser_opens(
    tmp_path: Path, serve_env: dict[str, str], host: str
) -> None:
    """``--host 0.0.0.0`` (or ``::``), in a network namespace of its own with only loopback."""
    config = _config_file(tmp_path)
    argv = [str(VENV_BIN / "digiclinic"), "--config", str(config), "serve", "--host", host]
    argv += ["--port", "8080"]  # a namespace of its own: nothing else there
    output = _banner(argv, tmp_path, serve_env, private_network=True)
    assert "http://0.0.0.0" not in output and "http://::" not in output, output
    assert "http://[::]" not in output, output
    listening = f"digiclinic listening on http://localhost:8080 (all interfaces: {host}, port 8080)"
    assert listening + "\n" in output, output
    assert "health:  http://localhost:8080/healthz" in output, output
    assert "open http://localhost:8080/ " in output, output
    assert "--url ws://localhost:8080/ws" in output, output
    _assert_no_secret(output, tmp_path)
