"""fairseq's --tensorboard-logdir records the plugin's metrics (through tensorboardX)."""
import glob
import os
import struct
import subprocess
import sys

from tensorboardX.proto import event_pb2

from data_prep.__main__ import main as data_prep_main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QM9_SAMPLE = os.path.join(REPO, "examples", "data", "qm9", "qm9.csv")


def scalar_tags(event_file: str) -> set:
    """Tags of the scalars in a TensorBoard event file (TFRecord: length, crc, data, crc)."""
    tags = set()
    with open(event_file, "rb") as f:
        while True:
            header = f.read(12)
            if len(header) < 12:
                return tags
            (length,) = struct.unpack("<Q", header[:8])
            event = event_pb2.Event()
            event.ParseFromString(f.read(length))
            f.read(4)
            tags.update(v.tag for v in event.summary.value if v.HasField("simple_value"))


def test_pretraining_metrics_reach_tensorboard(tmp_path):
    data = tmp_path / "qm9"
    assert data_prep_main(["qm9", "--input", QM9_SAMPLE, "--output", str(data), "--limit", "40",
                           "--valid-size", "8", "--test-size", "4", "--quiet"]) == 0
    logdir = tmp_path / "tensorboard"
    command = [sys.executable, "-m", "fairseq_cli.train", str(data), "--user-dir", os.path.join(REPO, "moleblend_plugin"),
               "--task", "moleblend_pretrain", "--criterion", "moleblend_pretrain", "--arch", "moleblend_tiny",
               "--cpu", "--batch-size", "8", "--required-batch-size-multiple", "1", "--optimizer", "adam",
               "--lr", "1e-3", "--max-update", "4", "--num-workers", "0", "--save-dir", str(tmp_path / "ckpt"),
               "--no-save", "--log-interval", "2", "--tensorboard-logdir", str(logdir)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    relation_metrics = {"loss", "spd_loss", "spd_acc", "edge_loss", "edge_acc", "distance_loss", "distance_mae",
                        "noise_loss", "noise_cosine"}
    for subset in ("train", "train_inner", "valid"):
        files = glob.glob(str(logdir / subset / "events.out.tfevents.*"))
        assert files, f"no event file for {subset}"
        tags = set().union(*(scalar_tags(f) for f in files))
        assert relation_metrics <= tags, f"{subset}: missing {sorted(relation_metrics - tags)}"
