"""coturn's turnserver.conf rendered from digiclinic's ``turn:`` section.

The TURN REST secret lives in digiclinic's configuration only;
``digiclinic turn-config`` (signaling/cli.py) renders coturn's file from it, so
the two never disagree. The template is :data:`TEMPLATE`, kept identical to
turn-config/turnserver.conf.template (the wheel ships only the Python package,
so the renderer carries its own copy; tests/unit/test_turn_config.py checks the
two match). turn-config/README.md is the operator's guide.

Written for coturn 4.6 (Debian 12's 4.6.1), whose peer checks were read from
that build: a peer is refused when it is multicast (``no-multicast-peers``),
loopback or unspecified (always, see :data:`COTURN_BUILTIN_DENIED`); otherwise
an ``allowed-peer-ip`` range admits it, a ``denied-peer-ip`` range refuses it,
and anything else is relayed. Range matching has two traps that the renderer
avoids: a bound equal to the unspecified address (``::`` or ``0.0.0.0``) is a
wildcard, so ``denied-peer-ip=::`` refuses every peer, IPv4 included; and IPv6
bounds are compared byte by byte, which is exact only for CIDR-aligned ranges.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import secrets as _secrets
from pathlib import Path

from signaling.config import ConfigError, TurnConfig

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Every special-purpose range a client must not reach through the relay,
# (CIDR, reason). Each becomes one ``denied-peer-ip=FROM-TO`` line.
DENIED_PEER_RANGES: list[tuple[str, str]] = [
    # IPv4 (IANA IPv4 Special-Purpose Address Registry)
    ("0.0.0.0/8", '"this network" (RFC 791)'),
    ("10.0.0.0/8", "private network (RFC 1918)"),
    ("100.64.0.0/10", "shared address space, carrier-grade NAT (RFC 6598)"),
    ("127.0.0.0/8", "loopback (RFC 1122)"),
    ("169.254.0.0/16", "link-local, incl. cloud metadata 169.254.169.254 (RFC 3927)"),
    ("172.16.0.0/12", "private network (RFC 1918)"),
    ("192.0.0.0/24", "IETF protocol assignments (RFC 6890)"),
    ("192.0.2.0/24", "documentation, TEST-NET-1 (RFC 5737)"),
    ("192.88.99.0/24", "6to4 relay anycast, deprecated (RFC 7526)"),
    ("192.168.0.0/16", "private network (RFC 1918)"),
    ("198.18.0.0/15", "benchmarking (RFC 2544)"),
    ("198.51.100.0/24", "documentation, TEST-NET-2 (RFC 5737)"),
    ("203.0.113.0/24", "documentation, TEST-NET-3 (RFC 5737)"),
    ("224.0.0.0/4", "multicast (RFC 5771)"),
    ("240.0.0.0/4", "reserved (RFC 1112)"),
    ("255.255.255.255/32", "limited broadcast (RFC 919)"),
    # IPv6 (IANA IPv6 Special-Purpose Address Registry). The unspecified
    # address :: is refused by coturn itself and cannot be written as a rule
    # (see COTURN_BUILTIN_DENIED).
    ("::1/128", "loopback (RFC 4291)"),
    ("::ffff:0:0/96", "IPv4-mapped: IPv4 hosts through a dual-stack socket (RFC 4291)"),
    ("64:ff9b::/96", "NAT64 well-known prefix: IPv4 hosts via a translator (RFC 6052)"),
    ("64:ff9b:1::/48", "NAT64 local-use prefix (RFC 8215)"),
    ("100::/64", "discard-only (RFC 6666)"),
    ("2001::/32", "Teredo tunnelling (RFC 4380)"),
    ("2001:2::/48", "benchmarking (RFC 5180)"),
    ("2001:db8::/32", "documentation (RFC 3849)"),
    ("2002::/16", "6to4: embeds an IPv4 address (RFC 3056)"),
    ("3fff::/20", "documentation (RFC 9637)"),
    ("fc00::/7", "unique local addresses (RFC 4193)"),
    ("fe80::/10", "link-local (RFC 4291)"),
    ("fec0::/10", "site-local, deprecated (RFC 3879)"),
    ("ff00::/8", "multicast (RFC 4291)"),
]

# Refused by coturn 4.6 before any allowed/denied rule, whatever the
# configuration says (unspecified and loopback always; multicast with
# no-multicast-peers, which the template sets).
COTURN_BUILTIN_DENIED: list[tuple[str, str]] = [
    ("0.0.0.0/8", "unspecified / this network"),
    ("127.0.0.0/8", "loopback"),
    ("224.0.0.0/3", "multicast and above (no-multicast-peers)"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("ff00::/8", "multicast (no-multicast-peers)"),
]

# Directives that must never appear in a production config.
FORBIDDEN_DIRECTIVES = (
    "allow-loopback-peers",
    "no-auth",
    "server-relay",
    "cli-password",
    "web-admin",
    "web-admin-ip",
    "web-admin-port",
    "web-admin-listen-on-workers",
)

_PLACEHOLDER = re.compile(r"\{\{([a-z_]+)\}\}")
# coturn: the name runs to the first space, tab or "="; any run of those follows
_DIRECTIVE = re.compile(r"([^ =\t]+)[ =\t]*(.*)")
_BLOCKS = ("static_auth_secrets", "external_ip", "denied_peer_ips", "allowed_peer_ips")
_SECRET_MAX = 512
_REALM_MAX = 127  # STUN REALM: fewer than 128 characters (RFC 5389)
_PATH_MAX = 1000  # well within coturn's fixed-size buffers

TEMPLATE = """\
# coturn 4.6 configuration for digiclinic's TURN relay (guide: turn-config/README.md).
#
# This is a template: `digiclinic --config CONFIG turn-config --output FILE`
# fills each double-braced placeholder from the `turn:` section of
# digiclinic's own configuration, so the shared secret is written in one
# place only. Change that section and render again instead of editing the
# rendered file.
# The rendered file contains the TURN secrets: it is written with mode 0600
# and must be readable only by the user coturn runs as.

# ----------------------------------------------------------------------------
# Listeners
# ----------------------------------------------------------------------------
# Plain TURN on UDP and TCP (turn:HOST:PORT?transport=udp and ?transport=tcp).
listening-port={{listening_port}}

# TURN over TLS (turns:HOST:443?transport=tcp) for networks that let only
# HTTPS out. A port below 1024 needs root or CAP_NET_BIND_SERVICE.
tls-listening-port={{tls_listening_port}}
cert={{cert_file}}
pkey={{pkey_file}}

# TLS 1.2 and later only.
no-tlsv1
no-tlsv1_1

# Browsers never speak TURN over DTLS: no DTLS listener, so UDP on the TLS
# port stays closed.
no-dtls

# Public address of this server when it sits behind a NAT (turn.external_ip).
{{external_ip}}

# ----------------------------------------------------------------------------
# Relay endpoints
# ----------------------------------------------------------------------------
# UDP ports coturn relays media on (open them in the firewall).
min-port={{relay_port_min}}
max-port={{relay_port_max}}

# WebRTC relays UDP only: refuse TCP relay allocations (RFC 6062), which would
# let a client open TCP connections from this server.
no-tcp-relay

# ----------------------------------------------------------------------------
# Authentication: TURN REST API (time-limited long-term credentials)
# ----------------------------------------------------------------------------
# digiclinic hands each admitted participant username "<expiry>:<id>" and
# password base64(HMAC-SHA1(secret, username)); coturn recomputes it. Every
# secret listed below is accepted, which is how secrets are rotated: the
# first of turn.secrets signs new credentials, older ones keep working
# until they are removed.
use-auth-secret
{{static_auth_secrets}}
realm={{realm}}

# FINGERPRINT attribute on every message (RFC 5389), as browsers send it.
fingerprint

# A nonce lives 10 minutes; afterwards clients re-authenticate (438 error).
stale-nonce=600

# ----------------------------------------------------------------------------
# Quotas
# ----------------------------------------------------------------------------
# Allocations per username (one participant's credential) and in total.
user-quota={{user_quota}}
total-quota={{total_quota}}

# Bandwidth per allocation, in BYTES per second (coturn's unit):
# turn.max_bps, which is in bits per second, divided by 8.
max-bps={{max_bytes_per_second}}

# ----------------------------------------------------------------------------
# Peers: whom a client may relay to
# ----------------------------------------------------------------------------
# Without these rules any holder of a credential could use this server as a
# proxy into the networks it can reach (its LAN, cloud metadata services, the
# hosts next to it). Relayed media only ever needs public addresses, plus the
# media server's own address when that is private (allowed-peer-ip below).
#
# coturn 4.6 itself refuses the unspecified addresses (0.0.0.0/8 and ::) and
# loopback (127.0.0.0/8, ::1) as peers, before and regardless of any rule
# below; an allowed-peer-ip line cannot re-allow them.
no-multicast-peers

# Special-purpose ranges (IANA IPv4 and IPv6 special-purpose registries),
# each as coturn's FROM-TO range. No range may start at "::": coturn 4.6
# treats an unspecified bound as a wildcard, so such a rule would deny every
# IPv4 peer ("::" alone: every peer).
{{denied_peer_ips}}

# Addresses re-allowed although a rule above denies them (turn.allowed_peer_ips),
# e.g. the media server's private address when coturn reaches it over a LAN.
# coturn checks these before the denied ranges.
{{allowed_peer_ips}}

# ----------------------------------------------------------------------------
# STUN hardening (smaller responses, less use as a reflection amplifier)
# ----------------------------------------------------------------------------
no-rfc5780
no-stun-backward-compatibility
response-origin-only-with-rfc5780

# Do not announce coturn's version in the SOFTWARE attribute.
no-software-attribute

# ----------------------------------------------------------------------------
# Administration
# ----------------------------------------------------------------------------
# No telnet CLI, and therefore no CLI password. The web admin interface is
# left off (coturn enables it only on request).
no-cli
"""


def coturn_range(network: IPNetwork) -> str:
    """coturn's FROM-TO form of a network: ``10.0.0.0-10.255.255.255``."""
    return f"{network.network_address}-{network.broadcast_address}"


def _unsafe_bound(network: IPNetwork) -> bool:
    # coturn treats an unspecified bound as a wildcard: a range starting at ::
    # would match every IPv4 peer, and one ending at the unspecified address
    # every peer. 0.0.0.0/8 (lower bound 0.0.0.0) stays exact for IPv4 peers
    # and never matches IPv6 ones, so it is safe.
    return network.broadcast_address.is_unspecified or (
        network.version == 6 and network.network_address.is_unspecified
    )


def _builtin_networks(version: int) -> list[IPNetwork]:
    networks = (ipaddress.ip_network(cidr) for cidr, _ in COTURN_BUILTIN_DENIED)
    return [n for n in networks if n.version == version]


def _denied_lines() -> list[str]:
    lines: list[str] = []
    for cidr, reason in DENIED_PEER_RANGES:
        network = ipaddress.ip_network(cidr)
        if _unsafe_bound(network):  # pragma: no cover - guards edits of the table
            raise AssertionError(f"{cidr} cannot be a coturn range (wildcard bound)")
        lines.append(f"# {cidr}: {reason}")
        lines.append(f"denied-peer-ip={coturn_range(network)}")
    return lines


def _check_text(name: str, value: object, limit: int, *, spaces: bool) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name} must be a non-empty string")
    if len(value) > limit:
        raise ConfigError(f"{name} is longer than {limit} characters")
    if not value.isprintable() or value != value.strip():
        raise ConfigError(
            f"{name} must be one line without control characters or surrounding spaces"
        )
    if not spaces and any(c.isspace() for c in value):
        raise ConfigError(f"{name} must not contain spaces")
    if value[0] in '"=':
        # coturn strips a leading quote and skips leading '=' of a value
        raise ConfigError(f"{name} must not start with a quote or '='")
    if value.endswith(";"):
        raise ConfigError(f"{name} must not end with ';' (coturn flags such lines)")
    return value


def _check_port(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= 65535:
        raise ConfigError(f"{name} must be a port number between 1 and 65535")
    return value


def _check_count(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{name} must be a whole number, 0 or more (0: unlimited)")
    return value


def _parse_ip(name: str, text: str) -> IPAddress:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ConfigError(f"{name}: {text!r} is not an IP address") from None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        raise ConfigError(f"{name}: {text!r}: zone indexes are not supported")
    return address


def _external_ip(turn: TurnConfig) -> str:
    if not turn.external_ip:
        return "# (not set: turn.external_ip is empty)"
    value = turn.external_ip.strip()
    parts = value.split("/")
    if len(parts) > 2:
        raise ConfigError("turn.external_ip must be PUBLIC or PUBLIC/PRIVATE")
    addresses = [_parse_ip("turn.external_ip", part.strip()) for part in parts]
    if len({a.version for a in addresses}) > 1:
        raise ConfigError("turn.external_ip: PUBLIC and PRIVATE must be of the same family")
    for address in addresses:
        if address.is_unspecified or address.is_multicast or address.is_loopback:
            raise ConfigError(f"turn.external_ip: {address} cannot be this server's address")
    return "external-ip=" + "/".join(str(a) for a in addresses)


def _allowed_lines(turn: TurnConfig) -> list[str]:
    lines: list[str] = []
    for entry in turn.allowed_peer_ips:
        name = "turn.allowed_peer_ips"
        text = entry.strip() if isinstance(entry, str) else ""
        if not text:
            raise ConfigError(f"{name} entries must be IP addresses or CIDR networks")
        if "-" in text:
            raise ConfigError(
                f"{name}: {text!r}: write a single address or a CIDR network, not a range"
            )
        if "/" in text:
            try:
                network: IPNetwork = ipaddress.ip_network(text, strict=True)
            except ValueError as exc:
                raise ConfigError(f"{name}: {text!r} is not a CIDR network ({exc})") from None
        else:
            address = _parse_ip(name, text)
            network = ipaddress.ip_network(address)
        first, last = network.network_address, network.broadcast_address
        if first.is_unspecified:
            raise ConfigError(
                f"{name}: {text!r} starts at the unspecified address, which coturn reads as "
                "a wildcard: it would re-allow every peer"
            )
        if any(network.overlaps(builtin) for builtin in _builtin_networks(network.version)):
            raise ConfigError(
                f"{name}: {text!r} overlaps loopback or multicast addresses, which coturn "
                "refuses before it reads allowed-peer-ip; list only the addresses to re-allow"
            )
        value = str(first) if first == last else coturn_range(network)
        lines.append(f"allowed-peer-ip={value}")
    return lines or ["# (none: turn.allowed_peer_ips is empty)"]


def _values(turn: TurnConfig) -> dict[str, str]:
    if not turn.secrets:
        raise ConfigError(
            "turn.secrets is empty: coturn's config needs at least one shared secret "
            "(static-auth-secret); add a long random string to turn.secrets"
        )
    secret_lines = []
    for i, secret in enumerate(turn.secrets):
        value = secret.reveal()
        # the checks name the entry, never its value
        _check_text(f"turn.secrets[{i}]", value, _SECRET_MAX, spaces=True)
        secret_lines.append(f"static-auth-secret={value}")
    listening = _check_port("turn.listening_port", turn.listening_port)
    tls = _check_port("turn.tls_listening_port", turn.tls_listening_port)
    if listening == tls:
        raise ConfigError("turn.listening_port and turn.tls_listening_port must differ")
    relay_min = _check_port("turn.relay_port_min", turn.relay_port_min)
    relay_max = _check_port("turn.relay_port_max", turn.relay_port_max)
    if relay_min > relay_max:
        raise ConfigError("turn.relay_port_min must not exceed turn.relay_port_max")
    for name, port in (("listening_port", listening), ("tls_listening_port", tls)):
        if relay_min <= port <= relay_max:
            raise ConfigError(f"turn.{name} must lie outside the relay port range")
    max_bps = _check_count("turn.max_bps", turn.max_bps)
    return {
        "listening_port": str(listening),
        "tls_listening_port": str(tls),
        "cert_file": _check_text("turn.cert_file", turn.cert_file, _PATH_MAX, spaces=True),
        "pkey_file": _check_text("turn.pkey_file", turn.pkey_file, _PATH_MAX, spaces=True),
        "external_ip": _external_ip(turn),
        "relay_port_min": str(relay_min),
        "relay_port_max": str(relay_max),
        "static_auth_secrets": "\n".join(secret_lines),
        "realm": _check_text("turn.realm", turn.realm, _REALM_MAX, spaces=False),
        "user_quota": str(_check_count("turn.user_quota", turn.user_quota)),
        "total_quota": str(_check_count("turn.total_quota", turn.total_quota)),
        # coturn's max-bps is bytes per second; turn.max_bps is bits per second
        "max_bytes_per_second": str(-(-max_bps // 8)),
        "denied_peer_ips": "\n".join(_denied_lines()),
        "allowed_peer_ips": "\n".join(_allowed_lines(turn)),
    }


def _fill(template: str, values: dict[str, str]) -> str:
    used: set[str] = set()

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"template placeholder {{{{{name}}}}} has no value")
        used.add(name)
        return values[name]

    out: list[str] = []
    for line in template.splitlines():
        block = _PLACEHOLDER.fullmatch(line.strip())
        if block and block.group(1) in _BLOCKS:
            out.append(value(block))
        elif any(m.group(1) in _BLOCKS for m in _PLACEHOLDER.finditer(line)):
            raise KeyError(f"block placeholder must stand alone on its line: {line!r}")
        else:
            out.append(_PLACEHOLDER.sub(value, line))
    missing = set(values) - used
    if missing:
        raise KeyError(f"template lacks placeholder(s): {', '.join(sorted(missing))}")
    return "\n".join(out) + "\n"


def directives(text: str) -> list[tuple[str, str]]:
    """(name, value) of each non-comment line, split the way coturn splits them."""
    found: list[tuple[str, str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _DIRECTIVE.match(line)
        if match:
            found.append((match.group(1), match.group(2)))
    return found


def render_coturn_config(turn: TurnConfig) -> str:
    """coturn's turnserver.conf for ``turn``; contains the secrets in clear."""
    text = _fill(TEMPLATE, _values(turn))
    bad = sorted({name for name, _ in directives(text) if name in FORBIDDEN_DIRECTIVES})
    if bad:  # pragma: no cover - the template and the value checks exclude them
        raise AssertionError(f"rendered config would contain {', '.join(bad)}")
    return text


def write_coturn_config(turn: TurnConfig, path: str | os.PathLike[str]) -> Path:
    """Render and write ``path`` atomically with mode 0600.

    The file is created under a temporary name in the same directory
    (O_CREAT|O_EXCL, mode 0600: the secrets are never readable by others, not
    even briefly) and renamed over ``path``. When ``path`` already exists its
    owner and group are kept, so a file chown'ed to coturn's user stays
    readable by coturn after each re-render.
    """
    text = render_coturn_config(turn)  # nothing is written when this fails
    target = Path(path)
    previous: os.stat_result | None = None
    with contextlib.suppress(FileNotFoundError):
        previous = os.stat(target)
    tmp = target.with_name(f".{target.name}.{_secrets.token_hex(6)}.tmp")
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)  # exactly 0600 whatever the umask
            if previous is not None:
                mine = os.fstat(handle.fileno())
                owner = (previous.st_uid, previous.st_gid)
                if (mine.st_uid, mine.st_gid) != owner:
                    try:
                        os.fchown(handle.fileno(), *owner)
                    except PermissionError:
                        raise PermissionError(
                            f"cannot keep {target}'s owner {owner[0]}:{owner[1]} "
                            "(run as root or as that user)"
                        ) from None
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return target
