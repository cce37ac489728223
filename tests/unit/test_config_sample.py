"""config.sample.yaml stays in step with signaling/config.py.

(a) Loading the sample gives exactly the defaults (its uncommented values are
the defaults); (b) every field of every Config dataclass, nested ones and the
items of lists of dataclasses included, is named as a key in the sample
(commented-out examples count), so a new key without a sample entry fails.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from signaling.config import Config, Secret, load_config

SAMPLE = Path(__file__).resolve().parents[2] / "config.sample.yaml"


def _plain(value: Any) -> Any:
    """asdict() output with Secrets replaced by a comparable marker."""
    if isinstance(value, Secret):
        return ("Secret", value.reveal())
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _dataclass_types(tp: Any) -> Iterator[type]:
    """Dataclasses reachable from a field type: X, X | None, list[X], dict[..., X]."""
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        yield tp
        return
    if typing.get_origin(tp) in (list, dict, typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            yield from _dataclass_types(arg)


def _fields(cls: type, path: str = "") -> Iterator[tuple[str, str]]:
    """(dotted path, field name) of every field, recursively."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        dotted = f"{path}.{f.name}" if path else f.name
        yield dotted, f.name
        for inner in _dataclass_types(hints[f.name]):
            yield from _fields(inner, dotted)


def test_sample_file_exists() -> None:
    assert SAMPLE.is_file(), f"{SAMPLE} is missing"


def test_sample_equals_defaults() -> None:
    sample = _plain(dataclasses.asdict(load_config(SAMPLE, environ={})))
    default = _plain(dataclasses.asdict(load_config(None, environ={})))
    assert sample.keys() == default.keys()
    for section, defaults in default.items():
        assert sample[section].keys() == defaults.keys(), section
        for key, expected in defaults.items():
            got = sample[section][key]
            where = f"{section}.{key}"
            assert got == expected, f"{where}: sample has {got!r}, default is {expected!r}"
            assert type(got) is type(expected), f"{where}: {type(got)} != {type(expected)}"


def test_every_config_key_is_in_the_sample() -> None:
    text = SAMPLE.read_text()
    missing = []
    for dotted, name in _fields(Config):
        # "key:" at the start of a line, maybe commented out, maybe a list item
        pattern = rf"^[ \t]*(?:#[ \t]*)?(?:-[ \t]+)?{re.escape(name)}:"
        if not re.search(pattern, text, flags=re.MULTILINE):
            missing.append(dotted)
    assert not missing, f"keys missing from {SAMPLE.name}: {', '.join(missing)}"


def test_walk_reaches_nested_dataclasses() -> None:
    """Guard the walker itself: list items of issuers and ice_servers are visited."""
    paths = {dotted for dotted, _ in _fields(Config)}
    for expected in (
        "server.allowed_origins",
        "auth.issuers.public_key_file",
        "auth.issuers.secret",
        "media.ice_servers.credential",
        "logging.level",
    ):
        assert expected in paths


@pytest.mark.parametrize("section", [f.name for f in dataclasses.fields(Config)])
def test_section_is_uncommented(section: str) -> None:
    assert re.search(rf"^{section}:[ \t]*$", SAMPLE.read_text(), flags=re.MULTILINE)
