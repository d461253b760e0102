"""Decode a bag with the independent `mcap` + `mcap-ros2-support` readers (not rosbags)."""

from pathlib import Path
from typing import Any

from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory


def read_with_mcap(bag_dir: Path) -> list[tuple[str, int, Any]]:
    """(topic, log_time_ns, decoded message) for every message of the bag's MCAP file."""
    messages = []
    for mcap_file in sorted(Path(bag_dir).glob("*.mcap")):
        with mcap_file.open("rb") as stream:
            reader = make_reader(stream, decoder_factories=[DecoderFactory()])
            for _schema, channel, message, ros_msg in reader.iter_decoded_messages():
                messages.append((channel.topic, message.log_time, ros_msg))
    return messages
