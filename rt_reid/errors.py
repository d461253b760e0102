"""Module-level exceptions: every failure the library reports derives from `ReidError`.

Lower-level errors (rosbags, onnxruntime, zmq, open3d) are wrapped with ``raise ... from err`` so a
caller can catch one type and still see the cause.
"""


class ReidError(Exception):
    """Base class of every error raised by rt_reid."""


class ConfigError(ReidError):
    """A parameter file or parameter value does not satisfy the schema."""


class ManifestError(ReidError):
    """A model manifest is missing, malformed, or does not match the model files or the inputs."""


class BagError(ReidError):
    """A rosbag2 file cannot be opened, read or written."""


class MessageError(ReidError):
    """A ROS message (PointCloud2, Imu, ...) is malformed or lacks a required field."""


class InferenceError(ReidError):
    """An encoder backend cannot be created or fails to run."""


class PacketError(ReidError):
    """A wearable packet is malformed, unauthenticated, replayed or spoofed."""
