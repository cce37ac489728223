"""Configuration: one YAML file, DIGICLINIC_* environment overrides, CLI flags.

Every key, with its default and meaning, is in config.sample.yaml at the
repository root; keep the two in step (tests/unit/test_config_sample.py checks).
Environment overrides name the path in upper case joined by ``__``, e.g.
``DIGICLINIC_SERVER__PORT=9000`` or ``DIGICLINIC_MEDIA__ICE_ADDRESSES=10.0.0.5``
(lists are comma separated). Lists of mappings (auth.issuers,
media.ice_servers) are set in the file only.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import secrets
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from signaling.origins import normalize_origin

ENV_PREFIX = "DIGICLINIC_"


class ConfigError(ValueError):
    pass


class Secret:
    """A string that never shows its value in repr, str, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and secrets.compare_digest(
            self._value.encode(), other._value.encode()
        )

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(slots=True)
class IssuerConfig:
    """One hospital portal allowed to issue join tokens."""

    id: str
    algorithm: str = "HS256"
    secret: Secret | None = None  # HS256 only (development)
    public_key: str | None = None  # PEM text, RS256/ES256
    public_key_file: str | None = None
    e2ee: str = "off"  # off | optional | required: its rooms' default (e2ee/mode.py)


@dataclass(slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    tls_cert: str | None = None
    tls_key: str | None = None
    allowed_origins: list[str] = field(default_factory=list)
    # the origins this server's own pages are served under (signaling/origins.py)
    public_origins: list[str] = field(default_factory=list)
    max_message_bytes: int = 65536
    messages_per_second: float = 50.0
    # WebSocket connections that have not joined a room (yet): capped per source
    # address and in total, and closed after join_timeout seconds without a join
    max_unjoined_per_address: int = 32
    max_unjoined_connections: int = 512
    join_timeout: float = 10.0
    # the web client's files, served under /client/ ("" = the repository's web-client/)
    web_client_dir: str = ""
    # demo pages at / and development tokens at /demo/token; only ever active
    # while no auth.issuers are configured (the local development issuer)
    demo: bool = True


@dataclass(slots=True)
class AuthConfig:
    audience: str = "digiclinic"
    max_token_lifetime: int = 3600
    max_invitation_lifetime: int = 86400  # another hospital's invitation (signaling/invitations.py)
    leeway: int = 10
    dev_secret_file: str = ".digiclinic/dev-secret"
    issuers: list[IssuerConfig] = field(default_factory=list)
    # a token's jti joins once (a dropped connection rejoins with the resume secret of its
    # `joined`); never for the development issuer (signaling/single_use.py)
    single_use_tokens: bool = True


@dataclass(slots=True)
class RoomsConfig:
    max_participants: int = 12
    empty_timeout: float = 30.0
    lobby_roles: list[str] = field(default_factory=lambda: ["patient"])
    max_rooms: int = 1000  # rooms this node hosts at once (empty ones included)
    max_media_sections: int = 16  # m-lines in one publish offer
    max_published_tracks: int = 8  # tracks one participant publishes at once
    # active participants from which arrivals/departures are announced in batches
    announce_batch_from: int = 10


@dataclass(slots=True)
class IceServerConfig:
    urls: list[str] = field(default_factory=list)
    username: str | None = None
    credential: Secret | None = None


@dataclass(slots=True)
class MediaConfig:
    ice_addresses: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    announce: dict[str, str] = field(default_factory=dict)
    # "one_port": all media of the process on udp_port (sfu/udp_mux.py); "port_range":
    # a socket per connection within udp_port_min..udp_port_max
    udp_mode: str = "one_port"
    udp_port: int = 40000  # 0: a port the OS chooses (logged at start-up)
    # one_port: a packet's copies leave together with sendmmsg (sfu/udp_batch.py)
    batched_egress: bool = True
    udp_port_min: int = 40000
    udp_port_max: int = 49999
    ice_servers: list[IceServerConfig] = field(default_factory=list)
    # "relay": the server offers only TURN relay candidates (a server behind NAT)
    ice_transport_policy: str = "all"
    socket_buffer_bytes: int = 4 * 1024 * 1024
    keyframe_request_interval: float = 0.25
    opus_dtx: bool = True
    opus_red: bool = True
    opus_max_bitrate_kbps: int = 0
    opus_ptime_ms: int = 0
    thin_link_opus_kbps: int = 16
    thin_link_opus_ptime_ms: int = 60
    publisher_start_bitrate_kbps: int = 1000
    transport_cc: bool = True
    subscriber_start_bitrate_kbps: int = 300
    subscriber_max_bitrate_kbps: int = 5000
    quality_interval: float = 2.0
    max_remote_candidates: int = 16
    remote_candidate_deny: list[str] = field(default_factory=list)


@dataclass(slots=True)
class TurnConfig:
    """TURN for clients on restrictive networks (coturn, TURN REST credentials)."""

    # static-auth-secret values shared with coturn; the first signs new
    # credentials, all are accepted by coturn (rotation: add the new one first)
    secrets: list[Secret] = field(default_factory=list)
    # ICE server URLs handed to admitted clients, e.g.
    # turn:turn.example.org:3478?transport=udp, turns:turn.example.org:443?transport=tcp
    urls: list[str] = field(default_factory=list)
    stun_urls: list[str] = field(default_factory=list)
    ttl: int = 3600  # credential lifetime, seconds
    max_ttl: int = 86400
    realm: str = "digiclinic"
    listening_port: int = 3478
    tls_listening_port: int = 443
    relay_port_min: int = 49152
    relay_port_max: int = 65535
    cert_file: str = "/etc/coturn/cert.pem"
    pkey_file: str = "/etc/coturn/privkey.pem"
    user_quota: int = 12
    total_quota: int = 1200
    max_bps: int = 3_000_000
    allowed_peer_ips: list[str] = field(default_factory=list)
    external_ip: str | None = None


@dataclass(slots=True)
class RecipientConfig:
    """A hospital public key recordings are encrypted for (X25519, PEM)."""

    kid: str
    public_key_file: str


@dataclass(slots=True)
class RecordingConfig:
    enabled: bool = False  # off unless configured: and even then only with consent
    directory: str = "recordings"
    recipients: list[RecipientConfig] = field(default_factory=list)
    default_policy: str = "all"  # all | patient
    audit_log: str = "recordings/audit.log"
    audit_signing_key_file: str = ""  # Ed25519 private key (PEM) signing audit entries
    # signed checkpoints of the audit log's head ("" = <audit_log>.checkpoints next to it);
    # a different mount the hospital collects from, so a cut log shows (docs/recording.md)
    audit_anchor_dir: str = ""


@dataclass(slots=True)
class CaptureConfig:
    """Clinical captures: photos and clips sent inside the consult (docs/capture.md)."""

    enabled: bool = True  # delivered live; stored only with recording keys and consent
    max_bytes: int = 8 * 1024 * 1024  # per capture
    max_clip_seconds: int = 10
    chunk_max_bytes: int = 32768  # the largest chunk a client may send or is sent
    min_rate_bps: int = 8000  # the floor of the server's pace for downloads
    consent_policy: str = "patient"  # patient | all (recording/consent.py)
    upload_ttl_seconds: float = 900.0  # an unfinished upload is kept this long after its last chunk
    room_memory_bytes: int = 64 * 1024 * 1024  # completed captures kept in memory per room


@dataclass(slots=True)
class ClusterConfig:
    """Many nodes coordinated through Redis (docs/cluster.md); off without a redis_url."""

    redis_url: Secret | None = None  # e.g. redis://127.0.0.1:6379/0 (may hold a password)
    node_id: str = ""  # "" = <hostname>-<pid>
    # the WebSocket URL clients use to reach this node directly (redirects);
    # "" = ws[s]://<server.host>:<server.port>/ws
    public_url: str = ""
    secret: Secret | None = None  # HMAC key of placement tickets, the same on every node
    key_prefix: str = "digiclinic"
    heartbeat_interval: float = 2.0
    node_ttl: float = 6.0  # a node whose heartbeat is older than this is gone
    room_lease: float = 30.0  # a room mapping not refreshed by its node for this long expires
    capacity: int = 500  # participants this node should carry at most
    ticket_ttl: float = 30.0
    redis_timeout: float = 1.0
    drain_timeout: float = 8.0  # SIGTERM: longest wait for participants to move (docker waits 10 s)


@dataclass(slots=True)
class AdminConfig:
    # bearer token for GET /api/rooms, GET /api/cluster/nodes, POST /api/admin/drain;
    # unset = those endpoints answer 403
    token: Secret | None = None


@dataclass(slots=True)
class LoggingConfig:
    level: str = "INFO"


@dataclass(slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    rooms: RoomsConfig = field(default_factory=RoomsConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    turn: TurnConfig = field(default_factory=TurnConfig)
    recording: RecordingConfig = field(default_factory=RecordingConfig)
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def validate(self) -> None:
        if bool(self.server.tls_cert) != bool(self.server.tls_key):
            raise ConfigError("server.tls_cert and server.tls_key go together")
        if not 0 < self.server.port <= 65535:
            raise ConfigError("server.port must be between 1 and 65535")
        self._validate_limits()
        for name in ("allowed_origins", "public_origins"):
            for value in getattr(self.server, name):
                wildcard = name == "allowed_origins" and value == "*"
                if normalize_origin(value) is None and not wildcard:
                    raise ConfigError(
                        f"server.{name}: {value!r} is not an origin (scheme://host[:port])"
                    )
        if self.capture.consent_policy not in ("patient", "all"):
            raise ConfigError("capture.consent_policy must be 'patient' or 'all'")
        if self.media.udp_mode not in ("one_port", "port_range"):
            raise ConfigError("media.udp_mode must be 'one_port' or 'port_range'")
        if not 0 <= self.media.udp_port <= 65535:
            raise ConfigError("media.udp_port must be 0..65535 (0: any free port)")
        if not 0 < self.media.udp_port_min <= self.media.udp_port_max <= 65535:
            raise ConfigError("media.udp_port_min/udp_port_max must be a valid range")
        if self.media.ice_transport_policy not in ("all", "relay"):
            raise ConfigError("media.ice_transport_policy must be 'all' or 'relay'")
        if self.media.ice_transport_policy == "relay" and not any(
            u.startswith(("turn:", "turns:")) for s in self.media.ice_servers for u in s.urls
        ):
            raise ConfigError("media.ice_transport_policy 'relay' needs a turn: URL in ice_servers")
        if not self.media.ice_addresses:
            raise ConfigError("media.ice_addresses needs at least one address")
        if self.media.opus_max_bitrate_kbps and not 6 <= self.media.opus_max_bitrate_kbps <= 510:
            raise ConfigError("media.opus_max_bitrate_kbps must be 0 or 6..510 (Opus' range)")
        if self.media.thin_link_opus_kbps and not 6 <= self.media.thin_link_opus_kbps <= 510:
            raise ConfigError("media.thin_link_opus_kbps must be 0 or 6..510 (Opus' range)")
        if self.media.opus_ptime_ms not in (0, 10, 20, 40, 60):
            raise ConfigError("media.opus_ptime_ms must be 0, 10, 20, 40 or 60")
        if self.media.max_remote_candidates < 1:
            raise ConfigError("media.max_remote_candidates must be at least 1")
        for cidr in self.media.remote_candidate_deny:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ConfigError(
                    f"media.remote_candidate_deny: {cidr!r} is not a network (CIDR)"
                ) from None
        if self.media.thin_link_opus_ptime_ms not in (0, 20, 40, 60):
            raise ConfigError("media.thin_link_opus_ptime_ms must be 0, 20, 40 or 60")
        for issuer in self.auth.issuers:
            if not issuer.id or not all(c.isalnum() or c in "-_.:@" for c in issuer.id):
                # (an issuer id scopes its rooms as "<issuer>/<room>": no "/" in it)
                raise ConfigError(f"issuer id {issuer.id!r}: letters, digits, -_.:@ only")
            alg = issuer.algorithm
            if alg == "HS256" and not issuer.secret:
                raise ConfigError(f"issuer {issuer.id}: HS256 needs a secret")
            if alg in ("RS256", "ES256") and not (issuer.public_key or issuer.public_key_file):
                raise ConfigError(f"issuer {issuer.id}: {alg} needs public_key or public_key_file")
            if alg not in ("HS256", "RS256", "ES256"):
                raise ConfigError(f"issuer {issuer.id}: unsupported algorithm {alg}")
            if issuer.e2ee not in ("off", "optional", "required"):
                raise ConfigError(f"issuer {issuer.id}: e2ee must be off, optional or required")
        known_roles = {"patient", "health_worker", "specialist", "interpreter", "observer"}
        unknown = set(self.rooms.lobby_roles) - known_roles
        if unknown:
            raise ConfigError(f"rooms.lobby_roles: unknown role(s) {', '.join(sorted(unknown))}")
        if self.logging.level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError("logging.level must be DEBUG, INFO, WARNING or ERROR")
        rec = self.recording
        if rec.default_policy not in ("all", "patient"):
            raise ConfigError("recording.default_policy must be 'all' or 'patient'")
        if rec.enabled and not (rec.recipients and rec.audit_signing_key_file):
            raise ConfigError(
                "recording.enabled needs recipients (public keys) and audit_signing_key_file"
            )
        turn = self.turn
        if turn.urls and not turn.secrets:
            raise ConfigError("turn.urls needs at least one turn.secrets entry")
        if not 0 < turn.ttl <= turn.max_ttl:
            raise ConfigError("turn.ttl must be positive and at most turn.max_ttl")
        if any(not u.startswith(("turn:", "turns:")) for u in turn.urls):
            raise ConfigError("turn.urls must be turn: or turns: URLs")
        if any(not u.startswith("stun:") for u in turn.stun_urls):
            raise ConfigError("turn.stun_urls must be stun: URLs")
        if not 0 < turn.relay_port_min <= turn.relay_port_max <= 65535:
            raise ConfigError("turn.relay_port_min/relay_port_max must be a valid range")
        if self.auth.max_token_lifetime <= 0:
            raise ConfigError("auth.max_token_lifetime must be positive")
        if self.auth.max_invitation_lifetime <= 0:
            raise ConfigError("auth.max_invitation_lifetime must be positive")
        self._validate_cluster()

    def _validate_limits(self) -> None:
        server, rooms = self.server, self.rooms
        if not 0 < server.max_unjoined_per_address <= server.max_unjoined_connections:
            raise ConfigError(
                "server.max_unjoined_per_address must be positive and at most"
                " server.max_unjoined_connections"
            )
        if server.join_timeout <= 0:
            raise ConfigError("server.join_timeout must be positive")
        if rooms.max_rooms <= 0:
            raise ConfigError("rooms.max_rooms must be positive")
        if rooms.announce_batch_from < 2:
            raise ConfigError("rooms.announce_batch_from must be at least 2")
        if not 0 < rooms.max_published_tracks <= rooms.max_media_sections:
            raise ConfigError(
                "rooms.max_published_tracks must be positive and at most rooms.max_media_sections"
            )

    def _validate_cluster(self) -> None:
        cluster = self.cluster
        if not 0 < cluster.heartbeat_interval < cluster.node_ttl:
            raise ConfigError("cluster.heartbeat_interval must be positive and below node_ttl")
        if cluster.room_lease <= cluster.node_ttl:
            raise ConfigError("cluster.room_lease must exceed cluster.node_ttl")
        if cluster.capacity <= 0 or cluster.ticket_ttl <= 0 or cluster.redis_timeout <= 0:
            raise ConfigError("cluster.capacity, ticket_ttl and redis_timeout must be positive")
        if cluster.node_id and not all(c.isalnum() or c in "-_." for c in cluster.node_id):
            raise ConfigError("cluster.node_id: letters, digits and -_. only")


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _convert(tp: Any, value: Any, path: str) -> Any:
    """Coerce YAML/env values into the dataclass field types."""
    args: tuple[Any, ...] = getattr(tp, "__args__", None) or ()
    optional = type(None) in args
    if value is None:
        if optional:
            return None
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            return tp()  # an empty section (every key commented out): defaults
        raise ConfigError(f"{path} needs a value")
    origin = getattr(tp, "__origin__", None)
    if isinstance(tp, str):  # postponed annotations resolved by _build
        raise ConfigError(f"unresolved type for {path}")
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path} must be a mapping")
        return _build(tp, value, path)
    if origin is list:
        (item,) = tp.__args__
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{path} must be a list")
        return [_convert(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path} must be a mapping")
        return {str(k): str(v) for k, v in value.items()}
    if optional:
        inner = next(a for a in args if a is not type(None))
        return _convert(inner, value, path)
    if tp is Secret:
        return value if isinstance(value, Secret) else Secret(str(value))
    if tp is bool:
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        raise ConfigError(f"{path} must be true or false")
    if isinstance(value, (list, dict)):
        raise ConfigError(f"{path} must be a single value, not a list or mapping")
    if tp in (int, float, str):
        try:
            return tp(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{path} must be {tp.__name__}") from None
    return value


def _build(cls: type, data: Mapping[str, Any], path: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"unknown key(s) in {path or 'config'}: {', '.join(sorted(unknown))}")
    kwargs = {k: _convert(hints[k], v, f"{path}.{k}".lstrip(".")) for k, v in data.items()}
    return cls(**kwargs)


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or "__" not in key:
            continue
        parts = key[len(ENV_PREFIX) :].lower().split("__")
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return tree


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def load_config(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """File, then environment, then explicit overrides (CLI flags)."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except OSError as exc:
            raise ConfigError(f"cannot read config file: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError("config file must be a mapping")
        data = loaded
    data = _merge(data, _env_overrides(os.environ if environ is None else environ))
    if overrides:
        data = _merge(data, overrides)
    config: Config = _build(Config, data, "")
    config.validate()
    return config
