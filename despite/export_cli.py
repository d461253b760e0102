"""`rt-reid export`: checkpoint, official DeSPITE weights or random weights -> ONNX + manifest."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from despite.checkpoint import load_checkpoint
from despite.encoders import (
    OFFICIAL_PREFIXES,
    PRESETS,
    DespiteModel,
    get_preset,
)
from despite.export import MIN_OPSET, export_model
from despite.windows import DataError, WindowSpec
from rt_reid.layouts import LAYOUTS
from rt_reid.names import SENSOR_MODALITIES, ModalityType
from rt_reid.runtime.features import CENTRINGS

LOG = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `rt-reid export`."""
    parser.add_argument("out_dir", type=Path, help="model directory to write (created)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="checkpoint written by `rt-reid train`")
    source.add_argument(
        "--random",
        action="store_true",
        help="random weights (development: others can run the pipeline)",
    )
    source.add_argument(
        "--official",
        type=Path,
        help="official SPIE/SPITE .pth (paper preset, lipd4, frame centring; "
        "its IMU encoder expects LIPD's IMU values, see despite/README.md)",
    )
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="small",
        help="encoder preset for --random (default small)",
    )
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default="lipd4")
    parser.add_argument("--centring", choices=CENTRINGS, default="frame")
    parser.add_argument("--points-per-frame", type=int, default=256)
    parser.add_argument("--window-frames", type=int, default=24)
    parser.add_argument(
        "--modalities",
        nargs="+",
        choices=SENSOR_MODALITIES,
        default=None,
        help="encoders to export (default: every sensor encoder present)",
    )
    parser.add_argument("--name", default=None, help="manifest name (default: OUT_DIR's name)")
    parser.add_argument("--seed", type=int, default=0, help="seed for --random weights")
    parser.add_argument("--opset", type=int, default=MIN_OPSET)


def official_model(path: Path, *, layout: str) -> DespiteModel:
    """Paper-preset model holding exactly the encoders found in an official checkpoint (strict)."""
    if layout != "lipd4":
        raise DataError("official weights take the 48-channel lipd4 layout")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as err:
        raise DataError(f"cannot read official weights {path}: {err}") from err
    if not isinstance(state, dict):
        raise DataError(f"{path} does not hold a state dict")
    present = tuple(
        m
        for m, prefix in OFFICIAL_PREFIXES.items()
        if any(str(k).startswith(prefix) for k in state)
    )
    if not present:
        raise DataError(f"{path} has no imu_encoder/pointcloud_encoder/skeleton_encoder keys")
    model = DespiteModel(get_preset("paper"), modalities=present, layout=layout)
    model.load_official_state_dict(state, strict=True)
    return model


def run(args: argparse.Namespace) -> int:
    """Build or load the model, export it, print where it went."""
    training: dict[str, object]
    if args.checkpoint is not None:
        ckpt = load_checkpoint(args.checkpoint)
        model, spec = ckpt.model, ckpt.spec
        training = {
            "source": "checkpoint",
            "checkpoint_epoch": ckpt.epoch,
            "checkpoint_step": ckpt.step,
            **ckpt.training,
        }
    else:
        spec = WindowSpec(
            window_frames=args.window_frames,
            points_per_frame=args.points_per_frame,
            centring=args.centring,
            layout=args.layout,
        )
        torch.manual_seed(args.seed)
        if args.official:
            model = official_model(args.official, layout=args.layout)
            training = {"source": "official", "weights": str(args.official)}
        else:
            modalities = tuple(args.modalities or (ModalityType.POINTCLOUD, ModalityType.IMU))
            model = DespiteModel(get_preset(args.preset), modalities=modalities, layout=args.layout)
            training = {
                "source": "random",
                "seed": args.seed,
                "note": "random weights for development; not trained",
            }
    manifest, results = export_model(
        model,
        spec,
        args.out_dir,
        name=args.name or args.out_dir.resolve().name,
        training=training,
        modalities=tuple(args.modalities) if args.modalities else None,
        opset=args.opset,
    )
    for result in results:
        print(f"{result.modality}: parity max abs error {result.max_abs_error:.2e} (ok)")
    print(f"wrote {sorted(manifest.encoders)} and manifest.json to {args.out_dir}")
    return 0
