"""The start-up banner of ``digiclinic serve`` (signaling/banner.py): URLs and commands."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from signaling.banner import Commands, banner_lines, browsable_host, commands_here
from signaling.config import Config, IssuerConfig, Secret


@pytest.mark.parametrize(
    ("host", "shown"),
    [
        ("0.0.0.0", "localhost"),
        ("::", "localhost"),
        ("[::]", "localhost"),
        ("", "localhost"),
        ("127.0.0.1", "127.0.0.1"),
        ("::1", "[::1]"),
        ("[::1]", "[::1]"),
        ("10.0.0.5", "10.0.0.5"),
        ("clinic.example", "clinic.example"),
    ],
)
def test_browsable_host(host: str, shown: str) -> None:
    assert browsable_host(host) == shown


def test_commands_of_the_venv_in_the_current_directory(tmp_path: Path) -> None:
    (tmp_path / ".venv").mkdir()
    here = commands_here(tmp_path, str(tmp_path / ".venv"), "/usr", path_env="/usr/bin")
    assert here == Commands(".venv/bin/", in_venv=True)
    assert (here.digiclinic, here.python) == (".venv/bin/digiclinic", ".venv/bin/python")
    # even when it is also on PATH: that spelling works in any shell here
    on_path = f"{tmp_path / '.venv' / 'bin'}{os.pathsep}/usr/bin"
    assert commands_here(tmp_path, str(tmp_path / ".venv"), "/usr", on_path).bin_dir == ".venv/bin/"


def test_commands_of_a_venv_elsewhere(tmp_path: Path) -> None:
    venv, cwd = tmp_path / "opt" / "dc", tmp_path / "work"
    venv.mkdir(parents=True)
    cwd.mkdir()
    activated = commands_here(cwd, str(venv), "/usr", f"{venv / 'bin'}{os.pathsep}/usr/bin")
    assert (activated.digiclinic, activated.python) == ("digiclinic", "python")
    not_on_path = commands_here(cwd, str(venv), "/usr", "/usr/bin")
    assert not_on_path.digiclinic == f"{venv.resolve()}/bin/digiclinic"


def test_commands_without_a_venv(tmp_path: Path) -> None:
    plain = commands_here(tmp_path, "/usr", "/usr", "/usr/bin")
    assert (plain.digiclinic, plain.python) == ("digiclinic", "python3")


def _config(**server: object) -> Config:
    config = Config()
    for key, value in server.items():
        setattr(config.server, key, value)
    return config


VENV = Commands(".venv/bin/", in_venv=True)


def test_banner_of_the_default_setup() -> None:
    lines = banner_lines(_config(), scheme="http", port=8080, commands=VENV)
    assert lines == [
        "digiclinic listening on http://127.0.0.1:8080",
        "  health:  http://127.0.0.1:8080/healthz   metrics: http://127.0.0.1:8080/metrics",
        "  demo:    open http://127.0.0.1:8080/ (patient, specialist and console, in several tabs)",
        "  try it:  .venv/bin/python -m signaling.demo_call --url ws://127.0.0.1:8080/ws"
        "   (a scripted 3-party consult)",
        "  tokens:  .venv/bin/digiclinic token --room demo --identity alice --role patient",
    ]


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_banner_on_all_interfaces(host: str) -> None:
    text = "\n".join(banner_lines(_config(host=host), scheme="https", port=8443, commands=VENV))
    assert "https://0.0.0.0" not in text and "https://::" not in text
    assert f"listening on https://localhost:8443 (all interfaces: {host}, port 8443)" in text
    assert "--url wss://localhost:8443/ws" in text


def test_banner_quotes_the_config_path_and_prints_no_secret() -> None:
    config = _config()
    config.admin.token = Secret("admin-secret-value")
    lines = banner_lines(
        config, scheme="http", port=8080, config_path="my conf.yaml", commands=VENV
    )
    text = "\n".join(lines)
    assert ".venv/bin/digiclinic --config 'my conf.yaml' token" in text
    assert "admin-secret-value" not in text


def test_banner_with_portal_issuers_has_no_demo_nor_dev_commands() -> None:
    config = _config()
    config.auth.issuers = [IssuerConfig(id="portal", secret=Secret("portal-secret"))]
    text = "\n".join(banner_lines(config, scheme="http", port=8080, commands=VENV))
    assert "demo" not in text and "token" not in text and "portal-secret" not in text
