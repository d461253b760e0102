"""Wearable packets and sockets: raw TCP, oversized and malformed packets, a receiver that is not
there. Real CurveZMQ sockets on 127.0.0.1, every wait bounded."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rt_reid.evaluation.replay import bag_identities
from rt_reid.io.bag import bag_topics
from rt_reid.layouts import get_layout
from rt_reid.wearables import ImuPacket, KeyStore, WearableClient, WearableIngest, encode_packet
from rt_reid.wearables.packet import MAX_PACKET_BYTES
from tests.wearables.sink import UNIT_Q, ZERO, Collector, collecting_ingest, wait_for


@pytest.fixture
def keys(tmp_path: Path) -> KeyStore:
    store = KeyStore(tmp_path / "keys")
    store.create("alice", ("left_wrist",))
    return store


@pytest.fixture
def ingest(keys: KeyStore) -> Iterator[tuple[WearableIngest, Collector]]:
    with collecting_ingest(keys, max_delay_s=1.0) as running:
        yield running


def port(server: WearableIngest) -> int:
    return int(server.bound_endpoint.rsplit(":", 1)[1])


def alice(server: WearableIngest, keys: KeyStore) -> WearableClient:
    return WearableClient(
        endpoint=server.bound_endpoint,
        server_public_key=keys.server_public_key(),
        keys=keys.wearable_keys("alice"),
        identity="alice",
    )


def now_ns() -> np.ndarray:
    return np.array([time.time_ns()], dtype=np.int64)


RAW = {
    "http_request": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "random_bytes": bytes(range(256)) * 4,
    "zmtp_signature_then_garbage": b"\xff" + b"\0" * 8 + b"\x7f" + b"garbage" * 20,
    "connect_and_close": b"",
}


@pytest.mark.parametrize("case", sorted(RAW))
def test_raw_tcp_on_the_wearable_port_is_counted(ingest, case: str) -> None:
    server, collected = ingest
    with socket.create_connection(("127.0.0.1", port(server)), timeout=5) as raw:
        if RAW[case]:
            raw.sendall(RAW[case])
        time.sleep(0.1)
    assert wait_for(lambda: server.stats().rejected.get("handshake_failed", 0) == 1)
    assert collected.packets == []


def test_oversized_packet_is_refused_before_it_is_read(ingest, keys: KeyStore) -> None:
    server, collected = ingest
    client = alice(server, keys)
    client.wait_connected(5.0)
    client.send_raw(b"\0" * (50 * 1024 * 1024))  # 50 MB: ZMQ_MAXMSGSIZE drops the peer
    client.close(linger_s=20.0)  # returns once the bytes left or the receiver hung up
    # Read into memory, the packet would reach the decoder and count as malformed within ms.
    assert not wait_for(lambda: "malformed" in server.stats().rejected, timeout_s=2.0)
    assert server.stats().accepted_packets == 0
    assert collected.packets == []
    with alice(server, keys) as again:  # the ingest is still alive and accepts valid packets
        again.wait_connected(5.0)
        again.send("left_wrist", now_ns(), ZERO, ZERO, UNIT_Q)
        assert wait_for(lambda: server.stats().accepted_packets == 1)


def test_largest_valid_packet_is_accepted(ingest, keys: KeyStore) -> None:
    server, _ = ingest
    count = 256
    stamps = time.time_ns() - np.arange(count)[::-1].astype(np.int64) * 1_000_000
    packet = ImuPacket(
        "alice", "left_wrist", 0, stamps, np.zeros((count, 3), np.float32),
        np.zeros((count, 3), np.float32), np.tile(UNIT_Q, (count, 1)),
    )  # fmt: skip
    assert len(encode_packet(packet)) <= MAX_PACKET_BYTES
    with alice(server, keys) as client:
        client.wait_connected(5.0)
        client.send_raw(encode_packet(packet))
        assert wait_for(lambda: server.stats().accepted_samples == count)


MALFORMED = {
    "empty": b"",
    "bad_magic": b"XX" + b"\0" * 40,
    "truncated_header": encode_packet(ImuPacket("alice", "left_wrist", 0, now_ns(), ZERO, ZERO))[
        :5
    ],
    "nan_force": None,
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_packet_is_counted(ingest, keys: KeyStore, case: str) -> None:
    server, collected = ingest
    data = MALFORMED[case]
    if data is None:  # a NaN cannot be encoded by encode_packet: patch the bytes
        good = encode_packet(ImuPacket("alice", "left_wrist", 0, now_ns(), ZERO, ZERO, UNIT_Q))
        nan = np.float32(np.nan).tobytes()
        data = good[: len(good) - 40] + nan + good[len(good) - 36 :]
    with alice(server, keys) as client:
        client.wait_connected(5.0)
        client.send_raw(data)
        assert wait_for(lambda: server.stats().rejected.get("malformed", 0) == 1)
    assert collected.packets == []


def wearables(cli, bag: Path, keys_dir: Path, endpoint: str, *extra: str):
    return cli(
        "wearables", "--bag", bag, "--endpoint", endpoint, "--keys", keys_dir,
        "--connect-timeout-s", "0.5", *extra,
    )  # fmt: skip


@pytest.fixture
def scene_keys(tmp_path: Path, sim_bag: Path) -> KeyStore:
    store = KeyStore(tmp_path / "scene_keys")
    for identity in bag_identities(bag_topics(sim_bag)):
        store.create(identity, get_layout("lipd4").sites)
    return store


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_emulator_with_nothing_listening_exits_2_quickly(
    cli, sim_bag: Path, scene_keys: KeyStore
) -> None:
    started = time.monotonic()
    result = wearables(cli, sim_bag, scene_keys.directory, f"tcp://127.0.0.1:{free_port()}")
    assert result.code == 2
    assert "no wearable receiver answered" in result.err
    assert "sent" not in result.out
    assert time.monotonic() - started < 30  # bounded (the timeout is 0.5 s)


def test_emulator_with_a_receiver_that_refuses_its_keys(
    cli, sim_bag: Path, scene_keys: KeyStore, ingest
) -> None:
    server, _ = ingest  # allows only alice: the scene's wearables are unknown keys
    result = wearables(cli, sim_bag, scene_keys.directory, server.bound_endpoint)
    assert result.code == 2
    assert "refused wearable" in result.err


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (("--batch", "0"), "batch must be within"),
        (("--batch", "100000"), "batch must be within"),
        (("--identities", "nobody"), "no IMU topics for ['nobody']"),
    ],
    ids=["batch_0", "batch_huge", "unknown_identity"],
)
def test_emulator_options(cli, sim_bag: Path, scene_keys: KeyStore, extra, problem) -> None:
    result = wearables(cli, sim_bag, scene_keys.directory, "tcp://127.0.0.1:9", *extra)
    assert result.code == 2
    assert problem in result.err


def test_emulator_on_a_bag_without_imu(cli, sim_bag: Path, scene_keys: KeyStore, tmp_path) -> None:
    from tests.badinput.conftest import rewrite

    bag = rewrite(sim_bag, tmp_path / "bag", drop=["/imu/"])
    result = wearables(cli, bag, scene_keys.directory, "tcp://127.0.0.1:9")
    assert result.code == 2
    assert "no /imu/<identity>/<site> topics" in result.err


def test_emulator_without_keys(cli, sim_bag: Path, tmp_path: Path) -> None:
    result = wearables(cli, sim_bag, tmp_path / "no_keys", "tcp://127.0.0.1:9")
    assert result.code == 2
    assert "no_keys" in result.err
