"""``digiclinic`` command line: ``serve``, ``token`` and ``turn-config``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import ssl
import sys
from typing import Any

try:
    import uvloop
except ImportError:  # pragma: no cover - not on every platform
    uvloop = None  # type: ignore[assignment]

from sfu.participant import Role
from signaling.app import MediaPortError, create_app
from signaling.banner import banner_lines
from signaling.config import Config, ConfigError, load_config
from signaling.node import Listen, serve_node
from signaling.tokens import DEV_ISSUER, dev_secret, mint_token
from signaling.turn_config import render_coturn_config, write_coturn_config
from signaling.workers import run_workers, use_worker_media_port


def _config_from(args: argparse.Namespace) -> Config:
    overrides: dict[str, Any] = {}
    server: dict[str, Any] = {}
    if getattr(args, "host", None):
        server["host"] = args.host
    if getattr(args, "port", None):
        server["port"] = args.port
    if server:
        overrides["server"] = server
    if getattr(args, "ice_address", None):
        overrides["media"] = {"ice_addresses": args.ice_address}
    if getattr(args, "log_level", None):
        overrides["logging"] = {"level": args.log_level}
    path = args.config or os.environ.get("DIGICLINIC_CONFIG")
    return load_config(path, overrides=overrides)


def _configure_logging(config: Config) -> None:
    logging.basicConfig(
        level=config.logging.level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # aiortc/aioice log SDP, candidates and addresses at DEBUG: keep them quiet
    for noisy in ("aiortc", "aioice"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.root.level))


def serve(args: argparse.Namespace) -> int:
    config = _config_from(args)
    _configure_logging(config)
    workers = (os.cpu_count() or 1) if args.workers == 0 else args.workers
    if workers > 1 and args.worker_index is None:
        return run_workers(args, config, workers)
    if args.worker_index is not None:
        use_worker_media_port(config, args.worker_index)  # docs/cluster.md says why
    if uvloop is not None:
        uvloop.install()
    ssl_context = None
    scheme = "http"
    if config.server.tls_cert and config.server.tls_key:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(config.server.tls_cert, config.server.tls_key)
        scheme = "https"
    app = create_app(config)
    port = config.server.port
    listens = [Listen(config.server.host, port)]
    if args.worker_index is not None:  # a worker of `serve --workers N`
        listens = [
            Listen(config.server.host, port, shared=True),
            Listen(config.server.host, args.worker_port),
        ]
        port = args.worker_port
    for line in banner_lines(config, scheme=scheme, port=port, config_path=args.config):
        print(line)
    sys.stdout.flush()
    try:
        asyncio.run(serve_node(app, config, listens, ssl_context))
    except MediaPortError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"error: cannot listen on {config.server.host}:{config.server.port}: "
            f"{exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    return 0


def token(args: argparse.Namespace) -> int:
    config = _config_from(args)
    if config.auth.issuers and not any(i.id == DEV_ISSUER for i in config.auth.issuers):
        print("error: tokens are minted here only for the development issuer", file=sys.stderr)
        return 2
    grants: dict[str, bool] | None = None
    if args.grant or args.deny:
        grants = {g: True for g in args.grant or []}
        grants.update({g: False for g in args.deny or []})
    value = mint_token(
        dev_secret(config.auth),
        room=args.room,
        identity=args.identity,
        role=Role(args.role),
        name=args.name,
        grants=grants,
        ttl=min(args.ttl, config.auth.max_token_lifetime),
        audience=config.auth.audience,
    )
    print(value)
    return 0


def turn_config(args: argparse.Namespace) -> int:
    config = _config_from(args)
    if args.output:
        try:
            write_coturn_config(config.turn, args.output)
        except OSError as exc:
            print(f"error: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        print(f"wrote {args.output} (mode 0600); restart coturn to load it")
        return 0
    if sys.stdout.isatty():
        print(
            "error: coturn's config contains the TURN secrets; not printing it to a "
            "terminal. Use --output FILE (or redirect stdout to a file).",
            file=sys.stderr,
        )
        return 2
    sys.stdout.write(render_coturn_config(config.turn))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="digiclinic", description=__doc__)
    parser.add_argument("--config", help="YAML config file (default: $DIGICLINIC_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)

    p_serve = sub.add_parser("serve", help="run the signalling server and SFU")
    p_serve.add_argument("--host", help="HTTP/WebSocket bind address (server.host)")
    p_serve.add_argument("--port", type=int, help="HTTP/WebSocket port (server.port)")
    p_serve.add_argument(
        "--ice-address", action="append", help="address to offer in ICE (media.ice_addresses)"
    )
    p_serve.add_argument("--log-level", help="DEBUG, INFO, WARNING (logging.level)")
    p_serve.add_argument(
        "--workers",
        type=int,
        nargs="?",
        const=0,
        default=1,
        help="worker processes sharing the port: --workers alone or 0 is one per core "
        "(default without the flag: this one process); more than one needs cluster.redis_url",
    )
    p_serve.add_argument(
        "--worker-port-base",
        type=int,
        help="first of the workers' own ports (default: server.port + 1)",
    )
    p_serve.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    p_serve.add_argument("--worker-port", type=int, help=argparse.SUPPRESS)
    p_serve.set_defaults(func=serve)

    p_token = sub.add_parser("token", help="mint a development join token")
    p_token.add_argument("--room", required=True)
    p_token.add_argument("--identity", required=True)
    p_token.add_argument("--name")
    p_token.add_argument("--role", default="patient", choices=[r.value for r in Role])
    p_token.add_argument(
        "--grant", action="append", choices=["publish", "subscribe", "admit", "record"]
    )
    p_token.add_argument(
        "--deny", action="append", choices=["publish", "subscribe", "admit", "record"]
    )
    p_token.add_argument("--ttl", type=int, default=600, help="seconds (default 600)")
    p_token.set_defaults(func=token)

    p_turn = sub.add_parser(
        "turn-config",
        help="render coturn's turnserver.conf from this server's configuration "
        "so the secret is written once",
    )
    p_turn.add_argument(
        "--output",
        help="file to write, mode 0600, replaced atomically (default: stdout, never a terminal)",
    )
    p_turn.set_defaults(func=turn_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
