"""export-captures: verified captures as files plus a valid FHIR R4 (R4B models) Bundle."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from recording.audit import verify_file
from recording.captures import write_capture
from recording.cli import main
from recording.crypto_stream import RecipientKey, pem_pair
from recording.fhir_bundle import ExportedCapture, InvalidFHIR, build_bundle, parse_bundle
from recording.signing import load_signer

SIGNING = Ed25519PrivateKey.generate()  # the server's signing key
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 40 + b"\xff\xd9"
WEBM = b"\x1aE\xdf\xa3" + b"webm cluster " * 900
CONSENT = {
    "policy": "patient",
    "given_at": "2026-03-02T09:58:11Z",
    "given_by": [
        {"identity": "pat-77", "name": "Patient Seven", "role": "patient"},
        {"identity": "doc-1", "name": "Dr One", "role": "specialist"},
    ],
}
HEALTH_WORKER = {"identity": "hw-5", "name": "Health Worker", "role": "health_worker"}
SPECIALIST = {"identity": "doc-1", "name": "Dr One", "role": "specialist"}


def description(capture_id: str, data: bytes, **fields: Any) -> dict[str, Any]:
    return {
        "capture_id": capture_id,
        "kind": "photo",
        "mime": "image/jpeg",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "width": 4032,
        "height": 3024,
        "duration_ms": None,
        "note": "left forearm, day 3",
        "taken_at": "2026-03-02T10:01:02Z",
        "room": "ward-3",
        "hospital": "hosp-a",
        "sender": HEALTH_WORKER,
        "requested_by": SPECIALIST,
        "patient": {"identity": "pat-77", "name": "Patient Seven"},
        "consent": CONSENT,
        **fields,
    }


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.key, self.pub = tmp_path / "h.key", tmp_path / "h.pub"
        assert main(["keygen", "--private", str(self.key), "--public", str(self.pub)]) == 0
        self.akey, self.apub = tmp_path / "a.key", tmp_path / "a.pub"
        main(["keygen", "--kind", "audit", "--private", str(self.akey), "--public", str(self.apub)])
        self.signer = tmp_path / "server.pub"
        self.signer.write_bytes(pem_pair(SIGNING)[1])
        self.captures = tmp_path / "captures"
        self.captures.mkdir()

    def write(
        self, capture_id: str, data: bytes, room: str = "hosp-a/ward-3", **fields: Any
    ) -> Path:
        hospital, _, name = room.partition("/")
        write_capture(
            self.captures,
            capture_id,
            description(capture_id, data, room=name, hospital=hospital, **fields),
            data,
            recipients=[RecipientKey.from_pem("h", self.pub.read_bytes())],
            signing_key=SIGNING,
            header={"room": room, "participant": "p-hw", "role": "health_worker"},
        )
        return self.captures / f"capture-{capture_id}.rec"

    def export(self, out: str, *extra: str) -> int:
        return main(
            [
                "export-captures",
                str(self.captures),
                "--key",
                str(self.key),
                "--signer",
                str(self.signer),
                "--output",
                str(self.tmp / out),
                *extra,
            ]
        )


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    s = Setup(tmp_path)
    s.write("c1", JPEG)
    s.write(
        "c2",
        WEBM,
        kind="clip",
        mime="video/webm",
        width=1280,
        height=720,
        duration_ms=8500,
        note=None,
        requested_by=None,
    )
    return s


def resources(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def sha1_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha1(data).digest()).decode()


def test_export_writes_files_and_a_valid_bundle(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    assert setup.export("out") == 0
    out = setup.tmp / "out"
    assert (out / "c1.jpg").read_bytes() == JPEG
    assert (out / "c2.webm").read_bytes() == WEBM
    for name in ("c1.jpg", "c2.webm", "bundle.json"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600
    printed = capsys.readouterr().out
    assert "Patient Seven" not in printed and "forearm" not in printed and "pat-77" not in printed

    text = (out / "bundle.json").read_text()
    bundle = json.loads(text)
    parsed = parse_bundle(text)  # validates with fhir.resources
    assert json.loads(parsed.model_dump_json()) == bundle  # round trip
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
    entries = bundle["entry"]
    assert len(entries) == 5
    for entry in entries:
        assert entry["fullUrl"].startswith("urn:uuid:")
        assert entry["request"]["method"] == "POST"
        assert entry["request"]["url"] == entry["resource"]["resourceType"]
    media = {m["content"]["url"]: m for m in resources(bundle, "Media")}
    docs = {d["content"][0]["attachment"]["url"]: d for d in resources(bundle, "DocumentReference")}
    consents = resources(bundle, "Consent")
    assert set(media) == set(docs) == {"c1.jpg", "c2.webm"} and len(consents) == 1

    photo, clip = media["c1.jpg"], media["c2.webm"]
    assert photo["status"] == "completed"
    assert photo["type"]["coding"][0]["code"] == "image"
    assert clip["type"]["coding"][0]["code"] == "video"
    for m, data, mime in ((photo, JPEG, "image/jpeg"), (clip, WEBM, "video/webm")):
        assert m["content"]["contentType"] == mime
        assert m["content"]["size"] == len(data)
        assert m["content"]["hash"] == sha1_b64(data)
        assert m["subject"]["identifier"] == {
            "system": "urn:digiclinic:hosp-a:identity",
            "value": "pat-77",
        }
        assert m["operator"]["identifier"]["value"] == "hw-5"
        assert m["createdDateTime"] == "2026-03-02T10:01:02Z"
    assert (photo["width"], photo["height"]) == (4032, 3024) and "duration" not in photo
    assert (clip["width"], clip["height"], clip["duration"]) == (1280, 720, 8.5)
    assert photo["note"][0]["text"] == "left forearm, day 3"
    assert photo["note"][1]["authorReference"]["identifier"]["value"] == "doc-1"
    assert "note" not in clip

    full_url = {id(e["resource"]): e["fullUrl"] for e in entries}
    for url, doc in docs.items():
        assert doc["status"] == "current"
        assert doc["content"][0]["attachment"]["hash"] == media[url]["content"]["hash"]
        assert doc["context"]["related"][0]["reference"] == full_url[id(media[url])]

    consent = consents[0]
    assert consent["status"] == "active"
    assert consent["scope"]["coding"][0]["code"] == "patient-privacy"
    assert consent["dateTime"] == "2026-03-02T09:58:11Z"
    assert consent["patient"]["identifier"]["value"] == "pat-77"
    assert {(p["type"], p["identifier"]["value"]) for p in consent["performer"]} == {
        ("Patient", "pat-77"),
        ("Practitioner", "doc-1"),
    }
    assert consent["provision"]["type"] == "permit"
    assert '"patient"' in consent["policyRule"]["text"]
    covered = {d["reference"]["reference"] for d in consent["provision"]["data"]}
    assert covered == {full_url[id(m)] for m in media.values()}


def test_tampered_capture_is_reported_and_not_exported(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    path = setup.captures / "capture-c1.rec"
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x01  # a byte of the last chunk
    path.write_bytes(bytes(data))
    assert setup.export("out") == 1
    printed = capsys.readouterr().out
    assert "PROBLEM: capture-c1.rec" in printed
    out = setup.tmp / "out"
    assert not (out / "c1.jpg").exists()
    assert (out / "c2.webm").read_bytes() == WEBM
    bundle = json.loads((out / "bundle.json").read_text())
    assert [m["content"]["url"] for m in resources(bundle, "Media")] == ["c2.webm"]
    assert len(resources(bundle, "DocumentReference")) == 1


def test_export_is_audited(setup: Setup) -> None:
    log = setup.tmp / "audit.log"
    anchor = setup.tmp / "audit.anchor"
    args = ["--audit-log", str(log), "--audit-key", str(setup.akey), "--audit-anchor", str(anchor)]
    assert setup.export("out", *args) == 0
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["event"], e["capture_id"], e["file"]) for e in entries] == [
        ("capture_exported", "c1", "c1.jpg"),
        ("capture_exported", "c2", "c2.webm"),
    ]
    assert "Patient" not in log.read_text() and "forearm" not in log.read_text()
    assert verify_file(log, load_signer(setup.apub), anchor).ok
    # --audit-log without --audit-key is a usage error, before anything is written
    assert setup.export("out2", "--audit-log", str(log)) == 2
    assert not (setup.tmp / "out2").exists()


def test_room_filter(setup: Setup) -> None:
    setup.write("c3", b"\x89PNG\r\n\x1a\n" + b"png" * 100, room="hosp-a/ward-9", mime="image/png")
    setup.write("c4", JPEG, room="hosp-b/ward-3")

    def exported(out: str) -> set[str]:
        return {p.name for p in (setup.tmp / out).iterdir()} - {"bundle.json"}

    assert setup.export("all") == 0
    assert exported("all") == {"c1.jpg", "c2.webm", "c3.png", "c4.jpg"}
    assert setup.export("by-name", "--room", "ward-3") == 0
    assert exported("by-name") == {"c1.jpg", "c2.webm", "c4.jpg"}
    assert setup.export("exact", "--room", "hosp-a/ward-3") == 0
    assert exported("exact") == {"c1.jpg", "c2.webm"}
    assert setup.export("other", "--room", "hosp-a/ward-9") == 0
    assert exported("other") == {"c3.png"}
    bundle = json.loads((setup.tmp / "other" / "bundle.json").read_text())
    assert resources(bundle, "Media")[0]["identifier"][0]["system"] == (
        "urn:digiclinic:hosp-a:capture"
    )
    assert setup.export("none", "--room", "ward-77") == 0
    assert exported("none") == set()


def test_output_must_be_new_or_empty(setup: Setup) -> None:
    (setup.tmp / "used").mkdir()
    (setup.tmp / "used" / "bundle.json").write_text("{}")
    assert setup.export("used") == 2
    (setup.tmp / "empty").mkdir()
    assert setup.export("empty") == 0


def test_delete_audits_a_capture_as_capture_deleted(setup: Setup) -> None:
    log = setup.tmp / "audit.log"
    path = setup.captures / "capture-c1.rec"
    assert main(["delete", str(path), "--audit-log", str(log), "--audit-key", str(setup.akey)]) == 0
    entry = json.loads(log.read_text())
    assert entry["event"] == "capture_deleted"
    assert (entry["capture_id"], entry["recording_id"]) == ("c1", "capture-c1")
    assert not path.exists() and not path.with_suffix(".keys").exists()


def test_bundle_tolerates_missing_optional_fields() -> None:
    minimal = {
        "capture_id": "m1",
        "kind": "photo",
        "mime": "image/png",
        "size": 3,
        "sha256": hashlib.sha256(b"abc").hexdigest(),
        "hospital": "hosp-a",
        "room": "ward-1",
    }
    bundle = build_bundle([ExportedCapture.of(minimal, "m1.png", b"abc")])
    assert parse_bundle(json.dumps(bundle)).type == "transaction"
    (media,) = resources(bundle, "Media")
    assert "subject" not in media and "width" not in media and "operator" not in media
    assert not resources(bundle, "Consent")  # no consent recorded: none made up


def test_one_consent_per_distinct_consent() -> None:
    second = {**CONSENT, "given_at": "2026-03-09T08:00:00Z"}
    captures = [
        ExportedCapture.of(description("a", b"a"), "a.jpg", b"a"),
        ExportedCapture.of(description("b", b"b"), "b.jpg", b"b"),
        ExportedCapture.of(description("c", b"c", consent=second), "c.jpg", b"c"),
    ]
    bundle = build_bundle(captures)
    consents = resources(bundle, "Consent")
    assert sorted(len(c["provision"]["data"]) for c in consents) == [1, 2]


def test_invalid_fhir_names_the_element_not_the_value() -> None:
    bad = description("x", b"x", taken_at="yesterday, Patient Seven")
    with pytest.raises(InvalidFHIR) as info:
        build_bundle([ExportedCapture.of(bad, "x.jpg", b"x")])
    assert "Patient Seven" not in str(info.value)
    assert "createdDateTime" in str(info.value)
