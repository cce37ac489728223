"""Which browser origins may call this server (HTTP API, WebSocket, widget modules).

A request without ``Origin`` comes from a non-browser client and is not
subject to this check. A browser's request is allowed when its origin is

- listed in ``server.allowed_origins`` (the hospital portals embedding the
  widget), or that list holds ``"*"``;
- one of the server's own public origins: ``server.public_origins``, plus
  the origin of ``cluster.public_url`` when set (its ``wss`` is ``https``);
- or the server's own address written as an IP literal or ``localhost``,
  with the server's own scheme (``https`` with ``server.tls_cert``), as the
  request's ``Host`` names it.

Comparing the origin with the request's own ``Host`` alone is what DNS
rebinding defeats: a page from ``http://evil.example:8080`` whose name the
attacker later points at this server sends ``Origin`` and ``Host`` both
``evil.example:8080``. A rebinding attack needs a name the attacker
controls, so a name is accepted only when configured; an address typed as
an IP literal (a LAN demo, ``127.0.0.1``) or ``localhost`` cannot be
rebound from elsewhere and needs no configuration. Origins are compared
whole: scheme, host (lowercased) and port (the scheme's default omitted).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
_WS_SCHEMES = {"ws": "http", "wss": "https"}


def normalize_origin(value: str) -> str | None:
    """``scheme://host[:port]`` in canonical form, or None if ``value`` is not an origin."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = _WS_SCHEMES.get(parts.scheme.lower(), parts.scheme.lower())
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host or parts.username or parts.password:
        return None
    if parts.query or parts.fragment or parts.path not in ("", "/"):
        return None
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def public_url_origin(url: str, port: int) -> str | None:
    """The origin of a ``ws[s]://host[:port]/path`` URL (``{port}``: this server's port)."""
    if not url:
        return None
    parts = urlsplit(url.replace("{port}", str(port)))
    return normalize_origin(f"{parts.scheme}://{parts.netloc}")


def _literal_or_localhost(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class OriginPolicy:
    def __init__(self, allowed: Iterable[str], public: Iterable[str], tls: bool) -> None:
        allowed = list(allowed)
        self.any = "*" in allowed
        self.allowed = {o for o in (normalize_origin(a) for a in allowed if a != "*") if o}
        self.public = {o for o in (normalize_origin(p) for p in public) if o}
        self.scheme = "https" if tls else "http"

    def allows(self, origin: str | None, host: str) -> bool:
        """Whether a request with ``Origin: origin`` and ``Host: host`` may proceed."""
        if origin is None:
            return True
        if self.any:
            return True
        normal = normalize_origin(origin)
        if normal is None:
            return False  # "null" (sandboxed frames, files) and anything malformed
        if normal in self.allowed or normal in self.public:
            return True
        own = normalize_origin(f"{self.scheme}://{host}")
        return (
            normal == own
            and own is not None
            and _literal_or_localhost(urlsplit(own).hostname or "")
        )
