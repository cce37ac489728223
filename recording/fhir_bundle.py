"""Exported captures as a FHIR ``transaction`` Bundle for the hospital's medical record.

Each capture becomes a ``Media`` (the photo or clip: type, size, SHA-1 hash,
dimensions, duration, time, note, patient, who took it) and a
``DocumentReference`` to the same file (its ``context.related`` names the
Media); each distinct consent becomes one ``Consent`` (scope patient-privacy,
policy rule opt-in, provision permit for the Media it covers). The file itself
is not inlined: ``Attachment.url`` is the exported file's name, beside
``bundle.json`` in the export directory (docs/capture.md#export-for-the-medical-record).

FHIR version: the bundle uses only elements that are the same in FHIR R4 (4.0.1)
and R4B (4.3.0) for Media, DocumentReference, Consent and Bundle, and is validated
with the R4B models of ``fhir.resources`` 8 (``fhir.resources.R4B``). fhir.resources
8 (pydantic 2, maintained) ships R5 by default and R4B and STU3 as subpackages,
with no R4 subpackage; the last releases with R4 4.0.1 models (6.x) need
pydantic 1. R4B changed none of the elements used here (Media was removed only in R5),
so the bundle is R4 as well as R4B.

Participants are referred to by identifier, never by a server id:
``urn:digiclinic:<hospital>:identity`` with the identity (the token's ``sub``) the
hospital's portal gave them; the hospital by ``urn:digiclinic:hospital``. Nothing
here logs: a bundle holds patient data.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError

MEDIA_TYPE = "http://terminology.hl7.org/CodeSystem/media-type"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
CONSENT_ACTION = "http://terminology.hl7.org/CodeSystem/consentaction"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
LOINC = "http://loinc.org"
LOINC_PATIENT_CONSENT = "59284-0"  # the consent-category value set's "Patient Consent"
HOSPITAL_SYSTEM = "urn:digiclinic:hospital"
# uuid5 namespace: the same capture exported twice gets the same fullUrl
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:digiclinic:capture-export")

POLICY_TEXT = {
    "patient": 'digiclinic capture consent, policy "patient": the patient(s) and the '
    "clinicians present consented to the consult's photos and clips being stored",
    "all": 'digiclinic capture consent, policy "all": everyone present consented to '
    "the consult's photos and clips being stored",
}


class InvalidFHIR(ValueError):
    """The resources made from a description are not valid FHIR (names fields, not values)."""


@dataclass(frozen=True, slots=True)
class ExportedCapture:
    """One verified capture as written to the export directory."""

    description: dict[str, Any]  # chunk 0 of the capture file (recording/captures.py)
    file_name: str  # the exported file's name, relative to bundle.json
    sha1: bytes  # SHA-1 digest of the file's bytes (FHIR Attachment.hash)
    size: int

    @classmethod
    def of(cls, description: dict[str, Any], file_name: str, data: bytes) -> ExportedCapture:
        return cls(description, file_name, hashlib.sha1(data).digest(), len(data))


def identity_system(hospital: str) -> str:
    return f"urn:digiclinic:{hospital}:identity"


def capture_system(hospital: str) -> str:
    return f"urn:digiclinic:{hospital}:capture"


def _person(who: Any, hospital: str, patient: bool = False) -> dict[str, Any] | None:
    """A Reference to a participant by identifier: Patient for the patient, else Practitioner."""
    if not isinstance(who, dict) or not who.get("identity"):
        return None
    kind = "Patient" if patient or who.get("role") == "patient" else "Practitioner"
    ref: dict[str, Any] = {
        "type": kind,
        "identifier": {"system": identity_system(hospital), "value": str(who["identity"])},
    }
    if who.get("name"):
        ref["display"] = str(who["name"])
    return ref


def _hospital(hospital: str) -> dict[str, Any]:
    return {"type": "Organization", "identifier": {"system": HOSPITAL_SYSTEM, "value": hospital}}


def _positive(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _attachment(capture: ExportedCapture) -> dict[str, Any]:
    d = capture.description
    kind = "clip" if d.get("kind") == "clip" else "photo"
    taken = f", {d['taken_at']}" if d.get("taken_at") else ""
    room = f" in {d['room']}" if d.get("room") else ""
    attachment: dict[str, Any] = {
        "contentType": str(d.get("mime") or "application/octet-stream"),
        "url": capture.file_name,
        "size": capture.size,
        "hash": base64.b64encode(capture.sha1).decode(),
        "title": f"Clinical {kind}{room}{taken}",
    }
    if d.get("taken_at"):
        attachment["creation"] = d["taken_at"]
    return attachment


def _entry(full_url: str, resource: dict[str, Any], if_none_exist: str) -> dict[str, Any]:
    request = {"method": "POST", "url": resource["resourceType"], "ifNoneExist": if_none_exist}
    return {"fullUrl": full_url, "resource": resource, "request": request}


def _media(capture: ExportedCapture, hospital: str, identifier: dict[str, str]) -> dict[str, Any]:
    d = capture.description
    clip = d.get("kind") == "clip" or str(d.get("mime", "")).startswith("video/")
    media: dict[str, Any] = {
        "resourceType": "Media",
        "identifier": [identifier],
        "status": "completed",
        "type": {
            "coding": [
                {"system": MEDIA_TYPE, "code": "video", "display": "Video"}
                if clip
                else {"system": MEDIA_TYPE, "code": "image", "display": "Image"}
            ],
            "text": "Clinical video clip" if clip else "Clinical photo",
        },
        "content": _attachment(capture),
    }
    subject = _person(d.get("patient"), hospital, patient=True)
    if subject:
        media["subject"] = subject
    if d.get("taken_at"):
        media["createdDateTime"] = d["taken_at"]
    operator = _person(d.get("sender"), hospital)
    if operator:
        media["operator"] = operator
    for key in ("height", "width"):
        if _positive(d.get(key)):
            media[key] = d[key]
    if _positive(d.get("duration_ms")):
        media["duration"] = d["duration_ms"] / 1000
    notes: list[dict[str, Any]] = []
    if d.get("note"):
        notes.append({"text": str(d["note"]), **_author(operator, d.get("taken_at"))})
    requester = _person(d.get("requested_by"), hospital)
    if requester:
        notes.append({"text": "Requested during the consult", **_author(requester, None)})
    if notes:
        media["note"] = notes
    return media


def _author(ref: dict[str, Any] | None, time: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"authorReference": ref} if ref else {}
    if time:
        out["time"] = time
    return out


def _document_reference(
    capture: ExportedCapture, hospital: str, identifier: dict[str, str], media_url: str
) -> dict[str, Any]:
    d = capture.description
    clip = d.get("kind") == "clip" or str(d.get("mime", "")).startswith("video/")
    doc: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "identifier": [identifier],
        "status": "current",
        "docStatus": "final",
        "type": {"text": "Clinical video clip" if clip else "Clinical photo"},
        "custodian": _hospital(hospital),
        "content": [{"attachment": _attachment(capture)}],
        "context": {"related": [{"reference": media_url, "type": "Media"}]},
    }
    subject = _person(d.get("patient"), hospital, patient=True)
    if subject:
        doc["subject"] = subject
    if d.get("taken_at"):
        doc["date"] = d["taken_at"]
    author = _person(d.get("sender"), hospital)
    if author:
        doc["author"] = [author]
    if d.get("note"):
        doc["description"] = str(d["note"])
    return doc


def _consent_key(hospital: str, description: dict[str, Any]) -> str | None:
    consent = description.get("consent")
    if not isinstance(consent, dict):
        return None
    patient = description.get("patient")
    given_by = consent.get("given_by") or []
    return json.dumps(
        {
            "hospital": hospital,
            "room": description.get("room"),
            "patient": patient.get("identity") if isinstance(patient, dict) else None,
            "policy": consent.get("policy"),
            "given_at": consent.get("given_at"),
            "given_by": sorted(
                str(who.get("identity")) for who in given_by if isinstance(who, dict)
            ),
        },
        sort_keys=True,
    )


def _consent(
    description: dict[str, Any], hospital: str, consent_url: str, media_urls: list[str]
) -> dict[str, Any]:
    consent = description["consent"]
    policy = str(consent.get("policy") or "patient")
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": consent_url}],
        "status": "active",
        "scope": {
            "coding": [
                {"system": CONSENT_SCOPE, "code": "patient-privacy", "display": "Privacy Consent"}
            ]
        },
        "category": [
            {
                "coding": [{"system": LOINC, "code": LOINC_PATIENT_CONSENT}],
                "text": "Consent to store the consult's clinical photos and clips",
            }
        ],
        "organization": [_hospital(hospital)],
        "policyRule": {
            "coding": [{"system": ACT_CODE, "code": "OPTIN", "display": "opt-in"}],
            "text": POLICY_TEXT.get(policy, f'digiclinic capture consent, policy "{policy}"'),
        },
        "provision": {
            "type": "permit",
            "action": [{"coding": [{"system": CONSENT_ACTION, "code": "collect"}]}],
            "data": [
                {"meaning": "instance", "reference": {"reference": url, "type": "Media"}}
                for url in media_urls
            ],
        },
    }
    patient = _person(description.get("patient"), hospital, patient=True)
    if patient:
        resource["patient"] = patient
    if consent.get("given_at"):
        resource["dateTime"] = consent["given_at"]
    performers = [
        ref
        for ref in (_person(who, hospital) for who in consent.get("given_by") or [])
        if ref is not None
    ]
    if performers:
        resource["performer"] = performers
    return resource


def build_bundle(
    captures: list[ExportedCapture], timestamp: datetime | None = None
) -> dict[str, Any]:
    """A validated FHIR R4 transaction Bundle (as its JSON dict) for ``captures``.

    Raises InvalidFHIR naming the invalid elements (never their values: patient data).
    """
    entries: list[dict[str, Any]] = []
    consents: dict[str, tuple[dict[str, Any], str, list[str]]] = {}
    for capture in captures:
        d = capture.description
        hospital = str(d.get("hospital") or "unknown")
        capture_id = str(d["capture_id"])
        identifier = {"system": capture_system(hospital), "value": capture_id}
        exists = f"identifier={identifier['system']}|{capture_id}"
        media_url = f"urn:uuid:{uuid.uuid5(NAMESPACE, f'{hospital}/{capture_id}/Media')}"
        doc_url = f"urn:uuid:{uuid.uuid5(NAMESPACE, f'{hospital}/{capture_id}/DocumentReference')}"
        entries.append(_entry(media_url, _media(capture, hospital, identifier), exists))
        doc = _document_reference(capture, hospital, identifier, media_url)
        entries.append(_entry(doc_url, doc, exists))
        key = _consent_key(hospital, d)
        if key is not None:
            consent_url = f"urn:uuid:{uuid.uuid5(NAMESPACE, key)}"
            consents.setdefault(key, (d, consent_url, []))[2].append(media_url)
    for d, consent_url, media_urls in consents.values():
        resource = _consent(d, str(d.get("hospital") or "unknown"), consent_url, media_urls)
        entries.append(_entry(consent_url, resource, f"identifier=urn:ietf:rfc:3986|{consent_url}"))
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "timestamp": (timestamp or datetime.now(UTC)).isoformat(timespec="seconds"),
        "entry": entries,
    }
    try:
        return bundle_json(Bundle.model_validate(bundle))
    except ValidationError as exc:
        raise InvalidFHIR(
            "not valid FHIR: "
            + "; ".join(
                ".".join(str(part) for part in error["loc"]) + f" ({error['type']})"
                for error in exc.errors()
            )
        ) from None


def bundle_json(bundle: Bundle) -> dict[str, Any]:
    """The model's FHIR JSON as a dict (aliases, no empty elements)."""
    result: dict[str, Any] = json.loads(bundle.model_dump_json())
    return result


def parse_bundle(json_text: str | bytes) -> Bundle:
    """Parse and validate a bundle written by build_bundle (raises ValueError if invalid)."""
    return Bundle.model_validate_json(json_text)
