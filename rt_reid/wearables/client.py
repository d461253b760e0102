"""Wearable side of the link: a CurveZMQ PUSH client that numbers and sends IMU packets."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import numpy as np
import zmq
from numpy.typing import NDArray

from rt_reid.errors import ConfigError
from rt_reid.wearables.keys import KeyPair
from rt_reid.wearables.packet import ImuPacket, encode_packet

SEND_HWM = 10_000  # packets buffered while the receiver is unreachable; send blocks beyond


class WearableClient:
    """One wearable key (an identity): sends packets for its sites with per-site sequence numbers.

    PUSH never drops: if the receiver is slow or away, `send` blocks once `SEND_HWM` packets
    are queued (a real device would drop its oldest samples instead).
    """

    def __init__(
        self,
        *,
        endpoint: str,
        server_public_key: bytes,
        keys: KeyPair,
        identity: str,
        context: zmq.Context[Any] | None = None,
    ) -> None:
        if keys.secret is None:
            raise ConfigError(f"the key of {identity!r} has no secret part")
        self.identity = identity
        self._context = context or zmq.Context.instance()
        self._socket = self._context.socket(zmq.PUSH)
        self._socket.sndhwm = SEND_HWM
        self._socket.curve_secretkey = keys.secret
        self._socket.curve_publickey = keys.public
        self._socket.curve_serverkey = server_public_key
        try:
            self._socket.connect(endpoint)
        except zmq.ZMQError as err:
            self._socket.close(linger=0)
            raise ConfigError(f"cannot connect wearable {identity!r} to {endpoint}: {err}") from err
        self._sequence: dict[str, int] = {}

    def __enter__(self) -> WearableClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self, *, linger_s: float = 2.0) -> None:
        """Close the socket, waiting up to `linger_s` for queued packets to leave."""
        self._socket.close(linger=int(linger_s * 1000))

    def send(
        self,
        site: str,
        stamps_ns: NDArray[np.int64],
        specific_force: NDArray[np.float32],
        angular_velocity: NDArray[np.float32],
        orientation_xyzw: NDArray[np.float32] | None = None,
    ) -> int:
        """Encode and send samples of `site` as one packet; return its sequence number."""
        sequence = self._sequence.get(site, -1) + 1
        packet = ImuPacket(
            identity=self.identity,
            site=site,
            sequence=sequence,
            stamps_ns=stamps_ns,
            specific_force=specific_force,
            angular_velocity=angular_velocity,
            orientation_xyzw=orientation_xyzw,
        )
        self._socket.send(encode_packet(packet), copy=False)
        self._sequence[site] = sequence
        return sequence

    def send_raw(self, data: bytes) -> None:
        """Send arbitrary bytes (tests and fault injection only)."""
        self._socket.send(data)
