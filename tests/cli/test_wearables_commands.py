"""`rt-reid keys` and `rt-reid wearables` (emulator) against a live ingest on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from rt_reid.cli import main
from rt_reid.io.bag import BagWriter, header, msg_class
from rt_reid.wearables import ImuPacket, KeyStore, WearableIngest

SITES = {"alice": ("left_wrist",), "bob": ("left_wrist",)}


def test_keys_create_and_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = tmp_path / "keys"
    assert main(["keys", "create", "alice", "--dir", str(keys), "--layout", "watch"]) == 0
    assert main(["keys", "create", "bob", "--dir", str(keys), "--sites", "a_site,b_site"]) == 0
    assert (keys / "public" / "alice.key").is_file()
    assert (keys / "private" / "alice.key_secret").is_file()
    assert (keys / "server.key_secret").is_file()
    assert (keys / "private").stat().st_mode & 0o077 == 0
    capsys.readouterr()
    assert main(["keys", "list", "--dir", str(keys)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("server public key: ")
    rows = [line.split("\t") for line in lines[1:]]
    assert [(r[0], r[2], r[3]) for r in rows] == [
        ("alice", "left_wrist", "allowed"),
        ("bob", "a_site,b_site", "allowed"),
    ]
    assert main(["keys", "create", "alice", "--dir", str(keys)]) == 2
    assert "already has a key" in capsys.readouterr().err
    assert main(["keys", "list", "--dir", str(tmp_path / "empty")]) == 2


def write_imu_bag(path: Path) -> dict[tuple[str, str], list[int]]:
    """IMU topics with a duplicated and a reordered message; returns the stamps a device sends."""
    imu, vec, quat = (
        msg_class("sensor_msgs/msg/Imu"),
        msg_class("geometry_msgs/msg/Vector3"),
        msg_class("geometry_msgs/msg/Quaternion"),
    )
    expected: dict[tuple[str, str], list[int]] = {}
    t0 = 5_000_000_000
    with BagWriter(path) as writer:
        for identity, sites in SITES.items():
            for site in sites:
                stamps = [t0 + i * 10_000_000 for i in range(40)]
                order = [*stamps[:10], stamps[9], *stamps[10:20], stamps[15], *stamps[20:]]
                for k, stamp in enumerate(order):
                    message = imu(
                        header=header(stamp, f"{identity}/{site}"),
                        orientation=quat(x=0.0, y=0.0, z=0.0, w=1.0),
                        orientation_covariance=np.zeros(9),
                        angular_velocity=vec(x=0.0, y=0.0, z=0.1 * k),
                        angular_velocity_covariance=np.zeros(9),
                        linear_acceleration=vec(x=stamp * 1e-9, y=0.0, z=9.81),
                        linear_acceleration_covariance=np.zeros(9),
                    )
                    writer.write(f"/imu/{identity}/{site}", stamp + k, message)
                expected[(identity, site)] = stamps
    return expected


def test_emulator_replays_bag_imu_as_authenticated_packets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = KeyStore(tmp_path / "keys")
    for identity, sites in SITES.items():
        store.create(identity, sites)
    expected = write_imu_bag(tmp_path / "imu_bag")
    received: list[ImuPacket] = []
    lock = threading.Lock()

    def sink(packet: ImuPacket) -> None:
        with lock:
            received.append(packet)

    with WearableIngest(
        endpoint="tcp://127.0.0.1:*", keys=store, sink=sink, max_delay_s=1.0, stream_timeout_s=5.0
    ) as ingest:
        started = time.monotonic()
        code = main(
            [
                "wearables",
                "--bag",
                str(tmp_path / "imu_bag"),
                "--endpoint",
                ingest.bound_endpoint,
                "--keys",
                str(tmp_path / "keys"),
                "--batch",
                "4",
            ]
        )
        elapsed = time.monotonic() - started
        deadline = time.monotonic() + 5.0
        while ingest.stats().accepted_samples < 80 and time.monotonic() < deadline:
            time.sleep(0.01)
        stats = ingest.stats()
    assert code == 0
    assert "sent 20 packets, 80 samples from 2 IMU streams" in capsys.readouterr().out
    assert elapsed >= 0.35  # real time: the bag spans 0.39 s
    assert stats.rejected == {}
    assert stats.accepted_samples == 80
    for stream, stamps in expected.items():
        packets = [p for p in received if (p.identity, p.site) == stream]
        assert [p.sequence for p in packets] == list(range(10))
        got = np.concatenate([p.stamps_ns for p in packets])
        np.testing.assert_array_equal(got, stamps)  # in order, duplicate and reordered dropped
        force = np.concatenate([p.specific_force[:, 0] for p in packets])
        np.testing.assert_allclose(force, np.asarray(stamps) * 1e-9, rtol=1e-6)


def test_emulator_refuses_identities_without_keys(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys")
    store.create("alice", SITES["alice"])
    write_imu_bag(tmp_path / "imu_bag")
    code = main(
        [
            "wearables",
            "--bag",
            str(tmp_path / "imu_bag"),
            "--endpoint",
            "tcp://127.0.0.1:9",
            "--keys",
            str(tmp_path / "keys"),
        ]
    )
    assert code == 2
