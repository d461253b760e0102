"""`rt-reid keys`: create and list CurveZMQ key pairs of wearables (and the receiver's own pair)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rt_reid.errors import ConfigError
from rt_reid.layouts import LAYOUTS, get_layout
from rt_reid.wearables.keys import KeyStore


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`keys create IDENTITY --dir DIR [--layout L | --sites A,B]` and `keys list --dir DIR`."""
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a key pair for IDENTITY and register it")
    create.add_argument("identity", help="identity the wearable speaks for (a ROS name token)")
    create.add_argument("--dir", type=Path, required=True, help="key directory")
    sites = create.add_mutually_exclusive_group()
    sites.add_argument(
        "--layout",
        choices=sorted(LAYOUTS),
        default="lipd4",
        help="register every site of this wearable layout (default: lipd4)",
    )
    sites.add_argument("--sites", help="comma-separated sites instead of a layout")
    listing = actions.add_parser("list", help="list registered wearables and their public keys")
    listing.add_argument("--dir", type=Path, required=True, help="key directory")


def run(args: argparse.Namespace) -> int:
    """Create or list keys; prints one line per wearable."""
    store = KeyStore(args.dir)
    if args.action == "create":
        if args.sites is not None:
            sites = tuple(s.strip() for s in args.sites.split(",") if s.strip())
        else:
            sites = get_layout(args.layout).sites
        registration = store.create(args.identity, sites)
        print(f"created {registration.identity}: public key {registration.public_key}")
        print(f"  allow-list entry: {store.public_dir / (registration.identity + '.key')}")
        print(
            f"  secret for the wearable: {store.directory / 'private' / registration.identity}"
            ".key_secret (move it onto the device)"
        )
        return 0
    if not store.registry_path.is_file():
        raise ConfigError(f"{args.dir} holds no wearable registry; create a key first")
    allowed = store.allowed()
    print(f"server public key: {store.server_public_key().decode()}")
    for registration in store.registrations():
        state = "allowed" if registration.public_key in allowed else "revoked (no public key file)"
        print(
            f"{registration.identity}\t{registration.public_key}\t{','.join(registration.sites)}"
            f"\t{state}"
        )
    return 0
