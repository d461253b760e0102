"""CurveZMQ allow-list, spoofing and replay protection over real sockets on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zmq

from rt_reid.errors import ConfigError, PacketError
from rt_reid.runtime.imu_sample import ImuBatch
from rt_reid.wearables import (
    ImuPacket,
    KeyPair,
    KeyStore,
    ReplayGuard,
    WearableClient,
    WearableIngest,
    encode_packet,
    pipeline_sink,
)
from rt_reid.wearables.guard import PacketRejectedError
from tests.wearables.sink import UNIT_Q, ZERO, Collector, collecting_ingest, wait_for

WATCH = ("left_wrist",)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    store = KeyStore(tmp_path_factory.mktemp("keys"))
    store.create("alice", WATCH)
    store.create("bob", ("left_forearm", "right_forearm"))
    return store


@pytest.fixture
def ingest(keys: KeyStore) -> Iterator[tuple[WearableIngest, Collector]]:
    with collecting_ingest(keys, max_delay_s=0.5) as running:
        yield running


def client(server: WearableIngest, keys: KeyStore, key_owner: str, identity: str) -> WearableClient:
    return WearableClient(
        endpoint=server.bound_endpoint,
        server_public_key=keys.server_public_key(),
        keys=keys.wearable_keys(key_owner),
        identity=identity,
    )


def now_ns(offset_s: float = 0.0) -> np.ndarray:
    return np.array([time.time_ns() + int(offset_s * 1e9)], dtype=np.int64)


def test_endpoint_is_loopback(ingest: tuple[WearableIngest, Collector]) -> None:
    assert ingest[0].bound_endpoint.startswith("tcp://127.0.0.1:")


def test_allowed_keys_are_accepted(
    ingest: tuple[WearableIngest, Collector], keys: KeyStore
) -> None:
    server, collected = ingest
    with client(server, keys, "alice", "alice") as alice, client(server, keys, "bob", "bob") as bob:
        for i in range(20):
            stamps = now_ns() + i
            alice.send("left_wrist", stamps, ZERO + i, ZERO, UNIT_Q)
            bob.send("right_forearm", stamps, ZERO, ZERO + 0.01 * i, UNIT_Q)
        assert wait_for(lambda: server.stats().accepted_packets == 40)
    stats = server.stats()
    assert stats.rejected == {}
    assert stats.accepted_samples == 40
    alice_packets = [p for p in collected.packets if p.identity == "alice"]
    assert [p.sequence for p in alice_packets] == list(range(20))
    assert [float(p.specific_force[0, 0]) for p in alice_packets] == list(range(20))


def test_unknown_key_is_refused_in_the_handshake(
    ingest: tuple[WearableIngest, Collector], keys: KeyStore
) -> None:
    server, collected = ingest
    public, secret = zmq.curve_keypair()
    with WearableClient(
        endpoint=server.bound_endpoint,
        server_public_key=keys.server_public_key(),
        keys=KeyPair(public, secret),
        identity="alice",
    ) as intruder:
        intruder.send("left_wrist", now_ns(), ZERO, ZERO, UNIT_Q)
        assert wait_for(lambda: server.stats().rejected.get("unknown_key", 0) >= 1)
        intruder.close(linger_s=0)
    assert collected.packets == []
    assert server.stats().accepted_packets == 0


def test_wrong_server_key_never_delivers(
    ingest: tuple[WearableIngest, Collector], keys: KeyStore
) -> None:
    server, collected = ingest
    impostor_server, _ = zmq.curve_keypair()
    with WearableClient(
        endpoint=server.bound_endpoint,
        server_public_key=impostor_server,
        keys=keys.wearable_keys("alice"),
        identity="alice",
    ) as misconfigured:
        misconfigured.send("left_wrist", now_ns(), ZERO, ZERO, UNIT_Q)
        assert wait_for(lambda: server.stats().rejected.get("handshake_failed", 0) >= 1)
        misconfigured.close(linger_s=0)
    assert collected.packets == []


def test_client_without_curvezmq_is_refused(ingest: tuple[WearableIngest, Collector]) -> None:
    server, collected = ingest
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    plain = context.socket(zmq.PUSH)
    plain.connect(server.bound_endpoint)
    plain.send(encode_packet(ImuPacket("alice", "left_wrist", 0, now_ns(), ZERO, ZERO, UNIT_Q)))
    try:
        assert wait_for(lambda: server.stats().rejected.get("handshake_failed", 0) >= 1)
    finally:
        plain.close(linger=0)
    assert collected.packets == []
    assert server.stats().accepted_packets == 0


def test_spoofed_identity_and_unregistered_site_are_rejected(
    ingest: tuple[WearableIngest, Collector], keys: KeyStore
) -> None:
    server, collected = ingest
    with (
        client(server, keys, "alice", "bob") as spoofer,
        client(server, keys, "alice", "alice") as alice,
    ):
        spoofer.send("left_forearm", now_ns(), ZERO, ZERO, UNIT_Q)
        alice.send("right_forearm", now_ns(), ZERO, ZERO, UNIT_Q)
        alice.send("left_wrist", now_ns(), ZERO, ZERO, UNIT_Q)
        assert wait_for(lambda: server.stats().accepted_packets == 1)
        assert wait_for(lambda: server.stats().rejected_total == 2)
    rejected = server.stats().rejected
    assert rejected == {"spoofed_identity": 1, "unregistered_site": 1}
    assert [(p.identity, p.site) for p in collected.packets] == [("alice", "left_wrist")]


def test_replayed_and_stale_packets_are_rejected(
    ingest: tuple[WearableIngest, Collector], keys: KeyStore
) -> None:
    server, collected = ingest
    base = now_ns()

    def raw(sequence: int, stamps: np.ndarray) -> bytes:
        return encode_packet(ImuPacket("alice", "left_wrist", sequence, stamps, ZERO, ZERO, UNIT_Q))

    first = raw(5, base)
    with client(server, keys, "alice", "alice") as alice:
        alice.send_raw(first)
        assert wait_for(lambda: server.stats().accepted_packets == 1)
        alice.send_raw(first)  # exact replay
        alice.send_raw(raw(4, base + 1_000_000))  # sequence went back
        alice.send_raw(raw(6, base))  # new sequence, old sample stamp
        alice.send_raw(b"RW\x01garbage")
        time.sleep(0.7)
        alice.send_raw(raw(7, base + 5_000_000))  # new, but 0.7 s late for this stream: held back
        alice.send_raw(raw(8, now_ns()))  # a fresh packet is still accepted afterwards
        assert wait_for(lambda: server.stats().accepted_packets == 2)
        assert wait_for(lambda: server.stats().rejected_total == 5)
    assert server.stats().rejected == {"replayed": 3, "malformed": 1, "stale": 1}
    assert [p.sequence for p in collected.packets] == [5, 8]


def test_replay_guard_forgets_a_silent_stream() -> None:
    guard = ReplayGuard(max_delay_s=0.5, stream_timeout_s=2.0)

    def packet(sequence: int, stamp_s: float) -> ImuPacket:
        stamps = np.array([int(stamp_s * 1e9)], dtype=np.int64)
        return ImuPacket("alice", "left_wrist", sequence, stamps, ZERO, ZERO, UNIT_Q)

    guard.check(packet(10, 100.0), now_s=1000.0)
    with pytest.raises(PacketRejectedError, match="replayed"):
        guard.check(packet(0, 100.5), now_s=1000.5)
    guard.check(packet(0, 103.0), now_s=1003.0)  # device restarted after 3 s of silence
    with pytest.raises(PacketRejectedError, match="stale"):
        guard.check(packet(1, 103.1), now_s=1003.9)  # 0.8 s later than this stream's delay
    with pytest.raises(ConfigError, match="stream_timeout_s > max_delay_s"):
        ReplayGuard(max_delay_s=1.0, stream_timeout_s=1.0)


def test_key_outside_the_registry_is_a_config_error(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    store.create("alice", WATCH)
    zmq.auth.create_certificates(store.public_dir, "stray")
    with pytest.raises(ConfigError, match=r"stray\.key is allowed by CurveZMQ but has no entry"):
        store.allowed()


def test_revoked_key_is_refused(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    store.create("alice", WATCH)
    store.create("carol", WATCH)
    (store.public_dir / "carol.key").unlink()
    assert {r.identity for r in store.allowed().values()} == {"alice"}
    with (
        WearableIngest(
            endpoint="tcp://127.0.0.1:*",
            keys=store,
            sink=Collector(),
            max_delay_s=0.5,
            stream_timeout_s=5.0,
        ) as server,
        client(server, store, "carol", "carol") as carol,
    ):
        carol.send("left_wrist", now_ns(), ZERO, ZERO, UNIT_Q)
        assert wait_for(lambda: server.stats().rejected.get("unknown_key", 0) >= 1)
        carol.close(linger_s=0)
        assert server.stats().accepted_packets == 0


def test_registry_refuses_bad_names_and_duplicates(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    store.create("alice", WATCH)
    with pytest.raises(ConfigError, match="already has a key"):
        store.create("alice", WATCH)
    with pytest.raises(ConfigError, match="ROS name token"):
        store.create("../etc", WATCH)
    store.registry_path.write_text("version: 1\nwearables: [{identity: x}]\n")
    with pytest.raises(ConfigError, match="exactly identity, public_key and sites"):
        store.registrations()


class RecordingPipeline:
    """Records the batches ReidPipeline.add_imu_batch would receive."""

    def __init__(self) -> None:
        self.batches: list[ImuBatch] = []

    def add_imu_batch(self, batch: ImuBatch) -> None:
        self.batches.append(batch)


def test_pipeline_sink_feeds_each_packet_as_one_batch_and_needs_orientation() -> None:
    pipeline = RecordingPipeline()
    sink = pipeline_sink(pipeline)
    stamps = np.array([1_000_000_000, 1_005_000_000], dtype=np.int64)
    force = np.array([[0, 0, 9.8], [0, 1, 9.8]], dtype=np.float32)
    orientation = np.repeat(UNIT_Q, 2, axis=0)
    sink(ImuPacket("alice", "left_wrist", 0, stamps, force, force * 0, orientation))
    (batch,) = pipeline.batches
    assert (batch.identity, batch.site) == ("alice", "left_wrist")
    assert batch.stamps_s == pytest.approx([1.0, 1.005])
    assert batch.values()[1] == pytest.approx([0, 0, 0, 1, 0, 1, 9.8, 0, 0, 0])
    assert batch.values().dtype == np.float64
    with pytest.raises(PacketError, match="sends no orientation"):
        sink(ImuPacket("alice", "left_wrist", 1, stamps, force, force * 0, None))
    assert len(pipeline.batches) == 1
