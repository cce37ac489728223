"""The `digiclinic` command line: `token` mints what the server accepts; flags override."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from sfu.participant import Role
from signaling.cli import _config_from, build_parser, main
from signaling.config import AuthConfig
from signaling.tokens import TokenVerifier, with_dev_issuer


def test_token_command_mints_a_token_the_server_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "c.yaml"
    config.write_text(f"auth:\n  dev_secret_file: {tmp_path / 'secret'}\n")
    args = [
        "--config",
        str(config),
        "token",
        "--room",
        "ward-1",
        "--identity",
        "dr-a",
        "--role",
        "specialist",
        "--name",
        "Dr A",
        "--deny",
        "record",
        "--ttl",
        "120",
    ]
    assert main(args) == 0
    token = capsys.readouterr().out.strip()
    verifier = TokenVerifier(with_dev_issuer(AuthConfig(dev_secret_file=str(tmp_path / "secret"))))
    claims = verifier.verify(token)
    assert (claims.room, claims.identity, claims.name, claims.role) == (
        "ward-1",
        "dr-a",
        "Dr A",
        Role.SPECIALIST,
    )
    assert claims.grants.admit and not claims.grants.record
    assert (tmp_path / "secret").stat().st_mode & 0o777 == 0o600


def test_serve_flags_override_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("server:\n  port: 7000\n  host: 127.0.0.2\n")
    monkeypatch.setenv("DIGICLINIC_SERVER__PORT", "7100")
    monkeypatch.setenv("DIGICLINIC_MEDIA__UDP_PORT_MIN", "41000")
    args = build_parser().parse_args(
        ["--config", str(config), "serve", "--port", "7200", "--ice-address", "127.0.0.1"]
    )
    loaded = _config_from(args)
    assert loaded.server.port == 7200  # flag beats env beats file
    assert loaded.server.host == "127.0.0.2"  # file
    assert loaded.media.udp_port_min == 41000  # env
    assert loaded.media.ice_addresses == ["127.0.0.1"]


def test_bad_config_exits_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("server:\n  prot: 1\n")
    assert main(["--config", str(config), "serve"]) == 2
    assert "unknown key(s) in server: prot" in capsys.readouterr().err


def test_parser_lists_both_commands() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert {"serve", "token"} <= set(sub.choices)
