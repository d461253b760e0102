"""CurveZMQ key store: server key pair, per-identity wearable key pairs and the identity registry.

Layout of a key directory (created by ``rt-reid keys create``)::

    server.key                 receiver's public key (copy onto every wearable)
    server.key_secret          receiver's secret key (stays on the receiver)
    public/<identity>.key      allow-list of wearable public keys (read by zmq.auth)
    private/<identity>.key_secret   wearable secret key (move onto the wearable)
    registry.yaml              public key (Z85) -> identity and the sites it may send for

A wearable is accepted only if its public key file is in ``public/`` *and* the registry binds it
to an identity; the registry is what stops one wearable from sending for another identity.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
import zmq
import zmq.auth

from rt_reid.errors import ConfigError, PacketError
from rt_reid.wearables.packet import NAME_PATTERN, check_name

REGISTRY_FILE = "registry.yaml"
REGISTRY_VERSION = 1
SERVER_NAME = "server"
PUBLIC_DIR = "public"
PRIVATE_DIR = "private"
Z85_KEY = re.compile(r"[0-9A-Za-z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}")


@dataclass(frozen=True)
class Registration:
    """One wearable key: the identity it speaks for and the IMU sites it may send."""

    identity: str
    public_key: str  # Z85, 40 characters
    sites: tuple[str, ...]


@dataclass(frozen=True)
class KeyPair:
    """A CurveZMQ key pair as Z85 bytes (secret may be None for a public-only certificate)."""

    public: bytes
    secret: bytes | None


def _load_certificate(path: Path) -> KeyPair:
    """Read a zmq certificate file, wrapping failures in ConfigError."""
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot read CurveZMQ certificate {path}: {err}") from err
    return KeyPair(public=public, secret=secret)


def _validate_name(name: str, what: str) -> None:
    """Raise ConfigError unless `name` is usable as an identity/site (a ROS topic token)."""
    try:
        check_name(name, what)
    except PacketError as err:
        raise ConfigError(str(err)) from err


class KeyStore:
    """A key directory as laid out in the module docstring."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    @property
    def public_dir(self) -> Path:
        """Directory of allowed wearable public keys (the CurveZMQ allow-list)."""
        return self.directory / PUBLIC_DIR

    @property
    def registry_path(self) -> Path:
        """Path of the identity registry."""
        return self.directory / REGISTRY_FILE

    def server_keys(self) -> KeyPair:
        """Receiver key pair (secret included); ConfigError if missing."""
        path = self.directory / f"{SERVER_NAME}.key_secret"
        if not path.is_file():
            raise ConfigError(f"no server secret key {path}; run `rt-reid keys create` first")
        return _load_certificate(path)

    def server_public_key(self) -> bytes:
        """Receiver public key, which wearables need to connect."""
        path = self.directory / f"{SERVER_NAME}.key"
        if not path.is_file():
            raise ConfigError(f"no server public key {path}; run `rt-reid keys create` first")
        return _load_certificate(path).public

    def wearable_keys(self, identity: str) -> KeyPair:
        """A wearable's key pair from ``private/`` (what the device or emulator holds)."""
        path = self.directory / PRIVATE_DIR / f"{identity}.key_secret"
        if not path.is_file():
            raise ConfigError(f"no secret key for identity {identity!r} ({path} is missing)")
        return _load_certificate(path)

    def registrations(self) -> list[Registration]:
        """Registry entries, validated (an empty list when no registry exists yet)."""
        if not self.registry_path.is_file():
            return []
        try:
            data = yaml.safe_load(self.registry_path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"cannot read wearable registry {self.registry_path}: {err}") from err
        return _parse_registry(data, self.registry_path)

    def create(self, identity: str, sites: tuple[str, ...]) -> Registration:
        """Create a key pair for `identity` (and the server pair if missing) and register it."""
        _validate_name(identity, "identity")
        if not sites:
            raise ConfigError("a wearable must be registered for at least one site")
        for site in sites:
            _validate_name(site, "site")
        existing = self.registrations()
        if any(r.identity == identity for r in existing):
            raise ConfigError(f"identity {identity!r} already has a key in {self.registry_path}")
        for sub in (PUBLIC_DIR, PRIVATE_DIR):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory / PRIVATE_DIR, 0o700)
        if not (self.directory / f"{SERVER_NAME}.key_secret").is_file():
            zmq.auth.create_certificates(self.directory, SERVER_NAME)
        public_file, _ = zmq.auth.create_certificates(
            self.directory / PRIVATE_DIR, identity, metadata={"identity": identity}
        )
        public_path = Path(public_file)
        public_path.replace(self.public_dir / public_path.name)
        public = _load_certificate(self.public_dir / public_path.name).public.decode("ascii")
        registration = Registration(identity=identity, public_key=public, sites=tuple(sites))
        self._write_registry([*existing, registration])
        return registration

    def _write_registry(self, registrations: list[Registration]) -> None:
        """Write the registry atomically."""
        data = {
            "version": REGISTRY_VERSION,
            "wearables": [
                {"identity": r.identity, "public_key": r.public_key, "sites": list(r.sites)}
                for r in registrations
            ],
        }
        tmp = self.registry_path.with_suffix(".yaml.tmp")
        tmp.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        tmp.replace(self.registry_path)

    def allowed(self) -> dict[str, Registration]:
        """Map Z85 public key -> registration for every key in both ``public/`` and the registry.

        A public key file without a registry entry is a configuration error (it would pass
        CurveZMQ but could not be bound to an identity); a registry entry without a public key
        file is a revoked wearable and is left out.
        """
        registry = {r.public_key: r for r in self.registrations()}
        if not self.public_dir.is_dir():
            raise ConfigError(f"no allow-list directory {self.public_dir}")
        allowed: dict[str, Registration] = {}
        for path in sorted(self.public_dir.glob("*.key")):
            public = _load_certificate(path).public.decode("ascii")
            if public not in registry:
                raise ConfigError(
                    f"{path} is allowed by CurveZMQ but has no entry in {self.registry_path}"
                )
            allowed[public] = registry[public]
        return allowed


def _parse_registry(data: Any, source: Path) -> list[Registration]:
    """Validate the registry document and return its entries."""
    if not isinstance(data, dict) or data.get("version") != REGISTRY_VERSION:
        raise ConfigError(f"{source}: expected a mapping with version: {REGISTRY_VERSION}")
    entries = data.get("wearables")
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: 'wearables' must be a list")
    registrations: list[Registration] = []
    seen_keys: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"{source}: wearables[{index}]"
        if not isinstance(entry, dict) or set(entry) != {"identity", "public_key", "sites"}:
            raise ConfigError(f"{where} must have exactly identity, public_key and sites")
        identity, public, sites = entry["identity"], entry["public_key"], entry["sites"]
        if not isinstance(identity, str) or NAME_PATTERN.fullmatch(identity) is None:
            raise ConfigError(f"{where}: bad identity {identity!r}")
        if not isinstance(public, str) or Z85_KEY.fullmatch(public) is None:
            raise ConfigError(f"{where}: public_key must be a 40-character Z85 string")
        if (
            not isinstance(sites, list)
            or not sites
            or not all(isinstance(s, str) and NAME_PATTERN.fullmatch(s) for s in sites)
        ):
            raise ConfigError(f"{where}: sites must be a non-empty list of names")
        if public in seen_keys:
            raise ConfigError(f"{where}: public key registered twice")
        seen_keys.add(public)
        registrations.append(Registration(identity, public, tuple(sites)))
    return registrations


def curve_server_options(socket: zmq.Socket[Any], keys: KeyPair) -> None:
    """Make `socket` a CurveZMQ server with the receiver's key pair."""
    if keys.secret is None:
        raise ConfigError("the server certificate has no secret key")
    socket.curve_secretkey = keys.secret
    socket.curve_publickey = keys.public
    socket.curve_server = True
