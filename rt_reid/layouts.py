"""Wearable layouts: which IMU sites an identity wears, in the channel order the encoders expect."""

from __future__ import annotations

from dataclasses import dataclass

from rt_reid.errors import ConfigError

CHANNELS_PER_SITE = 12  # 9 rotation-matrix entries + 3 acceleration components


@dataclass(frozen=True)
class WearableLayout:
    """Named set of IMU sites; `sites` is the block order of the encoder's input channels."""

    name: str
    sites: tuple[str, ...]

    @property
    def channels(self) -> int:
        """Width of one frame of IMU features for this layout."""
        return CHANNELS_PER_SITE * len(self.sites)

    def channel_names(self) -> list[str]:
        """Per-channel names: all rotation blocks (row-major R) first, then all accelerations.

        This is the official DeSPITE order: 4 x R(9) then 4 x acc(3) for `lipd4`.
        """
        rotation = [f"{site}.R{r}{c}" for site in self.sites for r in range(3) for c in range(3)]
        acceleration = [f"{site}.acc_{axis}" for site in self.sites for axis in "xyz"]
        return rotation + acceleration


# `lipd4` follows the official `prepare_imu` block order: lLeg, rLeg, lForeArm, rForeArm.
LAYOUTS: dict[str, WearableLayout] = {
    "lipd4": WearableLayout(
        "lipd4", ("left_lower_leg", "right_lower_leg", "left_forearm", "right_forearm")
    ),
    "watch": WearableLayout("watch", ("left_wrist",)),
}


def get_layout(name: str) -> WearableLayout:
    """Return the layout called `name`, or raise ConfigError listing the known layouts."""
    try:
        return LAYOUTS[name]
    except KeyError as err:
        raise ConfigError(
            f"unknown wearable layout {name!r}; known layouts: {sorted(LAYOUTS)}"
        ) from err
