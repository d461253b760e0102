"""Wearable side of the link: a CurveZMQ PUSH client that numbers and sends IMU packets."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

import numpy as np
import zmq
from numpy.typing import NDArray
from zmq.utils.monitor import recv_monitor_message

from rt_reid.errors import ConfigError, PacketError
from rt_reid.wearables.keys import KeyPair
from rt_reid.wearables.packet import ImuPacket, encode_packet

SEND_HWM = 10_000  # packets buffered for a slow receiver; send waits beyond
SEND_TIMEOUT_S = 5.0  # longest `send` waits for the receiver before it raises PacketError


class WearableClient:
    """One wearable key (an identity): sends packets for its sites with per-site sequence numbers.

    PUSH never drops: while the receiver is away packets queue; once `SEND_HWM` are queued,
    `send` waits at most `send_timeout_s` and then raises PacketError, so it never blocks
    without bound. `wait_connected` checks that a receiver completed the handshake at all.
    """

    def __init__(
        self,
        *,
        endpoint: str,
        server_public_key: bytes,
        keys: KeyPair,
        identity: str,
        context: zmq.Context[Any] | None = None,
        send_timeout_s: float = SEND_TIMEOUT_S,
    ) -> None:
        if keys.secret is None:
            raise ConfigError(f"the key of {identity!r} has no secret part")
        self.identity = identity
        self._context = context or zmq.Context.instance()
        self._socket = self._context.socket(zmq.PUSH)
        self._socket.sndhwm = SEND_HWM
        self._socket.sndtimeo = round(send_timeout_s * 1000)
        self.endpoint = endpoint
        self._send_timeout_s = send_timeout_s
        self._monitor = self._socket.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_SUCCEEDED
            | zmq.EVENT_HANDSHAKE_FAILED_AUTH
            | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
        )
        self._socket.curve_secretkey = keys.secret
        self._socket.curve_publickey = keys.public
        self._socket.curve_serverkey = server_public_key
        try:
            self._socket.connect(endpoint)
        except zmq.ZMQError as err:
            self._close_monitor()
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
        self._close_monitor()
        self._socket.close(linger=int(linger_s * 1000))

    def _close_monitor(self) -> None:
        """Stop and close the handshake monitor (idempotent)."""
        if not self._monitor.closed:
            self._socket.disable_monitor()
            self._monitor.close(linger=0)

    def wait_connected(self, timeout_s: float) -> None:
        """Wait until the receiver completed the CurveZMQ handshake; ConfigError if it did not.

        The error says whether nothing answered at the endpoint or the handshake was refused
        (wrong server key, or this wearable's key is not allowed).
        """
        deadline = time.monotonic() + timeout_s
        refused = ""
        while (remaining := deadline - time.monotonic()) > 0:
            if not self._monitor.poll(round(remaining * 1000)):
                break
            event = recv_monitor_message(self._monitor)
            if event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                return
            refused = zmq.Event(event["event"]).name or str(event["event"])
        if refused:
            raise ConfigError(
                f"the receiver at {self.endpoint} refused wearable {self.identity!r} "
                f"({refused}): is its key allowed there, and is KEYS/server.key the receiver's?"
            )
        raise ConfigError(
            f"no wearable receiver answered at {self.endpoint} within {timeout_s:g} s: start "
            "`rt-reid run` or the wearable bridge first, or check the endpoint"
        )

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
        try:
            self._socket.send(encode_packet(packet), copy=False)
        except zmq.Again as err:
            raise PacketError(
                f"wearable {self.identity!r}: the receiver at {self.endpoint} took no packet for "
                f"{self._send_timeout_s:g} s (stopped, unreachable or stalled)"
            ) from err
        self._sequence[site] = sequence
        return sequence

    def send_raw(self, data: bytes) -> None:
        """Send arbitrary bytes (tests and fault injection only)."""
        self._socket.send(data)
