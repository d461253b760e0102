"""Wearable ingest: a CurveZMQ PULL server that admits authenticated IMU packets and hands them on.

The same ingest feeds the pipeline directly (`pipeline_sink`) in ``rt-reid run`` and feeds the
ROS bridge node, which republishes each packet as `sensor_msgs/Imu`. One receive thread owns the
sockets; the sink is called on that thread, so it must be quick (``ReidPipeline.add_imu_batch``
takes a packet in one step).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol

import zmq
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils.monitor import recv_monitor_message

from rt_reid.errors import ConfigError
from rt_reid.runtime.imu_sample import ImuBatch
from rt_reid.wearables.guard import (
    HANDSHAKE_FAILED,
    MALFORMED,
    UNKNOWN_KEY,
    PacketRejectedError,
    PacketVerifier,
    ReplayGuard,
)
from rt_reid.wearables.keys import KeyStore, curve_server_options
from rt_reid.wearables.packet import MAX_PACKET_BYTES, ImuPacket

LOG = logging.getLogger(__name__)
PacketSink = Callable[[ImuPacket], None]
RECEIVE_HWM = 100_000  # packets queued in the kernel/ZMQ before senders block (never dropped)
DRAIN_BATCH = 1000  # packets handled per poll wake-up before checking for stop
DOC = "doc"  # field metadata key: the parameter's meaning (CLI help, ROS descriptor, README)


@dataclass(frozen=True)
class IngestTiming:
    """Replay-guard timing of the wearable ingest: the one source of these defaults for
    `rt-reid run` (``--max-delay-s``, ``--stream-timeout-s``) and the ROS ``wearable_bridge``.
    """

    max_delay_s: float = field(
        default=1.0,
        metadata={
            DOC: "wearable packets later than this, relative to their stream's best delay, are "
            "rejected as stale (s)"
        },
    )
    stream_timeout_s: float = field(
        default=5.0,
        metadata={
            DOC: "a wearable stream silent this long is forgotten, so a restarted device is "
            "accepted (s)"
        },
    )


@dataclass
class IngestStats:
    """Counters of the ingest (a snapshot; safe to read from any thread)."""

    accepted_packets: int = 0
    accepted_samples: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    sink_errors: int = 0

    @property
    def rejected_total(self) -> int:
        """All refusals, including CurveZMQ handshake refusals of unknown keys."""
        return sum(self.rejected.values())


class ImuSink(Protocol):
    """What `pipeline_sink` needs: ``ReidPipeline.add_imu_batch``."""

    def add_imu_batch(self, batch: ImuBatch) -> object:
        """Buffer the samples of one IMU (the pipeline counts those it refuses)."""


def pipeline_sink(pipeline: ImuSink) -> PacketSink:
    """Sink that feeds each packet to ``pipeline.add_imu_batch`` as one batch.

    The IMU features need orientation, so a packet without it raises PacketError (counted as a
    sink error by the ingest).
    """

    def sink(packet: ImuPacket) -> None:
        pipeline.add_imu_batch(packet.imu_batch())

    return sink


class WearableIngest:
    """Receive wearable packets on `endpoint` (CurveZMQ server, allow-list from `keys`).

    Use as a context manager or call `start()`/`stop()`. `endpoint` may use a wildcard port
    (``tcp://127.0.0.1:*``); `bound_endpoint` tells the port actually bound.
    """

    def __init__(
        self,
        *,
        endpoint: str,
        keys: KeyStore,
        sink: PacketSink,
        max_delay_s: float,
        stream_timeout_s: float,
    ) -> None:
        self.endpoint = endpoint
        self.keys = keys
        self.sink = sink
        self._verifier = PacketVerifier(
            allowed=keys.allowed(),
            replay=ReplayGuard(max_delay_s=max_delay_s, stream_timeout_s=stream_timeout_s),
        )
        self._stats = IngestStats()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._context: zmq.Context[Any] | None = None
        self._auth: ThreadAuthenticator | None = None
        self._socket: zmq.Socket[Any] | None = None
        self._monitor: zmq.Socket[Any] | None = None
        self.bound_endpoint = ""

    def __enter__(self) -> WearableIngest:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the authenticator, bind the socket and start the receive thread."""
        if not self._verifier.allowed:
            raise ConfigError(f"no wearable keys are allowed in {self.keys.directory}")
        server = self.keys.server_keys()
        self._context = zmq.Context()
        self._auth = ThreadAuthenticator(self._context, log=logging.getLogger(f"{__name__}.zap"))
        self._auth.start()
        self._auth.configure_curve(domain="*", location=str(self.keys.public_dir))
        socket = self._context.socket(zmq.PULL)
        socket.rcvhwm = RECEIVE_HWM
        socket.linger = 0
        # A longer message is refused by ZeroMQ before it is read into memory; the sender is
        # disconnected, which the monitor reports as a connection closed without a packet.
        socket.maxmsgsize = MAX_PACKET_BYTES
        curve_server_options(socket, server)
        try:
            socket.bind(self.endpoint)
        except zmq.ZMQError as err:
            socket.close()
            self._shutdown_context()
            raise ConfigError(f"cannot bind wearable ingest to {self.endpoint}: {err}") from err
        self.bound_endpoint = socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._monitor = socket.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_FAILED_AUTH
            | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
            | zmq.EVENT_HANDSHAKE_SUCCEEDED
            | zmq.EVENT_ACCEPTED
            | zmq.EVENT_DISCONNECTED
        )
        # Accepted connections (fds) without a handshake result yet, oldest first: handshake
        # events carry no fd, so each resolves the oldest one (connections handshake in order).
        self._handshaking: list[int] = []
        self._socket = socket
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="wearable-ingest", daemon=True)
        self._thread.start()
        LOG.info(
            "wearable ingest on %s: %d allowed keys",
            self.bound_endpoint,
            len(self._verifier.allowed),
        )

    def stop(self) -> None:
        """Stop the receive thread and release sockets, authenticator and context."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._shutdown_context()

    def _shutdown_context(self) -> None:
        """Stop the authenticator and terminate the context (sockets are closed by then)."""
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        if self._context is not None:
            self._context.term()
            self._context = None

    def stats(self) -> IngestStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return IngestStats(
                accepted_packets=self._stats.accepted_packets,
                accepted_samples=self._stats.accepted_samples,
                rejected=dict(self._stats.rejected),
                sink_errors=self._stats.sink_errors,
            )

    def _reject(self, reason: str, message: str) -> None:
        """Count a refusal; log the 1st, 10th, 100th... of each reason as a warning."""
        with self._lock:
            count = self._stats.rejected.get(reason, 0) + 1
            self._stats.rejected[reason] = count
        level = logging.WARNING if math.log10(count).is_integer() else logging.DEBUG
        LOG.log(level, "rejected wearable packet (%s, %d so far): %s", reason, count, message)

    def _run(self) -> None:
        """Receive loop: owns the sockets until stop() is called."""
        assert self._socket is not None
        assert self._monitor is not None
        socket, monitor = self._socket, self._monitor
        poller = zmq.Poller()
        poller.register(socket, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                ready = dict(poller.poll(100))
                if monitor in ready:
                    while monitor.poll(0):
                        self._handshake_failed(recv_monitor_message(monitor))
                if socket in ready:
                    for _ in range(DRAIN_BATCH):
                        try:
                            frame = socket.recv(flags=zmq.NOBLOCK, copy=False)
                        except zmq.Again:
                            break
                        self._handle(frame, socket)
        finally:
            socket.disable_monitor()
            monitor.close(linger=0)
            socket.close(linger=0)
            self._socket = self._monitor = None

    def _handshake_failed(self, event: Mapping[str, Any]) -> None:
        """Count a refused connection: an unknown key, or no/incompatible CurveZMQ at all.

        A connection that closes before any handshake result sent no ZMTP at all (raw TCP, a port
        scanner, HTTP): counted as `handshake_failed` too.
        """
        kind, fd = event["event"], int(event["value"])
        if kind == zmq.EVENT_ACCEPTED:
            self._handshaking.append(fd)
            return
        if kind == zmq.EVENT_DISCONNECTED:
            if fd in self._handshaking:
                self._handshaking.remove(fd)
                self._reject(
                    HANDSHAKE_FAILED,
                    "a connection closed without a ZMTP handshake (raw TCP, not ZeroMQ) or sent "
                    f"a message over {MAX_PACKET_BYTES} bytes",
                )
            return
        if self._handshaking:
            self._handshaking.pop(0)
        if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            return
        if kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            self._reject(
                UNKNOWN_KEY, f"CurveZMQ refused a client key (ZAP status {event['value']})"
            )
        else:
            self._reject(
                HANDSHAKE_FAILED,
                f"a client failed the CurveZMQ handshake ({zmq.Event(event['event']).name}, "
                f"detail {event['value']}): no CurveZMQ, or the wrong server key",
            )

    def _handle(self, frame: zmq.Frame, socket: zmq.Socket[Any]) -> None:
        """Verify one message and pass it to the sink."""
        if frame.more:
            while socket.getsockopt(zmq.RCVMORE):
                socket.recv()
            self._reject(MALFORMED, "multi-part message (a packet is a single frame)")
            return
        try:
            packet = self._verifier.verify(str(frame.get("User-Id")), frame.bytes, time.time())
        except PacketRejectedError as err:
            self._reject(err.reason, str(err))
            return
        try:
            self.sink(packet)
        except Exception as err:  # a faulty sink must not stop the ingest
            with self._lock:
                self._stats.sink_errors += 1
                errors = self._stats.sink_errors
            if math.log10(errors).is_integer():
                LOG.warning("wearable sink failed (%d so far): %s", errors, err)
            return
        with self._lock:
            self._stats.accepted_packets += 1
            self._stats.accepted_samples += len(packet.stamps_ns)
