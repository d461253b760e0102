"""IMU samples as they travel from a message or packet to the buffers: one reading, or a batch.

Every IMU path carries these types: `sensor_msgs/Imu` (`rt_reid.io.ros_msgs`) and wearable packets
(`rt_reid.wearables.packet`) -> `ImuSample` / `ImuBatch` -> `ReidPipeline.add_imu` /
`add_imu_batch` -> `rt_reid.runtime.imu_buffer.ImuStore`. Conventions are REP-145: stamps in
seconds of the device clock, sensor-to-world quaternion xyzw, specific force in m/s^2 and angular
velocity in rad/s, both in the sensor frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rt_reid.arrays import F64Array

SAMPLE_WIDTH = 10  # values per reading besides its stamp: quaternion xyzw, specific force, gyro


@dataclass(frozen=True, slots=True)
class ImuSample:
    """One reading of the IMU worn by `identity` at `site` (the per-message path)."""

    identity: str
    site: str
    stamp_s: float
    orientation_xyzw: tuple[float, float, float, float]
    specific_force: tuple[float, float, float]
    angular_velocity: tuple[float, float, float]

    def values(self) -> tuple[float, ...]:
        """The SAMPLE_WIDTH values in buffer order: quaternion, specific force, angular velocity."""
        return (*self.orientation_xyzw, *self.specific_force, *self.angular_velocity)


@dataclass(frozen=True)
class ImuBatch:
    """Consecutive readings of one IMU in arrival order, float64 arrays with one row per reading.

    `stamps_s` (N,), `orientation_xyzw` (N, 4), `specific_force` (N, 3), `angular_velocity`
    (N, 3): a frame's worth of messages or one wearable packet, added to the buffers in one step.
    """

    identity: str
    site: str
    stamps_s: F64Array
    orientation_xyzw: F64Array
    specific_force: F64Array
    angular_velocity: F64Array

    def __len__(self) -> int:
        """Number of readings."""
        return len(self.stamps_s)

    def values(self) -> F64Array:
        """(N, SAMPLE_WIDTH) in buffer order: quaternion, specific force, angular velocity."""
        return np.concatenate(
            [self.orientation_xyzw, self.specific_force, self.angular_velocity], axis=1
        )
