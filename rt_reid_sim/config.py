"""Scene configuration of the simulated world: every knob, its documented default and its limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rt_reid.errors import ConfigError
from rt_reid.layouts import get_layout

CloudLayout = Literal["unorganized", "organized"]
CLOUD_LAYOUTS: tuple[CloudLayout, ...] = ("unorganized", "organized")
Behaviour = Literal["mixed", "standing"]
# mixed: walk, activities, sitting, leaving; standing: after entering, walk to a spot and stay there
BEHAVIOURS: tuple[Behaviour, ...] = ("mixed", "standing")
LIDAR_PRESETS = ("vlp-16", "os1-32", "os1-64", "os1-128")
MAX_PEOPLE = 32
DEFAULT_BYSTANDER_SHARE = 0.25  # bystanders=None -> round(25 % of the people), none for 1 person


@dataclass(frozen=True, kw_only=True)
class SceneConfig:
    """Everything that defines a simulated scene; equal configs give identical scenes and bags."""

    people: int = 8
    duration_s: float = 60.0
    lidar: str = "os1-64"
    columns: int = 1024
    layout: str = "lipd4"
    bystanders: int | None = None
    seed: int = 0
    cloud_layout: CloudLayout | None = None  # None: organized for os1-*, unorganized for vlp-16
    room_size: tuple[float, float] = (12.0, 9.0)  # metres, x by y, centred on the room origin
    room_height: float = 3.0
    lidar_position: tuple[float, float, float] = (0.0, 0.0, 1.3)  # room frame, metres
    lidar_rpy_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)  # roll, pitch, yaw of the sensor
    frame_rate_hz: float = 10.0
    range_noise_m: float = 0.01  # 1-sigma Gaussian range noise
    dropout: float = 0.01  # probability that a return is lost
    mixed_pixels: float = 0.25  # share of silhouette-edge returns blended with the background
    imu_rate_hz: float = 100.0
    imu_noise_scale: float = 1.0  # scales white noise, bias and heading drift; 0 = ideal IMU
    clock_offset_max_s: float = 0.05  # per-device clock offset drawn from +-this
    clock_jitter_s: float = 0.001  # 1-sigma stamp jitter (clipped to +-3 sigma)
    packet_loss: float = 0.01  # fraction of IMU samples lost (half single drops, half bursts)
    device_outages: float = 0.0  # probability that a device goes silent once for 5-15 s
    imu_reorder: float = 0.01  # bags only: share of IMU messages swapped with the device's next
    imu_duplicates: float = 0.002  # bags only: fraction of IMU messages written twice
    enter_leave: bool = True  # some people enter late or leave through the door
    behaviour: Behaviour = "mixed"  # "standing": after entering, walk to a spot, then stand/sit
    body_spread: float = 1.0  # scales body ranges (height, limb ratios, shoulders, girth)
    motion_spread: float = 1.0  # scales style ranges (cadence, stride, speed, arm swing, sway)
    imu_mount_error_deg: float = 4.0  # 1-sigma mounting rotation error per axis
    point_labels: bool = False  # bags only: add a `label` field (person id + 1, 0 = room)
    start_time_s: float = 1_700_000_000.0  # stamp of the first LiDAR frame (LiDAR clock)

    def __post_init__(self) -> None:
        """Reject values the simulator cannot honour, naming the field."""
        checks: list[tuple[bool, str]] = [
            (1 <= self.people <= MAX_PEOPLE, f"people must be 1..{MAX_PEOPLE}, got {self.people}"),
            (self.duration_s >= 0.5, f"duration_s must be >= 0.5 s, got {self.duration_s}"),
            (self.seed >= 0, f"seed must be >= 0, got {self.seed}"),
            (
                self.lidar in LIDAR_PRESETS,
                f"lidar must be one of {LIDAR_PRESETS}, got {self.lidar!r}",
            ),
            (128 <= self.columns <= 4096, f"columns must be 128..4096, got {self.columns}"),
            (
                self.cloud_layout is None or self.cloud_layout in CLOUD_LAYOUTS,
                f"cloud_layout must be one of {CLOUD_LAYOUTS}, got {self.cloud_layout!r}",
            ),
            (
                self.bystanders is None or 0 <= self.bystanders <= self.people,
                f"bystanders must be 0..people ({self.people}), got {self.bystanders}",
            ),
            (
                min(self.room_size) >= 5.0 and max(self.room_size) <= 40.0,
                f"room_size sides must be 5..40 m, got {self.room_size}",
            ),
            (
                2.2 <= self.room_height <= 10.0,
                f"room_height must be 2.2..10 m, got {self.room_height}",
            ),
            (
                5.0 <= self.frame_rate_hz <= 20.0,
                f"frame_rate_hz must be 5..20, got {self.frame_rate_hz}",
            ),
            (
                50.0 <= self.imu_rate_hz <= 400.0,
                f"imu_rate_hz must be 50..400, got {self.imu_rate_hz}",
            ),
            (self.range_noise_m >= 0.0, "range_noise_m must be >= 0"),
            (self.imu_noise_scale >= 0.0, "imu_noise_scale must be >= 0"),
            (0.0 <= self.clock_offset_max_s <= 0.5, "clock_offset_max_s must be 0..0.5 s"),
            (
                0.0 <= self.clock_jitter_s <= 0.15 / self.imu_rate_hz,
                f"clock_jitter_s must be 0..{0.15 / self.imu_rate_hz:.4f} s (keeps stamps ordered)",
            ),
            (self.start_time_s >= 0.0, "start_time_s must be >= 0"),
            (0.0 <= self.body_spread <= 2.0, f"body_spread must be 0..2, got {self.body_spread}"),
            (
                0.0 <= self.motion_spread <= 2.0,
                f"motion_spread must be 0..2, got {self.motion_spread}",
            ),
            (
                0.0 <= self.imu_mount_error_deg <= 30.0,
                f"imu_mount_error_deg must be 0..30, got {self.imu_mount_error_deg}",
            ),
            (
                self.behaviour in BEHAVIOURS,
                f"behaviour must be one of {BEHAVIOURS}, got {self.behaviour!r}",
            ),
        ]
        for name in ("dropout", "mixed_pixels", "packet_loss", "imu_reorder", "imu_duplicates"):
            value = getattr(self, name)
            checks.append((0.0 <= value <= 0.5, f"{name} must be 0..0.5, got {value}"))
        checks.append(
            (
                0.0 <= self.device_outages <= 1.0,
                f"device_outages must be 0..1, got {self.device_outages}",
            )
        )
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"SceneConfig: {message}")
        get_layout(self.layout)
        half_x, half_y = self.room_size[0] / 2, self.room_size[1] / 2
        x, y, z = self.lidar_position
        if not (abs(x) < half_x - 0.5 and abs(y) < half_y - 0.5 and 0.2 < z < self.room_height):
            raise ConfigError(
                f"SceneConfig: lidar_position {self.lidar_position} must lie inside the room, "
                "0.5 m from the walls"
            )

    @property
    def bystander_count(self) -> int:
        """Number of people without wearables (the documented default share when None)."""
        if self.bystanders is not None:
            return self.bystanders
        return 0 if self.people == 1 else round(DEFAULT_BYSTANDER_SHARE * self.people)

    @property
    def resolved_cloud_layout(self) -> CloudLayout:
        """Cloud layout written: Ouster-like organized for os1-*, Velodyne-like otherwise."""
        if self.cloud_layout is not None:
            return self.cloud_layout
        return "unorganized" if self.lidar == "vlp-16" else "organized"

    @property
    def frames(self) -> int:
        """Number of LiDAR frames in the scene."""
        return round(self.duration_s * self.frame_rate_hz)
