"""Packet admission after CurveZMQ authentication: identity binding (anti-spoofing), replay checks.

CurveZMQ has already proven which public key sent a message (its ZMTP ``User-Id``); this module
decides whether that key may speak for the packet's identity and site, and whether the packet is
new. Every refusal is a `PacketRejectedError` whose machine-readable `reason` the ingest counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from rt_reid.errors import ConfigError, PacketError
from rt_reid.wearables.keys import Registration
from rt_reid.wearables.packet import ImuPacket, decode_packet

MALFORMED = "malformed"
UNKNOWN_KEY = "unknown_key"  # refused by CurveZMQ during the handshake (counted per connection)
HANDSHAKE_FAILED = "handshake_failed"  # no CurveZMQ, wrong server key, not ZMTP (per connection)
UNREGISTERED_KEY = "unregistered_key"
SPOOFED_IDENTITY = "spoofed_identity"
UNREGISTERED_SITE = "unregistered_site"
REPLAYED = "replayed"
STALE = "stale"
REJECTION_REASONS = (
    MALFORMED,
    UNKNOWN_KEY,
    HANDSHAKE_FAILED,
    UNREGISTERED_KEY,
    SPOOFED_IDENTITY,
    UNREGISTERED_SITE,
    REPLAYED,
    STALE,
)


class PacketRejectedError(PacketError):
    """A packet refused by the receiver; `reason` is one of `REJECTION_REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


@dataclass
class _StreamState:
    """What the receiver remembers about one (identity, site) stream."""

    sequence: int
    stamp_ns: int
    min_delay_s: float
    last_seen_s: float


class ReplayGuard:
    """Per-stream replay protection: sequence numbers and a timestamp window.

    A packet of stream (identity, site) is accepted only if its sequence number is larger than
    the last accepted one, its first sample is newer than the last accepted sample, and it is not
    late: its delay (receiver clock minus newest device stamp) may exceed the smallest delay seen
    on that stream by at most `max_delay_s`. This works with any device clock epoch. A stream
    silent for `stream_timeout_s` is forgotten, so a restarted device (sequence back at 0) is
    accepted again after that pause.
    """

    def __init__(self, *, max_delay_s: float, stream_timeout_s: float) -> None:
        if max_delay_s <= 0 or stream_timeout_s <= max_delay_s:
            raise ConfigError(
                "replay guard needs max_delay_s > 0 and stream_timeout_s > max_delay_s, got "
                f"{max_delay_s} and {stream_timeout_s}"
            )
        self.max_delay_s = max_delay_s
        self.stream_timeout_s = stream_timeout_s
        self._streams: dict[tuple[str, str], _StreamState] = {}

    def check(self, packet: ImuPacket, now_s: float) -> None:
        """Accept (and remember) `packet` received at `now_s`, or raise PacketRejectedError."""
        key = (packet.identity, packet.site)
        first_ns, last_ns = int(packet.stamps_ns[0]), int(packet.stamps_ns[-1])
        delay = now_s - last_ns * 1e-9
        state = self._streams.get(key)
        if state is not None and now_s - state.last_seen_s > self.stream_timeout_s:
            state = None
        if state is not None:
            if packet.sequence <= state.sequence:
                raise PacketRejectedError(
                    REPLAYED,
                    f"{key[0]}/{key[1]} sequence {packet.sequence} is not after {state.sequence}",
                )
            if first_ns <= state.stamp_ns:
                raise PacketRejectedError(
                    REPLAYED,
                    f"{key[0]}/{key[1]} sample stamp {first_ns} ns is not after "
                    f"{state.stamp_ns} ns",
                )
            if delay - state.min_delay_s > self.max_delay_s:
                raise PacketRejectedError(
                    STALE,
                    f"{key[0]}/{key[1]} packet is {delay - state.min_delay_s:.3f} s later than "
                    f"the stream's timing allows ({self.max_delay_s} s)",
                )
            state.sequence, state.stamp_ns, state.last_seen_s = packet.sequence, last_ns, now_s
            state.min_delay_s = min(state.min_delay_s, delay)
        else:
            self._streams[key] = _StreamState(packet.sequence, last_ns, delay, now_s)


class PacketVerifier:
    """Decode a packet from an authenticated key and admit it, or raise PacketRejectedError."""

    def __init__(self, *, allowed: dict[str, Registration], replay: ReplayGuard) -> None:
        self.allowed = allowed
        self.replay = replay

    def verify(self, user_id: str, data: bytes, now_s: float) -> ImuPacket:
        """`user_id` is the Z85 public key CurveZMQ authenticated for this message."""
        registration = self.allowed.get(user_id)
        if registration is None:
            raise PacketRejectedError(UNREGISTERED_KEY, f"key {user_id!r} is not in the registry")
        try:
            packet = decode_packet(data)
        except PacketError as err:
            raise PacketRejectedError(MALFORMED, str(err)) from err
        if packet.identity != registration.identity:
            raise PacketRejectedError(
                SPOOFED_IDENTITY,
                f"key of {registration.identity!r} sent a packet for {packet.identity!r}",
            )
        if packet.site not in registration.sites:
            raise PacketRejectedError(
                UNREGISTERED_SITE,
                f"{packet.identity!r} is not registered for site {packet.site!r}",
            )
        self.replay.check(packet, now_s)
        return packet
