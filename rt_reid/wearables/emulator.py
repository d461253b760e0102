"""Wearable emulator: replay a bag's ``/imu/<identity>/<site>`` topics as authenticated packets.

Each identity becomes one `WearableClient` with that identity's secret key, sending in real time
(bag receive timestamps, scaled by `rate`, see `pacing.BagPacer`) so a deployment can be tested
without hardware.
Samples keep the device stamps of the bag; a sample not newer than the last one sent for its
stream (bags may hold reordered or duplicated messages) is skipped, as a device sends in order.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from rt_reid.errors import ConfigError, MessageError, PacketError, ReidError
from rt_reid.io.bag import bag_topics, read_messages
from rt_reid.io.ros_msgs import imu_sample
from rt_reid.names import Topic, parse_imu_topic, stamp_ns
from rt_reid.wearables.client import WearableClient
from rt_reid.wearables.keys import KeyStore
from rt_reid.wearables.pacing import BagPacer
from rt_reid.wearables.packet import MAX_SAMPLES

LOG = logging.getLogger(__name__)
IMU_TYPE = "sensor_msgs/msg/Imu"
CONNECT_TIMEOUT_S = 15.0  # how long to wait for the receiver's CurveZMQ handshake at start


@dataclass
class EmulatorStats:
    """What the emulator sent, per run."""

    packets: int = 0
    samples: int = 0
    skipped_out_of_order: int = 0
    skipped_invalid: int = 0
    streams: set[tuple[str, str]] = field(default_factory=set)


@dataclass
class _Pending:
    """Samples of one stream waiting to fill a packet."""

    stamps: list[int] = field(default_factory=list)
    force: list[tuple[float, float, float]] = field(default_factory=list)
    gyro: list[tuple[float, float, float]] = field(default_factory=list)
    orientation: list[tuple[float, float, float, float]] = field(default_factory=list)
    last_stamp: int = 0


def _is_stream(topic: str) -> bool:
    """True for a topic of the form /imu/<identity>/<site>."""
    try:
        parse_imu_topic(topic)
    except ConfigError:
        return False
    return True


class BagWearableEmulator:
    """Replay the IMU topics of `bag` to `endpoint`, `batch` samples per packet."""

    def __init__(
        self,
        *,
        bag: Path,
        endpoint: str,
        keys: KeyStore,
        rate: float,
        batch: int,
        identities: tuple[str, ...] | None = None,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
    ) -> None:
        if not 1 <= batch <= MAX_SAMPLES:
            raise ConfigError(f"batch must be within 1..{MAX_SAMPLES}, got {batch}")
        topics = [
            topic
            for topic, (msgtype, _) in bag_topics(bag).items()
            if topic.startswith(Topic.IMU_PREFIX) and msgtype == IMU_TYPE
        ]
        ignored = [t for t in topics if not _is_stream(t)]
        if ignored:
            LOG.warning("ignoring IMU topics that are not /imu/<identity>/<site>: %s", ignored)
        topics = [t for t in topics if _is_stream(t)]
        streams = [parse_imu_topic(topic) for topic in topics]
        available = sorted({identity for identity, _ in streams})
        chosen = available if identities is None else list(identities)
        missing = sorted(set(chosen) - set(available))
        if missing:
            raise ConfigError(f"{bag} has no IMU topics for {missing}; it has {available}")
        if not chosen:
            raise ConfigError(f"{bag} has no /imu/<identity>/<site> topics of type {IMU_TYPE}")
        self.bag = bag
        self.endpoint = endpoint
        self.keys = keys
        self.rate = rate
        self.batch = batch
        self.identities = tuple(chosen)
        self.connect_timeout_s = connect_timeout_s
        self.topics = [t for t, (i, _) in zip(topics, streams, strict=True) if i in chosen]
        self._server_key = keys.server_public_key()
        self._key_pairs = {identity: keys.wearable_keys(identity) for identity in chosen}

    def run(
        self, *, start_at: float | None = None, stop: threading.Event | None = None
    ) -> EmulatorStats:
        """Send the whole bag in real time (or until `stop` is set); return what was sent.

        The bag's start plays at Unix time `start_at` (default: now); give ``rt-reid run`` the
        same instant so IMU samples and LiDAR frames of the same moment leave together. Raises
        ConfigError when no receiver completes the handshake within `connect_timeout_s`, and
        ReidError (with the count sent so far) when the receiver stops taking packets.
        """
        stats = EmulatorStats()
        context: zmq.Context[Any] = zmq.Context()
        clients = {
            identity: WearableClient(
                endpoint=self.endpoint,
                server_public_key=self._server_key,
                keys=pair,
                identity=identity,
                context=context,
            )
            for identity, pair in self._key_pairs.items()
        }
        pending: dict[tuple[str, str], _Pending] = {}
        try:
            for client in clients.values():
                client.wait_connected(self.connect_timeout_s)
            pacer = BagPacer(self.bag, rate=self.rate, start_at=start_at)
            self._send_all(clients, pending, pacer, stats, stop)
        except PacketError as err:
            raise ReidError(
                f"{err}; {stats.packets} packets ({stats.samples} samples) were handed over "
                "before that"
            ) from err
        finally:
            for client in clients.values():
                client.close()
            context.term()
        LOG.info(
            "emulator sent %d packets (%d samples) for %d streams; skipped %d out-of-order and "
            "%d invalid samples",
            stats.packets,
            stats.samples,
            len(stats.streams),
            stats.skipped_out_of_order,
            stats.skipped_invalid,
        )
        return stats

    def _send_all(
        self,
        clients: dict[str, WearableClient],
        pending: dict[tuple[str, str], _Pending],
        pacer: BagPacer,
        stats: EmulatorStats,
        stop: threading.Event | None,
    ) -> None:
        """Read the IMU topics in bag order and send them in packets of `batch` samples."""
        for message in read_messages(self.bag, topics=self.topics):
            if stop is not None and stop.is_set():
                break
            pacer.wait(message.timestamp_ns)
            stream = parse_imu_topic(message.topic)
            buffer = pending.setdefault(stream, _Pending())
            sample_ns = stamp_ns(message.message.header.stamp)
            if sample_ns <= buffer.last_stamp:
                stats.skipped_out_of_order += 1
                continue
            try:
                sample = imu_sample(message.message, identity=stream[0], site=stream[1])
            except MessageError as err:
                stats.skipped_invalid += 1
                if stats.skipped_invalid == 1:
                    LOG.warning("skipping invalid IMU messages on %s: %s", message.topic, err)
                continue
            buffer.last_stamp = sample_ns
            buffer.stamps.append(sample_ns)
            buffer.force.append(sample.specific_force)
            buffer.gyro.append(sample.angular_velocity)
            buffer.orientation.append(sample.orientation_xyzw)
            if len(buffer.stamps) >= self.batch:
                self._flush(clients[stream[0]], stream, buffer, stats)
        for stream, buffer in pending.items():
            if buffer.stamps:
                self._flush(clients[stream[0]], stream, buffer, stats)

    @staticmethod
    def _flush(
        client: WearableClient, stream: tuple[str, str], buffer: _Pending, stats: EmulatorStats
    ) -> None:
        """Send the pending samples of one stream as one packet."""
        client.send(
            stream[1],
            np.asarray(buffer.stamps, dtype=np.int64),
            np.asarray(buffer.force, dtype=np.float32),
            np.asarray(buffer.gyro, dtype=np.float32),
            np.asarray(buffer.orientation, dtype=np.float32),
        )
        stats.packets += 1
        stats.samples += len(buffer.stamps)
        stats.streams.add(stream)
        buffer.stamps.clear()
        buffer.force.clear()
        buffer.gyro.clear()
        buffer.orientation.clear()
