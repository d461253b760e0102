"""Wearable layouts and IMU topic names."""

import pytest

from rt_reid.errors import ConfigError
from rt_reid.layouts import get_layout
from rt_reid.names import imu_topic, parse_imu_topic


def test_lipd4_channel_order_matches_official_prepare_imu():
    names = get_layout("lipd4").channel_names()
    assert len(names) == 48
    assert names[0].startswith("left_lower_leg.R")
    assert names[27].startswith("right_forearm.R")
    assert names[36:39] == ["left_lower_leg.acc_x", "left_lower_leg.acc_y", "left_lower_leg.acc_z"]
    assert names[45:] == ["right_forearm.acc_x", "right_forearm.acc_y", "right_forearm.acc_z"]
    assert get_layout("watch").channels == 12


def test_unknown_layout_names_the_known_ones():
    with pytest.raises(ConfigError, match="lipd4"):
        get_layout("lipd6")


def test_imu_topic_round_trip_and_rejects_others():
    assert parse_imu_topic(imu_topic("a1b2", "left_wrist")) == ("a1b2", "left_wrist")
    for bad in ["/imu/a1b2", "/lidar/points", "imu/a/b", "/imu//left_wrist", "/imu/a/b/c"]:
        with pytest.raises(ConfigError):
            parse_imu_topic(bad)
