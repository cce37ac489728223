"""``digiclinic-recording``: the hospital's tool, run with the hospital's private key.

    digiclinic-recording keygen --private hospital.key --public hospital.pub [--kind audit]
    digiclinic-recording verify REC --key hospital.key --signer server.pub
    digiclinic-recording export REC --key hospital.key --signer server.pub --output consult.webm
                         [--consult-key ID.KEY ... | --consult-keys FILE]
    digiclinic-recording audit-verify audit.log --public-key server.pub [--anchor CHECKPOINTS]
    digiclinic-recording delete REC [--audit-log audit.log --audit-key audit.key
                                     --audit-anchor CHECKPOINTS]
    digiclinic-recording export-captures DIR --key hospital.key --signer server.pub
                         --output OUTDIR [--room ROOM] [--audit-log audit.log
                         --audit-key audit.key --audit-anchor CHECKPOINTS]

``server.pub`` is the public half of the server's signing key
(``recording.audit_signing_key_file``): it signs every recording and the audit
log. ``delete`` also shreds a capture (``capture-<id>.rec``, audited as
``capture_deleted``); ``export-captures`` writes a directory's captures as files
plus a FHIR R4 Bundle (recording/capture_export.py). Exit codes: 0 fine, 1 the
recording or log failed verification (or is unsigned; for export-captures, any
capture), 2 usage error.

An end-to-end encrypted consult's recording (header metadata ``"e2ee": "v1"``)
holds frames still encrypted under the consult key: ``export`` needs its key(s)
as well (``--consult-key``, ``--consult-keys``; recording/e2ee_export.py), exits 2
without them, and 1 if any frame did not decrypt.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from recording import capture_export, e2ee_export
from recording.audit import AuditLog, generate_signing_key, verify_file
from recording.captures import PREFIX as CAPTURE_PREFIX
from recording.crypto_stream import (
    ReadResult,
    RecordingFormatError,
    generate_keypair,
    open_recording,
    read_header,
    shred,
)
from recording.private_files import open_private
from recording.signing import load_signer, load_signing_key

UNSIGNED = (
    "UNSIGNED: a format v1 recording, written before the server signed recordings: "
    "its chunks decrypt, but nothing shows this server wrote them (anyone with the "
    "hospital's public key can make such a file); it is not reported authentic"
)


def _write_private(path: Path, data: bytes) -> None:
    """A new file (never an existing one replaced), mode 0600 (recording/private_files.py)."""
    fd = open_private(path, os.O_WRONLY | os.O_EXCL)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _private_key(path: Path) -> X25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    if not isinstance(key, X25519PrivateKey):
        raise ValueError(f"{path} is not an X25519 private key")
    return key


def keygen(args: argparse.Namespace) -> int:
    private, public = generate_signing_key() if args.kind == "audit" else generate_keypair()
    _write_private(args.private, private)
    args.public.write_bytes(public)
    if args.kind == "audit":
        print(f"private key: {args.private} (the media server's recording.audit_signing_key_file)")
        print(f"public key:  {args.public} (the hospital's: verify --signer, audit-verify)")
        return 0
    print(f"private key: {args.private} (keep it at the hospital; never on the media server)")
    print(f"public key:  {args.public} (give it to the media server's configuration)")
    return 0


def _open(args: argparse.Namespace) -> ReadResult:
    return open_recording(args.recording, _private_key(args.key), load_signer(args.signer))


def verify(args: argparse.Namespace) -> int:
    result = _open(args)
    kind = "authentic" if result.signed else "decryptable (unsigned)"
    print(
        f"{args.recording}: {len(result.chunks)} {kind} chunks, "
        f"{sum(len(c) for c in result.chunks)} bytes"
    )
    if not result.signed:
        print(UNSIGNED)
        if result.problem:
            print(f"PROBLEM: {result.problem}")
        return 1
    print(f"signed by {result.header['signer']}; content digest {result.digest}")
    if result.header.get("recording_id") != args.recording.stem and not result.problem:
        result.problem = (
            f"the file is named {args.recording.stem} but holds recording "
            f"{result.header.get('recording_id')} (renamed, or swapped with another recording)"
        )
    if result.problem:
        print(f"PROBLEM: {result.problem}")
        return 1
    print(
        "OK: signed by the given server key, every chunk is authentic and the recording "
        "is complete (its digest should match its recording_sealed audit entry)"
    )
    return 0


def export(args: argparse.Namespace) -> int:
    consult_keys = e2ee_export.load_keys(args.consult_key, args.consult_keys)
    result = _open(args)
    if not result.signed and not args.allow_unsigned:
        raise RecordingFormatError(f"{UNSIGNED}. Nothing exported; --allow-unsigned exports it")
    data = b"".join(result.chunks)
    frames = e2ee_export.frame_format(result.header)
    report = None
    if frames is not None:  # end-to-end encrypted frames inside: the consult key(s) too
        if not consult_keys:
            raise e2ee_export.need_keys(frames)
        data, report = e2ee_export.decrypt_webm(data, consult_keys)
        if report.failed_frames and not sum(report.decrypted.values()):
            print(f"PROBLEM: no frame decrypted: {report.failures()}. Nothing exported")
            return 1
    elif consult_keys:
        print("note: this recording's frames are not end-to-end encrypted: no consult key needed")
    _write_private(args.output, data)
    print(f"wrote {args.output} ({len(result.chunks)} chunks)")
    if report is not None:
        print(f"end-to-end encrypted consult: {report.summary()}")
        if report.failed_frames:
            print(f"PROBLEM: {report.failures()}")
        if report.problem:
            print(f"WARNING: {report.problem}")
    if not result.signed:
        print(f"WARNING: {UNSIGNED}")
    if result.problem:
        print(f"WARNING: {result.problem}; exported what precedes it")
    failed = report is not None and (report.failed_frames > 0 or report.problem is not None)
    return 0 if result.signed and not result.problem and not failed else 1


def audit_verify(args: argparse.Namespace) -> int:
    report = verify_file(args.log, load_signer(args.public_key), args.anchor)
    if args.anchor is None and report.entries == 0:
        report.problems.append(
            "the log is empty: without --anchor an emptied log cannot be told from a new one"
        )
    for problem in report.problems:
        print(f"PROBLEM: {problem}")
    if not report.ok:
        return 1
    print(f"OK: {report.entries} entries, chain and signatures intact")
    if report.anchored is None:
        print(
            "WARNING: not anchored (no --anchor): entries cut from the end of the log "
            "cannot be detected"
        )
    else:
        cp = report.anchored
        print(
            f"anchored: entries 1..{cp.seq} match the checkpoint of {cp.time}; "
            f"{report.entries - cp.seq} entries appended after it"
        )
    return 0


def delete(args: argparse.Namespace) -> int:
    """Retention: crypto-shred (wrapped keys destroyed first), then audit the deletion."""
    path: Path = args.recording
    if not path.exists() and not path.with_suffix(".keys").exists():
        raise FileNotFoundError(f"no recording at {path}")
    with open(path, "rb") as file:
        header, _ = read_header(file)
    audit = None
    if args.audit_log is not None:  # opened first: a log behind its anchor stops the deletion
        if args.audit_key is None:
            raise ValueError("--audit-log needs --audit-key")
        audit = AuditLog(args.audit_log, load_signing_key(args.audit_key), args.audit_anchor)
    shred(path)
    for marker in (".done", ".interrupted"):
        path.with_suffix(marker).unlink(missing_ok=True)
    if audit is not None:
        recording_id = str(header.get("recording_id", path.stem))
        if header.get("metadata", {}).get("kind") == "capture":
            audit.append(
                "capture_deleted",
                capture_id=recording_id.removeprefix(CAPTURE_PREFIX),
                recording_id=recording_id,
            )
        else:
            audit.append("recording_deleted", recording_id=recording_id)
    print(f"deleted {path.name}: wrapped keys destroyed first, media removed")
    return 0


def export_captures(args: argparse.Namespace) -> int:
    """Every verified capture as a file plus bundle.json (recording/capture_export.py)."""
    audit = None
    if args.audit_log is not None:  # opened first: a log behind its anchor stops the export
        if args.audit_key is None:
            raise ValueError("--audit-log needs --audit-key")
        audit = AuditLog(args.audit_log, load_signing_key(args.audit_key), args.audit_anchor)
    return capture_export.export_captures(
        args.directory,
        args.output,
        _private_key(args.key),
        load_signer(args.signer),
        write=_write_private,
        room=args.room,
        audit=audit,
        consult_keys=e2ee_export.load_raw_keys(args.consult_key, args.consult_keys),
    )


def _consult_key_options(p: argparse.ArgumentParser) -> None:
    """--consult-key / --consult-keys: an end-to-end encrypted consult's keys (docs/e2ee.md)."""
    p.add_argument(
        "--consult-key",
        action="append",
        default=[],
        metavar="ID.KEY",
        help="an end-to-end encrypted consult's key, <key id>.<base64url> (repeat: rotated keys)",
    )
    p.add_argument(
        "--consult-keys",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="a file of consult keys, one <key id>.<base64url> per line",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="digiclinic-recording", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("keygen", help="a recipient key pair (or an audit signing key pair)")
    p.add_argument("--private", type=Path, required=True)
    p.add_argument("--public", type=Path, required=True)
    p.add_argument("--kind", choices=["recipient", "audit"], default="recipient")
    p.set_defaults(func=keygen)
    signer_help = "the server's public signing key (Ed25519 PEM), kept by the hospital"
    p = sub.add_parser("verify", help="check the server's signatures and every chunk")
    p.add_argument("recording", type=Path)
    p.add_argument("--key", type=Path, required=True)
    p.add_argument("--signer", type=Path, required=True, help=signer_help)
    p.set_defaults(func=verify)
    p = sub.add_parser("export", help="decrypt a signed recording to a playable WebM")
    p.add_argument("recording", type=Path)
    p.add_argument("--key", type=Path, required=True)
    p.add_argument("--signer", type=Path, required=True, help=signer_help)
    p.add_argument("--output", type=Path, required=True)
    p.add_argument(
        "--allow-unsigned", action="store_true", help="export a format v1 (unsigned) recording"
    )
    _consult_key_options(p)
    p.set_defaults(func=export)
    p = sub.add_parser("audit-verify", help="check the audit log's chain and signatures")
    p.add_argument("log", type=Path)
    p.add_argument("--public-key", type=Path, required=True, help=signer_help)
    p.add_argument(
        "--anchor", type=Path, help="checkpoints file collected from the server (cut/emptied log)"
    )
    p.set_defaults(func=audit_verify)
    p = sub.add_parser("delete", help="crypto-shred a recording (retention)")
    p.add_argument("recording", type=Path)
    p.add_argument("--audit-log", type=Path)
    p.add_argument("--audit-key", type=Path, help="Ed25519 private key signing the audit log")
    p.add_argument("--audit-anchor", type=Path, help="the log's checkpoints file, to update")
    p.set_defaults(func=delete)
    p = sub.add_parser(
        "export-captures", help="verified captures as files plus a FHIR R4 Bundle (bundle.json)"
    )
    p.add_argument("directory", type=Path, help="the captures directory (capture-*.rec)")
    p.add_argument("--key", type=Path, required=True)
    p.add_argument("--signer", type=Path, required=True, help=signer_help)
    p.add_argument("--output", type=Path, required=True, help="a new or empty directory")
    p.add_argument(
        "--room", help="only this room: <hospital>/<room> as in the header, or the room's name"
    )
    p.add_argument("--audit-log", type=Path, help="audit each export (capture_exported)")
    p.add_argument("--audit-key", type=Path, help="Ed25519 private key signing the audit log")
    p.add_argument("--audit-anchor", type=Path, help="the log's checkpoints file, to update")
    _consult_key_options(p)
    p.set_defaults(func=export_captures)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except (RecordingFormatError, ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, RecordingFormatError) else 2
    return result


if __name__ == "__main__":
    sys.exit(main())
