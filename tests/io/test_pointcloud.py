"""PointCloud2 parsing across Velodyne-, Ouster- and Livox-style layouts and malformed messages."""

from __future__ import annotations

import array

import numpy as np
import pytest

from rt_reid.errors import MessageError
from rt_reid.io.bag import header, msg_class
from rt_reid.io.pointcloud import pointcloud2_to_arrays, pointcloud2_to_xyz

PointCloud2 = msg_class("sensor_msgs/msg/PointCloud2")
PointField = msg_class("sensor_msgs/msg/PointField")
DATATYPE = {"i1": 1, "u1": 2, "i2": 3, "u2": 4, "i4": 5, "u4": 6, "f4": 7, "f8": 8}


def make_cloud(points, *, height=1, row_pad=0, bigendian=False, declare=None, data_type=None):
    """PointCloud2 from a structured array (its dtype offsets/itemsize become the layout)."""
    dtype = points.dtype
    order = ">" if bigendian else "<"
    fields = []
    for name in dtype.names:
        sub, offset = dtype.fields[name][:2]
        base, count = (sub.base, sub.shape[0]) if sub.shape else (sub, 1)
        fields.append(
            PointField(name=name, offset=offset, datatype=DATATYPE[base.str[1:]], count=count)
        )
    if declare is not None:
        fields = declare(fields)
    swapped = points.astype(dtype.newbyteorder(order))
    width = points.size // height
    rows = swapped.reshape(height, width)
    row_bytes = [r.tobytes() + b"\xab" * row_pad for r in rows]
    data = b"".join(row_bytes)
    data_value = np.frombuffer(data, np.uint8).copy() if data_type is None else data_type(data)
    return PointCloud2(
        header=header(1_000_000_000, "lidar"),
        height=height,
        width=width,
        fields=fields,
        is_bigendian=bigendian,
        point_step=dtype.itemsize,
        row_step=dtype.itemsize * width + row_pad,
        data=data_value,
        is_dense=False,
    )


def random_xyz(n, seed=0):
    return np.random.default_rng(seed).uniform(-10, 10, size=(n, 3)).astype(np.float32)


VELODYNE = np.dtype(
    {
        "names": ["x", "y", "z", "intensity", "ring", "time"],
        "formats": ["<f4", "<f4", "<f4", "<f4", "<u2", "<f4"],
        "offsets": [0, 4, 8, 12, 16, 18],
        "itemsize": 22,
    }
)
# Ouster: x, y, z, 4 bytes padding, intensity, t, reflectivity, ring, ambient, padding, range.
OUSTER = np.dtype(
    {
        "names": ["x", "y", "z", "intensity", "t", "reflectivity", "ring", "ambient", "range"],
        "formats": ["<f4", "<f4", "<f4", "<f4", "<u4", "<u2", "<u2", "<u2", "<u4"],
        "offsets": [0, 4, 8, 16, 20, 24, 26, 28, 32],
        "itemsize": 48,
    }
)
LIVOX = np.dtype(
    {
        "names": ["x", "y", "z", "intensity", "tag", "line", "offset_time"],
        "formats": ["<f4", "<f4", "<f4", "<f4", "u1", "u1", "<u4"],
        "offsets": [0, 4, 8, 12, 16, 17, 18],
        "itemsize": 22,
    }
)


def fill(dtype, n, seed=0):
    arr = np.zeros(n, dtype=dtype)
    xyz = random_xyz(n, seed)
    for i, name in enumerate("xyz"):
        arr[name] = xyz[:, i]
    rng = np.random.default_rng(seed + 1)
    for name in dtype.names[3:]:
        info = np.iinfo(dtype[name]) if dtype[name].kind in "iu" else None
        high = min(info.max, 1000) if info else 1.0
        arr[name] = rng.uniform(0, high, size=n).astype(dtype[name])
    return arr, xyz


@pytest.mark.parametrize("bigendian", [False, True])
def test_velodyne_layout_with_nans_and_extras(bigendian):
    arr, xyz = fill(VELODYNE, 500)
    arr["x"][::7] = np.nan
    arr["z"][3] = np.inf
    keep = np.isfinite(xyz).all(axis=1) & ~(np.arange(500) % 7 == 0)
    keep[3] = False
    msg = make_cloud(arr, bigendian=bigendian)
    points, extras = pointcloud2_to_arrays(msg, ["intensity", "ring", "time"])
    assert points.dtype == np.float32
    assert points.shape == (keep.sum(), 3)
    np.testing.assert_array_equal(points, xyz[keep])
    np.testing.assert_array_equal(extras["ring"], arr["ring"][keep])
    assert extras["ring"].dtype == np.uint16
    assert extras["ring"].dtype.isnative
    np.testing.assert_array_equal(extras["time"], arr["time"][keep])
    np.testing.assert_array_equal(pointcloud2_to_xyz(msg), xyz[keep])


def test_ouster_organized_with_row_padding():
    arr, xyz = fill(OUSTER, 32 * 64, seed=3)
    arr["x"][arr["ring"] % 5 == 0] = np.nan  # no-returns scattered over the organized image
    keep = np.isfinite(arr["x"])
    msg = make_cloud(arr, height=32, row_pad=12)
    assert msg.row_step == 64 * 48 + 12
    points, extras = pointcloud2_to_arrays(msg, ["t", "reflectivity", "range"])
    np.testing.assert_array_equal(points, xyz[keep])
    np.testing.assert_array_equal(extras["t"], arr["t"][keep])
    np.testing.assert_array_equal(extras["range"], arr["range"][keep])


@pytest.mark.parametrize("data_type", [bytes, lambda b: array.array("B", b), bytearray])
def test_livox_layout_from_other_buffer_types(data_type):
    arr, xyz = fill(LIVOX, 300, seed=5)
    msg = make_cloud(arr, data_type=data_type)
    points, extras = pointcloud2_to_arrays(msg, ["offset_time", "line", "tag"])
    np.testing.assert_array_equal(points, xyz)
    np.testing.assert_array_equal(extras["offset_time"], arr["offset_time"])
    assert extras["line"].dtype == np.uint8


def test_non_packed_xyz_order_and_multi_count_field():
    dtype = np.dtype(
        {
            "names": ["z", "normal", "y", "x"],
            "formats": ["<f4", ("<f4", 3), "<f4", "<f4"],
            "offsets": [0, 4, 16, 24],
            "itemsize": 32,
        }
    )
    arr = np.zeros(50, dtype=dtype)
    xyz = random_xyz(50, 9)
    arr["x"], arr["y"], arr["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    arr["normal"] = np.arange(150, dtype=np.float32).reshape(50, 3)
    points, extras = pointcloud2_to_arrays(make_cloud(arr), ["normal"])
    np.testing.assert_array_equal(points, xyz)
    assert extras["normal"].shape == (50, 3)
    np.testing.assert_array_equal(extras["normal"], arr["normal"])


def test_empty_cloud():
    arr = np.zeros(0, dtype=VELODYNE)
    msg = make_cloud(arr)
    assert pointcloud2_to_xyz(msg).shape == (0, 3)


def test_packed_xyz_is_viewed_in_place():
    """The parser reads the message buffer directly: changing the buffer changes the result."""
    arr, _xyz = fill(VELODYNE, 10)
    msg = make_cloud(arr)
    first = pointcloud2_to_xyz(msg)[0, 0]
    msg.data[0:4] = np.frombuffer(np.float32(42.0).tobytes(), np.uint8)
    assert pointcloud2_to_xyz(msg)[0, 0] == 42.0 != first


def _drop(name):
    return lambda fields: [f for f in fields if f.name != name]


def _retype(name, datatype):
    def change(fields):
        for f in fields:
            if f.name == name:
                f.datatype = datatype
        return fields

    return change


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda m: setattr(m, "fields", _drop("y")(m.fields)), "no 'y' field"),
        (lambda m: setattr(m, "fields", _retype("z", 8)(m.fields)), "must be one FLOAT32"),
        (lambda m: setattr(m, "fields", _retype("intensity", 42)(m.fields)), "unknown datatype"),
        (lambda m: setattr(m, "data", m.data[:-5]), "data too short"),
        (lambda m: setattr(m, "point_step", 16), "point_step is 16"),
        (lambda m: setattr(m, "row_step", 10), "row_step 10"),
        (lambda m: setattr(m, "fields", [*m.fields, m.fields[0]]), "declares field 'x' twice"),
        (lambda m: setattr(m, "data", [object()]), "not a byte buffer"),
    ],
)
def test_malformed_messages_raise_message_error(mutate, message):
    arr, _ = fill(VELODYNE, 20)
    msg = make_cloud(arr)
    mutate(msg)
    with pytest.raises(MessageError, match=message):
        pointcloud2_to_arrays(msg, ["time"])


def test_missing_requested_field_names_available_fields():
    arr, _ = fill(LIVOX, 5)
    with pytest.raises(MessageError, match=r"lacks requested field\(s\) \['ring'\]"):
        pointcloud2_to_arrays(make_cloud(arr), ["ring"])


@pytest.mark.parametrize("cloud_layout", ["organized", "unorganized"])
def test_simulated_bag_clouds_parse_to_the_simulated_frames(tmp_path, cloud_layout):
    """A real rosbag2 (MCAP) from the simulator, read back and parsed, gives its frames."""
    from rt_reid.io.bag import read_messages
    from rt_reid_sim import SceneConfig, simulate_scene, write_bag

    cfg = SceneConfig(
        people=2, duration_s=0.5, lidar="os1-32", columns=256, cloud_layout=cloud_layout, seed=3
    )
    scene = simulate_scene(cfg)
    write_bag(cfg, tmp_path / "scene", scene=scene)
    clouds = [m.message for m in read_messages(tmp_path / "scene", topics=["/lidar/points"])]
    assert len(clouds) == len(scene.frame_stamps)
    extra = "t" if cloud_layout == "organized" else "time"  # Ouster- / Velodyne-like layouts
    for t, msg in enumerate(clouds):
        assert (msg.height > 1) == (cloud_layout == "organized")
        xyz, extras = pointcloud2_to_arrays(msg, ["intensity", "ring", extra])
        expected = scene.frame_points(t)  # same returns, the bag orders them ring by ring
        np.testing.assert_array_equal(xyz[np.lexsort(xyz.T)], expected[np.lexsort(expected.T)])
        assert len(extras["ring"]) == len(xyz)
        assert extras["ring"].max() < 32
