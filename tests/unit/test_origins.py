"""signaling/origins.py: which browser origins may call the server, and their config."""

from __future__ import annotations

import pytest

from signaling.config import ConfigError, load_config
from signaling.origins import OriginPolicy, normalize_origin


def test_origins_are_compared_whole_and_canonical() -> None:
    assert normalize_origin("HTTPS://Media.Example:443/") == "https://media.example"
    assert normalize_origin("wss://media.example:8443") == "https://media.example:8443"
    assert normalize_origin("null") is None
    policy = OriginPolicy(["https://portal.example"], ["https://media.example"], tls=False)
    assert policy.allows("https://portal.example:443", "anything")
    assert policy.allows("http://127.0.0.1:8080", "127.0.0.1:8080")
    assert not policy.allows("http://evil.example:8080", "evil.example:8080")


@pytest.mark.parametrize(
    "bad", ["media.hospital.example", "https://media.example/path", "ftp://x.example", "null"]
)
def test_an_origin_that_is_not_one_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="public_origins"):
        load_config(environ={}, overrides={"server": {"public_origins": [bad]}})
    with pytest.raises(ConfigError, match="allowed_origins"):
        load_config(environ={}, overrides={"server": {"allowed_origins": [bad]}})
