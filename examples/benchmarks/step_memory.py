"""Peak memory of a pretraining step per molecule, and how it grows with molecule size.

For real molecules of about 20, 40 and 80 heavy atoms (within SIZE_SPREAD) (MoleculeNet HIV SMILES with RDKit
conformers), a MoleBlend-mode step (forward, losses, backward) of a batch of one size is
run under torch's profiler with memory recording; its peak is the allocator's largest
total during the step minus its total before it. Steps of k and 2k molecules give the
bytes each further molecule adds (activations, saved tensors, temporaries) and the fixed
part (parameter gradients and the like). A GPU's memory decides how many molecules of a
size a batch can hold; the per-molecule bytes are the same tensors there.

    python examples/benchmarks/step_memory.py [--hiv PATH] [--per-size 32] [--threads 2]
"""
import argparse
import csv
import os

import torch
from rdkit import Chem, RDLogger
from torch._C._profiler import _EventType
from torch.profiler import ProfilerActivity, profile

from pretraining_speed import ARCHS, build, default_data_dir
from moleblend_data.featurize import FeaturizeOptions, RejectedMolecule, make_record
from moleblend_plugin.cpu_autocast import bf16_autocast
from moleblend_plugin.criterions.pretrain import PretrainCriterion
from moleblend_plugin.data.collate import collate_molecules, molecule_inputs

SIZES = (20, 40, 80)
# Heavy atoms a molecule may differ from its nominal size by (HIV holds too few of exactly 80).
SIZE_SPREAD = 2


def molecules_of_size(path, size, count, seed=0):
    """The first `count` molecules of the file with `size` +- SIZE_SPREAD heavy atoms (one
    fragment, so that the size is the molecule's), with an RDKit conformer."""
    items = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            mol = Chem.MolFromSmiles(row["smiles"])
            if mol is None or abs(mol.GetNumAtoms() - size) > SIZE_SPREAD or len(Chem.GetMolFrags(mol)) != 1:
                continue
            try:
                record = make_record(row["smiles"], FeaturizeOptions(num_conformers=1, seed=seed), id=row["smiles"])
            except RejectedMolecule:
                continue
            items.append(molecule_inputs(record, 0))
            if len(items) == count:
                return items
    raise SystemExit(f"{path}: only {len(items)} molecules of {size} +- {SIZE_SPREAD} heavy atoms with a conformer; lower --per-size")


def peak_step_bytes(model, batch, autocast=False):
    """The allocator's peak during forward, losses and backward, above its total before."""
    criterion = PretrainCriterion(None, 1.0, 1.0, 1.0, 1.0, "l1", "cosine")
    model.zero_grad(set_to_none=True)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        with bf16_autocast(autocast):
            loss, _, _ = criterion(model, {"net_input": {"batch": batch}, "nsentences": 0, "ntokens": 0})
        loss.backward()
    allocations = []

    def walk(events):
        for event in events:
            if event.tag == _EventType.Allocation:
                allocations.append((event.start_time_ns, event.extra_fields.alloc_size, event.extra_fields.total_allocated))
            walk(event.children)

    # The event tree is the profiler's own record of every allocation and free with the
    # allocator's running total (torch._C._profiler; what its memory timeline is built from).
    walk(prof.profiler.kineto_results.experimental_event_tree())
    allocations.sort()
    before = allocations[0][2] - allocations[0][1]
    return max(total for _, _, total in allocations) - before


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_data = default_data_dir()
    parser.add_argument("--hiv", default=os.path.join(default_data, "moleculenet", "hiv.csv"),
                        help="MoleculeNet HIV CSV as laid out by scripts/fetch_datasets.sh (default: $MOLEBLEND_DATA/moleculenet/hiv.csv)")
    parser.add_argument("--per-size", type=int, default=32, help="molecules per size (batches of half and all of them)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--archs", default="moleblend_small,moleblend_base", help="comma-separated architectures")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    RDLogger.DisableLog("rdApp.*")  # HIV holds molecules RDKit warns about; they are skipped
    molecules = {size: molecules_of_size(args.hiv, size, args.per_size) for size in SIZES}
    half = args.per_size // 2
    print(f"peak memory of a MoleBlend-mode step (forward, losses, backward) on HIV molecules with RDKit conformers, "
          f"batches of {half} and {args.per_size} molecules of one size; MiB")
    print(f"{'model':16s} {'precision':10s} " + " ".join(f"{f'{s} atoms':>9s}" for s in SIZES)
          + "   80 / 20   80 / 40   fixed (at 20, 40, 80 atoms)")
    for name in args.archs.split(","):
        model = build(ARCHS[name][0])
        for autocast in (False, True):
            per_molecule, fixed = {}, {}
            for size in SIZES:
                small = peak_step_bytes(model, collate_molecules(molecules[size][:half]), autocast)
                large = peak_step_bytes(model, collate_molecules(molecules[size]), autocast)
                per_molecule[size] = (large - small) / (args.per_size - half) / 2 ** 20
                fixed[size] = small / 2 ** 20 - half * per_molecule[size]
            print(f"{name:16s} {'bf16 auto' if autocast else 'fp32':10s} "
                  + " ".join(f"{per_molecule[s]:9.1f}" for s in SIZES)
                  + f"   {per_molecule[80] / per_molecule[20]:7.1f}   {per_molecule[80] / per_molecule[40]:7.1f}   "
                  + ", ".join(f"{fixed[s]:.0f}" for s in SIZES))

if __name__ == "__main__":
    main()
