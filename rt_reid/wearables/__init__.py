"""Wearables over ZeroMQ: packet format, CurveZMQ allow-list, replay/spoofing checks and ingest."""

from rt_reid.wearables.client import WearableClient
from rt_reid.wearables.guard import (
    REJECTION_REASONS,
    PacketRejectedError,
    PacketVerifier,
    ReplayGuard,
)
from rt_reid.wearables.ingest import IngestStats, WearableIngest, pipeline_sink
from rt_reid.wearables.keys import KeyPair, KeyStore, Registration
from rt_reid.wearables.packet import ImuPacket, decode_packet, encode_packet

__all__ = [
    "REJECTION_REASONS",
    "ImuPacket",
    "IngestStats",
    "KeyPair",
    "KeyStore",
    "PacketRejectedError",
    "PacketVerifier",
    "Registration",
    "ReplayGuard",
    "WearableClient",
    "WearableIngest",
    "decode_packet",
    "encode_packet",
    "pipeline_sink",
]
