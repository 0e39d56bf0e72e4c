"""Seeds for what evaluation draws: pretraining's validation blends relations and adds
coordinate noise as training does, so its metrics are random draws. Seeding each batch
from the run's seed and the batch's molecules makes the same checkpoint on the same data
give the same metrics every time, without touching the training stream of random numbers."""
import contextlib
import zlib

import torch


def batch_seed(seed: int, molecule_indices) -> int:
    """A seed for one batch: a function of the run's seed and the batch's molecule indices."""
    indices = torch.as_tensor(molecule_indices, dtype=torch.int64).cpu().numpy().tobytes()
    return zlib.crc32(indices, zlib.crc32(int(seed).to_bytes(8, "little", signed=True)))


@contextlib.contextmanager
def seeded_for_batch(seed: int, molecule_indices):
    """Run the block with torch's generators (CPU and every GPU) seeded for this batch, and
    restore their states afterwards."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(batch_seed(seed, molecule_indices))
        yield
