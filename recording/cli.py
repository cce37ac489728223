"""``digiclinic-recording``: the hospital's tool, run with the hospital's private key.

    digiclinic-recording keygen --private hospital.key --public hospital.pub [--kind audit]
    digiclinic-recording verify REC --key hospital.key
    digiclinic-recording export REC --key hospital.key --output consult.webm
    digiclinic-recording audit-verify audit.log --public-key audit.pub
    digiclinic-recording delete REC [--audit-log audit.log --audit-key audit.key]

Exit codes: 0 fine, 1 the recording or log failed verification, 2 usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from recording.audit import AuditLog, generate_signing_key, verify_file
from recording.crypto_stream import (
    RecordingFormatError,
    generate_keypair,
    open_recording,
    read_header,
    shred,
)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
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
    print(f"private key: {args.private} (keep it at the hospital; never on the media server)")
    print(f"public key:  {args.public} (give it to the media server's configuration)")
    return 0


def verify(args: argparse.Namespace) -> int:
    result = open_recording(args.recording, _private_key(args.key))
    print(
        f"{args.recording}: {len(result.chunks)} authentic chunks, "
        f"{sum(len(c) for c in result.chunks)} bytes"
    )
    if result.problem:
        print(f"PROBLEM: {result.problem}")
        return 1
    print("OK: every chunk is authentic and the recording is complete")
    return 0


def export(args: argparse.Namespace) -> int:
    result = open_recording(args.recording, _private_key(args.key))
    _write_private(args.output, b"".join(result.chunks))
    print(f"wrote {args.output} ({len(result.chunks)} chunks)")
    if result.problem:
        print(f"WARNING: {result.problem}; exported what precedes it")
        return 1
    return 0


def audit_verify(args: argparse.Namespace) -> int:
    public = serialization.load_pem_public_key(args.public_key.read_bytes())
    if not isinstance(public, Ed25519PublicKey):
        raise ValueError(f"{args.public_key} is not an Ed25519 public key")
    report = verify_file(args.log, public)
    for problem in report.problems:
        print(f"PROBLEM: {problem}")
    if report.ok:
        print(f"OK: {report.entries} entries, chain and signatures intact")
    return 0 if report.ok else 1


def delete(args: argparse.Namespace) -> int:
    """Retention: crypto-shred (wrapped keys destroyed first), then audit the deletion."""
    path: Path = args.recording
    if not path.exists() and not path.with_suffix(".keys").exists():
        raise FileNotFoundError(f"no recording at {path}")
    with open(path, "rb") as file:
        header, _ = read_header(file)
    shred(path)
    for marker in (".done", ".interrupted"):
        path.with_suffix(marker).unlink(missing_ok=True)
    if args.audit_log is not None:
        key = serialization.load_pem_private_key(args.audit_key.read_bytes(), None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{args.audit_key} is not an Ed25519 private key")
        AuditLog(args.audit_log, key).append(
            "recording_deleted", recording_id=str(header.get("recording_id", path.stem))
        )
    print(f"deleted {path.name}: wrapped keys destroyed first, media removed")
    return 0


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
    p = sub.add_parser("verify", help="check every chunk of a recording")
    p.add_argument("recording", type=Path)
    p.add_argument("--key", type=Path, required=True)
    p.set_defaults(func=verify)
    p = sub.add_parser("export", help="decrypt to a playable WebM")
    p.add_argument("recording", type=Path)
    p.add_argument("--key", type=Path, required=True)
    p.add_argument("--output", type=Path, required=True)
    p.set_defaults(func=export)
    p = sub.add_parser("audit-verify", help="check the audit log's chain and signatures")
    p.add_argument("log", type=Path)
    p.add_argument("--public-key", type=Path, required=True)
    p.set_defaults(func=audit_verify)
    p = sub.add_parser("delete", help="crypto-shred a recording (retention)")
    p.add_argument("recording", type=Path)
    p.add_argument("--audit-log", type=Path)
    p.add_argument("--audit-key", type=Path, help="Ed25519 private key signing the audit log")
    p.set_defaults(func=delete)
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
