"""IMU ingest cost per message: one message at a time vs a frame's worth at once, in one run.

    OMP_NUM_THREADS=1 python bench/bench_imu_ingest.py                 # 8 and 32 wearers, lipd4
    OMP_NUM_THREADS=1 python bench/bench_imu_ingest.py --people 8 --frames 100

Every wearer carries the four `lipd4` IMUs at 100 Hz, so a 10 Hz LiDAR frame brings 40 Imu
messages per wearer. Per frame, both paths start from the stored CDR bytes (what a bag reader
yields) and end with the samples validated in the pipeline's buffers (`ImuStore.stats`):
- per message: `deserialize_cdr` -> `ros_msgs.imu_sample` -> `ImuStore.add`, as the ROS node
  does in its callback (and the replay did before);
- batch: `ros_msgs.decode_imu` on all messages of the frame -> one `ImuStore.add_batch` per
  device, as the replay does now.
Wearable packets likewise: each sample to `ImuStore.add` (what `pipeline_sink` did) vs the packet
as one `ImuBatch`. Reading the buffers (resampling) is the same for both and is not timed.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from rt_reid.io.bag import RawMessage, deserialize, header, msg_class, typestore
from rt_reid.io.ros_msgs import decode_imu, imu_sample
from rt_reid.layouts import get_layout
from rt_reid.runtime.features import GRAVITY
from rt_reid.runtime.imu_buffer import ImuStore, ImuStoreParams
from rt_reid.runtime.imu_sample import ImuSample
from rt_reid.wearables.packet import ImuPacket

IMU_RATE, FRAME_RATE = 100.0, 10.0
PER_FRAME = round(IMU_RATE / FRAME_RATE)
IMU_TYPE = "sensor_msgs/msg/Imu"
PARAMS = ImuStoreParams(
    buffer_s=5.0, max_rate_hz=400.0, max_gap_s=0.15, clock_jump_s=1.0, silence_s=1.0
)


@dataclass(frozen=True)
class Frame:
    """One LiDAR frame's worth of IMU data: Imu messages in bag order, one packet per device."""

    messages: list[RawMessage]
    packets: list[ImuPacket]


def frames(
    people: int, count: int, seed: int = 0
) -> tuple[list[str], tuple[str, ...], list[Frame]]:
    """`count` frames of `people` lipd4 wearers: serialised Imu messages and wearable packets."""
    sites = get_layout("lipd4").sites
    names = [f"wearer_{k:02d}" for k in range(people)]
    rng = np.random.default_rng(seed)
    imu, vec = msg_class(IMU_TYPE), msg_class("geometry_msgs/msg/Vector3")
    quat = msg_class("geometry_msgs/msg/Quaternion")
    store = typestore()
    out = []
    for frame in range(count):
        stamps = (frame * PER_FRAME + np.arange(PER_FRAME)) * 10_000_000
        devices = [(name, site) for name in names for site in sites]
        q = Rotation.random(len(devices) * PER_FRAME, random_state=rng).as_quat()
        q = q.reshape(len(devices), PER_FRAME, 4)
        a = rng.normal(0.0, 2.0, (len(devices), PER_FRAME, 3)) + np.array([0.0, 0.0, GRAVITY])
        w = rng.normal(0.0, 0.5, (len(devices), PER_FRAME, 3))
        messages = []
        for k, ns in enumerate(stamps.tolist()):  # bag order: by stamp, devices interleaved
            for d, (name, site) in enumerate(devices):
                msg = imu(
                    header=header(ns, f"{name}/{site}"),
                    orientation=quat(*q[d, k]),
                    orientation_covariance=np.zeros(9),
                    angular_velocity=vec(*w[d, k]),
                    angular_velocity_covariance=np.zeros(9),
                    linear_acceleration=vec(*a[d, k]),
                    linear_acceleration_covariance=np.zeros(9),
                )
                data = store.serialize_cdr(msg, IMU_TYPE)
                messages.append(RawMessage(f"/imu/{name}/{site}", IMU_TYPE, ns, data))
        packets = [
            ImuPacket(
                name,
                site,
                frame,
                stamps,
                a[d].astype(np.float32),
                w[d].astype(np.float32),
                q[d].astype(np.float32),
            )
            for d, (name, site) in enumerate(devices)
        ]
        out.append(Frame(messages, packets))
    return names, sites, out


def per_message(store: ImuStore, frame: Frame) -> None:
    """The ROS callback's path (and the replay's before): each message on its own."""
    for raw in frame.messages:
        _, _, identity, site = raw.topic.split("/")
        store.add(imu_sample(deserialize("bench", raw).message, identity=identity, site=site))
    store.stats()  # validates what was queued


def batched(store: ImuStore, frame: Frame) -> None:
    """The replay's path: the frame's messages decoded at once, each device's buffered at once."""
    rows: dict[str, list[int]] = {}
    for row, raw in enumerate(frame.messages):
        rows.setdefault(raw.topic, []).append(row)
    decoded = decode_imu(
        [raw.data for raw in frame.messages],
        decode=lambda row: deserialize("bench", frame.messages[row]).message,
    )
    for topic, device in rows.items():
        _, _, identity, site = topic.split("/")
        store.add_batch(decoded.batch(identity, site, np.array(device)))


def packet_samples(store: ImuStore, frame: Frame) -> None:
    """Each sample of each packet on its own (what `pipeline_sink` did before)."""
    for packet in frame.packets:
        assert packet.orientation_xyzw is not None
        stamps = packet.stamps_s
        for i in range(len(stamps)):
            store.add(
                ImuSample(
                    packet.identity,
                    packet.site,
                    float(stamps[i]),
                    tuple(packet.orientation_xyzw[i].tolist()),
                    tuple(packet.specific_force[i].tolist()),
                    tuple(packet.angular_velocity[i].tolist()),
                )
            )
    store.stats()


def packet_batches(store: ImuStore, frame: Frame) -> None:
    """Each packet as one batch (`pipeline_sink` now)."""
    for packet in frame.packets:
        store.add_batch(packet.imu_batch())


def timed(
    paths: list[Callable[[ImuStore, Frame], None]],
    make: Callable[[], ImuStore],
    data: list[Frame],
    repeats: int,
) -> list[float]:
    """Per path, the median seconds to ingest every frame of `data` into a fresh store; the
    paths take turns within each repeat, so a change in machine load hits them alike."""
    runs: list[list[float]] = [[] for _ in paths]
    for _ in range(repeats):
        for ingest, spent in zip(paths, runs, strict=True):
            store = make()
            tic = time.perf_counter()
            for frame in data:
                ingest(store, frame)
            spent.append(time.perf_counter() - tic)
    return [float(np.median(spent)) for spent in runs]


def main() -> int:
    """Print per-message and per-frame cost of both paths for each crowd size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--frames", type=int, default=50, help="LiDAR frames of messages")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"$ {shlex.join([sys.executable, *sys.argv])}")
    print(f"{'wearers':>7} {'source':<8} {'msgs/frame':>10} {'path':<12} {'us/msg':>7} "
          f"{'ms/frame':>8} {'speed-up':>8}")  # fmt: skip
    for people in args.people:
        names, sites, data = frames(people, args.frames)

        def make(names: list[str] = names, sites: tuple[str, ...] = sites) -> ImuStore:
            return ImuStore(
                identities=dict.fromkeys(names, sites), params=PARAMS, clock_offsets_s={}
            )

        count = sum(len(frame.messages) for frame in data)
        for source, paths in (
            ("Imu", (("per message", per_message), ("batch", batched))),
            ("packets", (("per sample", packet_samples), ("batch", packet_batches))),
        ):
            seconds = timed([ingest for _, ingest in paths], make, data, args.repeats)
            for (label, _), spent in zip(paths, seconds, strict=True):
                print(
                    f"{people:>7} {source:<8} {count // args.frames:>10} {label:<12} "
                    f"{spent / count * 1e6:>7.2f} {spent / args.frames * 1e3:>8.2f} "
                    f"{seconds[0] / spent:>7.1f}x"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
