"""Unit tests for signaling/turn_config.py and ``digiclinic turn-config``.

The rendered production config is parsed line by line, and its peer rules are
checked twice: with the ``ipaddress`` module (is every special-purpose address
inside a denied range?) and with a model of how coturn 4.6.1 itself matches
peers (``good_peer_addr``/``ioa_addr_in_range``, read from Debian's 4.6.1
build), so that a rule which looks right but which coturn reads differently
fails here: coturn treats an unspecified range bound as a wildcard, so
``denied-peer-ip=::`` would refuse every peer.
"""

from __future__ import annotations

import ipaddress
import os
import stat
import sys
from pathlib import Path

import pytest

from signaling.cli import main
from signaling.config import ConfigError, Secret, TurnConfig
from signaling.turn_config import (
    COTURN_BUILTIN_DENIED,
    DENIED_PEER_RANGES,
    TEMPLATE,
    render_coturn_config,
    write_coturn_config,
)

REPO = Path(__file__).resolve().parents[2]
NEW_SECRET = "test-only-new-3b1f0c9a7d2e4f68a5c1"
OLD_SECRET = "test-only-old-9e8d7c6b5a49382716f0"
MEDIA_SERVER = "10.20.0.5"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def production_turn(**overrides: object) -> TurnConfig:
    values: dict[str, object] = {
        "secrets": [Secret(NEW_SECRET), Secret(OLD_SECRET)],
        "urls": ["turn:turn.example.org:3478?transport=udp"],
        "realm": "turn.example.org",
        "user_quota": 8,
        "total_quota": 400,
        "max_bps": 2_000_000,
        "relay_port_min": 50000,
        "relay_port_max": 59999,
        "cert_file": "/etc/coturn/fullchain.pem",
        "pkey_file": "/etc/coturn/privkey.pem",
        "allowed_peer_ips": [MEDIA_SERVER],
        "external_ip": "203.0.113.10",
    }
    values.update(overrides)
    return TurnConfig(**values)  # type: ignore[arg-type]


def directives(text: str) -> list[tuple[str, str]]:
    """(name, value) per non-comment line; coturn splits at the first ' ' or '='."""
    out: list[tuple[str, str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        cut = min((i for i in (line.find("="), line.find(" ")) if i >= 0), default=len(line))
        out.append((line[:cut], line[cut:].lstrip(" =")))
    return out


def values(text: str, name: str) -> list[str]:
    return [v for n, v in directives(text) if n == name]


def one(text: str, name: str) -> str:
    found = values(text, name)
    assert len(found) == 1, f"{name}: {found}"
    return found[0]


def inside(address: str | Address, lo: Address, hi: Address) -> bool:
    addr = ipaddress.ip_address(address)
    return addr.version == lo.version and int(lo) <= int(addr) <= int(hi)


def ranges(text: str, name: str) -> list[tuple[Address, Address]]:
    out = []
    for value in values(text, name):
        lo, _, hi = value.partition("-")
        out.append((ipaddress.ip_address(lo), ipaddress.ip_address(hi or lo)))
    return out


# --- a model of coturn 4.6.1's peer check ----------------------------------

_FAMILY = {4: 2, 6: 10}  # AF_INET, AF_INET6: coturn orders mixed families by these


def _less_eq(a: Address, b: Address) -> bool:
    if a.version != b.version:
        return _FAMILY[a.version] < _FAMILY[b.version]
    if a.version == 4:
        return int(a) <= int(b)
    return all(x <= y for x, y in zip(a.packed, b.packed, strict=True))  # byte by byte


def _in_range(lo: Address, hi: Address, addr: Address) -> bool:
    # an unspecified bound (addr_any) is a wildcard
    if lo.is_unspecified or _less_eq(lo, addr):
        return hi.is_unspecified or _less_eq(addr, hi)
    return False


def coturn_relays(text: str, peer: str) -> bool:
    """Would coturn 4.6.1 with this config relay to ``peer``?"""
    addr = ipaddress.ip_address(peer)
    first = addr.packed[0]
    names = {n for n, _ in directives(text)}
    multicast = first > 223 if addr.version == 4 else first == 0xFF
    loopback = first == 127 if addr.version == 4 else int(addr) == 1
    zero = first == 0 if addr.version == 4 else int(addr) == 0
    if ("no-multicast-peers" in names and multicast) or zero:
        return False
    if "allow-loopback-peers" not in names and loopback:
        return False
    if any(_in_range(lo, hi, addr) for lo, hi in ranges(text, "allowed-peer-ip")):
        return True
    return not any(_in_range(lo, hi, addr) for lo, hi in ranges(text, "denied-peer-ip"))


# --- fixtures ------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered() -> str:
    return render_coturn_config(production_turn())


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("DIGICLINIC_"):
            monkeypatch.delenv(key)


def write_yaml(tmp_path: Path, secrets: list[str]) -> Path:
    path = tmp_path / "digiclinic.yaml"
    secret_list = ", ".join(f'"{s}"' for s in secrets)
    path.write_text(
        "turn:\n"
        f"  secrets: [{secret_list}]\n"
        "  realm: turn.example.org\n"
        f'  allowed_peer_ips: ["{MEDIA_SERVER}"]\n'
        '  external_ip: "203.0.113.10"\n'
    )
    return path


# --- the template ----------------------------------------------------------------


def test_template_file_is_the_module_template() -> None:
    assert (REPO / "turn-config" / "turnserver.conf.template").read_text() == TEMPLATE


def test_template_holds_placeholders_not_secrets() -> None:
    assert "allow-loopback-peers" not in TEMPLATE
    assert values(TEMPLATE, "static-auth-secret") == []
    assert "{{static_auth_secrets}}" in TEMPLATE.splitlines()
    assert NEW_SECRET not in TEMPLATE and OLD_SECRET not in TEMPLATE


# --- peer rules --------------------------------------------------------------------


def test_every_denied_range_is_a_denied_peer_ip_line(rendered: str) -> None:
    lines = values(rendered, "denied-peer-ip")
    for cidr, _reason in DENIED_PEER_RANGES:
        net = ipaddress.ip_network(cidr)
        assert f"{net.network_address}-{net.broadcast_address}" in lines, cidr
    assert len(lines) == len(DENIED_PEER_RANGES)


def test_denied_ranges_are_cidr_aligned_without_wildcard_bounds(rendered: str) -> None:
    for lo, hi in ranges(rendered, "denied-peer-ip"):
        # coturn compares IPv6 bounds byte by byte: exact for CIDR blocks only
        assert len(list(ipaddress.summarize_address_range(lo, hi))) == 1, (lo, hi)
        assert not hi.is_unspecified
        assert not (lo.version == 6 and lo.is_unspecified), "a range from :: matches all IPv4"


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",
        "172.16.5.4",
        "192.168.1.1",
        "127.0.0.1",
        "169.254.1.1",
        "169.254.169.254",
        "100.64.1.1",
        "192.0.2.1",
        "198.51.100.1",
        "203.0.113.1",
        "198.18.0.1",
        "0.1.2.3",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "fc00::1",
        "fd12::1",
        "fe80::1",
        "::ffff:10.0.0.1",
        "::ffff:127.0.0.1",
        "64:ff9b::a00:1",
        "2001:db8::1",
        "2002:a00:1::1",
        "2001:0:a00:1::1",
        "ff02::1",
    ],
)
def test_special_purpose_address_is_denied(rendered: str, address: str) -> None:
    assert any(inside(address, lo, hi) for lo, hi in ranges(rendered, "denied-peer-ip"))
    assert not coturn_relays(rendered, address)


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "2001:4860::8888"])
def test_public_address_is_relayed(rendered: str, address: str) -> None:
    assert not any(inside(address, lo, hi) for lo, hi in ranges(rendered, "denied-peer-ip"))
    assert coturn_relays(rendered, address)


def test_media_server_address_is_re_allowed(rendered: str) -> None:
    assert values(rendered, "allowed-peer-ip") == [MEDIA_SERVER]
    assert coturn_relays(rendered, MEDIA_SERVER)
    assert not coturn_relays(rendered, "10.20.0.6")


def test_unspecified_addresses_are_refused_by_coturn_itself(rendered: str) -> None:
    builtin = [ipaddress.ip_network(cidr) for cidr, _ in COTURN_BUILTIN_DENIED]
    for address in ("::", "0.0.0.0", "127.0.0.1", "::1", "224.0.0.1", "ff02::1"):
        addr = ipaddress.ip_address(address)
        assert any(addr in net for net in builtin), address
        assert not coturn_relays(rendered, address)


def test_model_reproduces_the_wildcard_trap(rendered: str) -> None:
    # why "::/128" is not written as a rule: coturn would then refuse everyone
    trapped = rendered + "denied-peer-ip=::-::\n"
    assert not coturn_relays(trapped, "8.8.8.8")
    assert not coturn_relays(trapped, "2606:4700::1111")
    from_zero = rendered + "denied-peer-ip=::-::ffff:ffff\n"  # "::/96" as a range
    assert not coturn_relays(from_zero, "8.8.8.8")


# --- the other directives ------------------------------------------------------------


def test_no_loopback_override_and_no_admin_interfaces(rendered: str) -> None:
    names = [n for n, _ in directives(rendered)]
    assert "allow-loopback-peers" not in rendered
    for forbidden in ("cli-password", "web-admin", "no-auth", "server-relay", "lt-cred-mech"):
        assert forbidden not in names
    assert not [n for n in names if n.startswith("web-admin")]
    assert "no-cli" in names


def test_rest_api_auth_with_every_secret(rendered: str) -> None:
    names = [n for n, _ in directives(rendered)]
    assert "use-auth-secret" in names
    assert values(rendered, "static-auth-secret") == [NEW_SECRET, OLD_SECRET]
    assert one(rendered, "realm") == "turn.example.org"


def test_hardening_and_configured_values(rendered: str) -> None:
    names = [n for n, _ in directives(rendered)]
    for flag in (
        "fingerprint",
        "no-multicast-peers",
        "no-tlsv1",
        "no-tlsv1_1",
        "no-dtls",
        "no-tcp-relay",
        "no-software-attribute",
        "no-rfc5780",
    ):
        assert names.count(flag) == 1, flag
    assert one(rendered, "stale-nonce") == "600"
    assert one(rendered, "user-quota") == "8"
    assert one(rendered, "total-quota") == "400"
    assert one(rendered, "max-bps") == "250000"  # bytes/s: turn.max_bps is bit/s
    assert one(rendered, "listening-port") == "3478"
    assert one(rendered, "tls-listening-port") == "443"
    assert one(rendered, "cert") == "/etc/coturn/fullchain.pem"
    assert one(rendered, "pkey") == "/etc/coturn/privkey.pem"
    assert one(rendered, "min-port") == "50000"
    assert one(rendered, "max-port") == "59999"
    assert one(rendered, "external-ip") == "203.0.113.10"
    assert "{{" not in rendered


def test_optional_parts_left_out() -> None:
    text = render_coturn_config(production_turn(allowed_peer_ips=[], external_ip=None))
    assert values(text, "allowed-peer-ip") == []
    assert values(text, "external-ip") == []
    assert not coturn_relays(text, MEDIA_SERVER)


def test_allowed_network_and_nat_mapping() -> None:
    text = render_coturn_config(
        production_turn(allowed_peer_ips=["10.20.0.0/29"], external_ip="203.0.113.10/10.20.0.9")
    )
    assert values(text, "allowed-peer-ip") == ["10.20.0.0-10.20.0.7"]
    assert one(text, "external-ip") == "203.0.113.10/10.20.0.9"


# --- refusals ------------------------------------------------------------------------


def test_no_secrets_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"turn\.secrets"):
        render_coturn_config(production_turn(secrets=[]))


@pytest.mark.parametrize(
    "overrides",
    [
        {"secrets": [Secret("")]},
        {"secrets": [Secret(NEW_SECRET + "\nallow-loopback-peers")]},
        {"secrets": [Secret('"' + NEW_SECRET)]},
        {"realm": "example.org\nallow-loopback-peers"},
        {"realm": "two words"},
        {"cert_file": "/etc/coturn/cert.pem\nno-auth"},
        {"allowed_peer_ips": ["0.0.0.0/0"]},
        {"allowed_peer_ips": ["::/0"]},
        {"allowed_peer_ips": ["127.0.0.1"]},
        {"allowed_peer_ips": ["10.0.0.1-10.0.0.9"]},
        {"allowed_peer_ips": ["10.20.0.5/24"]},
        {"allowed_peer_ips": ["media.internal"]},
        {"external_ip": "turn.example.org"},
        {"external_ip": "203.0.113.10/fd00::1"},
        {"listening_port": 443},
        {"relay_port_min": 3000},
        {"max_bps": -1},
    ],
)
def test_unsafe_values_are_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(ConfigError) as info:
        render_coturn_config(production_turn(**overrides))
    assert NEW_SECRET not in str(info.value)


# --- writing the file ----------------------------------------------------------------


def test_write_creates_mode_0600_atomically(tmp_path: Path) -> None:
    target = tmp_path / "turnserver.conf"
    target.write_text("old\n")
    target.chmod(0o644)
    write_coturn_config(production_turn(), target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_text() == render_coturn_config(production_turn())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["turnserver.conf"]


def test_write_leaves_the_old_file_when_rendering_fails(tmp_path: Path) -> None:
    target = tmp_path / "turnserver.conf"
    target.write_text("old\n")
    with pytest.raises(ConfigError):
        write_coturn_config(production_turn(secrets=[]), target)
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["turnserver.conf"]


# --- the command line ------------------------------------------------------------------


@pytest.mark.usefixtures("clean_env")
def test_cli_writes_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_yaml(tmp_path, [NEW_SECRET, OLD_SECRET])
    out = tmp_path / "etc" / "turnserver.conf"
    out.parent.mkdir()
    assert main(["--config", str(config), "turn-config", "--output", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    text = out.read_text()
    assert values(text, "static-auth-secret") == [NEW_SECRET, OLD_SECRET]
    assert values(text, "allowed-peer-ip") == [MEDIA_SERVER]
    captured = capsys.readouterr()
    assert NEW_SECRET not in captured.out + captured.err


@pytest.mark.usefixtures("clean_env")
def test_cli_refuses_to_print_to_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_yaml(tmp_path, [NEW_SECRET])
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)  # capsys's stream, restored after
    assert main(["--config", str(config), "turn-config"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "--output" in captured.err
    assert NEW_SECRET not in captured.err


@pytest.mark.usefixtures("clean_env")
def test_cli_prints_to_a_pipe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_yaml(tmp_path, [NEW_SECRET])
    assert main(["--config", str(config), "turn-config"]) == 0
    assert values(capsys.readouterr().out, "static-auth-secret") == [NEW_SECRET]


@pytest.mark.usefixtures("clean_env")
def test_cli_without_secrets_fails_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_yaml(tmp_path, [])
    out = tmp_path / "turnserver.conf"
    assert main(["--config", str(config), "turn-config", "--output", str(out)]) == 2
    assert "turn.secrets is empty" in capsys.readouterr().err
    assert not out.exists()
