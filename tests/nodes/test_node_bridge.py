"""`wearable_bridge` as a real process: emulated wearables over CurveZMQ -> `sensor_msgs/Imu`.

The bridge, the emulator (`rt-reid wearables`) and the recording harness run inside one
loopback-only network namespace (conftest.py); ZeroMQ and DDS both stay on its 127.0.0.1.
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from pathlib import Path

import pytest

from rt_reid import cli
from rt_reid.io.bag import bag_topics, read_messages
from rt_reid.names import Topic, parse_imu_topic, stamp_ns
from rt_reid_sim import SceneConfig, write_bag
from tests.nodes.conftest import BIN, NetNs, harness, node_command, wait_for_log

pytestmark = pytest.mark.slow

SCENE = SceneConfig(people=2, bystanders=0, duration_s=4.0, lidar="os1-32", columns=512, seed=1006)
ENDPOINT = "tcp://127.0.0.1:5555"  # the namespace is fresh: nothing else listens there
# Share of a topic's bag samples that must arrive as Imu messages. The emulator sends every
# sample, but on the loaded 2-core machine 73-86 % reached the Python recorder (90 % and more
# when idle): the loss is between the bridge's publisher and the recorder, not measured further.
MIN_DELIVERED = 0.5


def test_bridge_publishes_emulated_wearables_as_imu(netns: NetNs, tmp_path: Path) -> None:
    bag = tmp_path / "scene"
    write_bag(SCENE, bag)
    topics = sorted(t for t in bag_topics(bag) if t.startswith(Topic.IMU_PREFIX))
    identities = sorted({parse_imu_topic(t)[0] for t in topics})
    assert len(identities) == 2
    assert len(topics) == 8
    keys = tmp_path / "keys"
    for identity in identities:
        assert cli.main(["keys", "create", identity, "--dir", str(keys)]) == 0
    in_bag: dict[str, set[int]] = {topic: set() for topic in topics}
    for message in read_messages(bag, topics=topics):
        in_bag[message.topic].add(stamp_ns(message.message.header.stamp))

    bridge = netns.popen(
        # max_delay_s 5: on a loaded 2-core CI machine the emulator and the bridge can fall more
        # than the default 1 s behind the stream; staleness is tested in tests/wearables/.
        node_command(
            "wearable_bridge",
            "-p",
            f"endpoint:={ENDPOINT}",
            "-p",
            f"keys_dir:={keys}",
            "-p",
            "max_delay_s:=5.0",
            "-p",
            "stream_timeout_s:=20.0",
        ),
        "bridge",
    )
    wait_for_log(netns, "bridge", "listening on", bridge, 60.0)
    out = tmp_path / "imu.json"
    recorder = netns.popen(
        # Until the stream has ended (3 s without a sample), so a slow emulator start under load
        # does not cut the recording short; at most 60 s.
        harness("record", str(out), "--topics", *topics, "--seconds", "60", "--idle", "3"),
        "recorder",
    )
    wait_for_log(netns, "recorder", "harness: ready", recorder, 60.0)
    emulated = netns.run(
        [
            str(BIN / "rt-reid"),
            "wearables",
            "--bag",
            str(bag),
            "--endpoint",
            ENDPOINT,
            "--keys",
            str(keys),
        ],
        timeout=60,
    )
    assert emulated.returncode == 0, emulated.stdout + emulated.stderr
    assert recorder.wait(90) == 0, netns.log("recorder")
    bridge.send_signal(signal.SIGINT)
    assert bridge.wait(20) == 0, netns.log("bridge")
    assert "Traceback" not in netns.log("bridge")

    received = json.loads(out.read_text())["topics"]
    assert sorted(received) == topics
    for topic, messages in received.items():
        identity, site = parse_imu_topic(topic)
        assert {m["frame_id"] for m in messages} == {f"{identity}/{site}"}
        stamps = Counter(m["stamp_ns"] for m in messages)
        assert set(stamps) <= in_bag[topic]  # device stamps, unchanged
        assert max(stamps.values()) == 1  # nothing published twice
        assert len(stamps) >= MIN_DELIVERED * len(in_bag[topic]), (
            topic,
            len(stamps),
            netns.log("bridge")[-2000:],
            emulated.stdout[-1500:],
        )
