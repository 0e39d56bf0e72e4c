"""The flags and start-up that evaluate, predict and embed share: running a checkpoint's
model on molecules (batch size, device, the seed of generated conformers)."""
import argparse
import logging

from .errors import UserError


def _batch_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: give at least 1")
    return value


def add_model_run_arguments(parser: argparse.ArgumentParser, conformers: bool = True) -> None:
    parser.add_argument("--batch-size", type=_batch_size, default=64, help="molecules per forward pass (default 64)")
    parser.add_argument("--device", default="", help="torch device, e.g. cpu or cuda (default: cuda when available)")
    if conformers:
        parser.add_argument("--conformer-seed", type=int, default=0,
                            help="seed of the RDKit conformers that 3d and 2d+3d input gets (default 0)")


def start_command(device: str, log_level: int = logging.WARNING) -> str:
    """Logging for a command line tool, RDKit's own messages off (a molecule that cannot be
    used is reported in the tool's output), and the torch device to use."""
    import torch
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")
    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device}: torch sees no CUDA device here; use --device cpu")
    return device or ("cuda" if torch.cuda.is_available() else "cpu")
