"""Pretraining speed on CPU, every figure measured side by side in one run.

Prints, for real molecules (MOSES SMILES with RDKit conformers, PCQM4Mv2-like sizes):
- pretraining molecules/s (forward + backward + optimizer step, `--optimizer fused_adam`)
  for moleblend_small and moleblend_base in the default MoleBlend mode;
- achieved FLOP/s (FLOPs of a step counted by torch's FlopCounterMode, divided by the
  step time) as a fraction of the large-matmul FLOP/s measured in turns with the steps;
- the relation heads in their factorized form vs the materialized N x N x r^2 outer
  product (step time ratio; the outputs are equal, see tests/test_model.py);
- bf16 autocast vs fp32 step time;
- step time with blending vs without it (the 2D and 3D biases of every pair summed);
- the optimizer step alone, fairseq's `adam` and `fused_adam`.

    python examples/benchmarks/pretraining_speed.py [--molecules 256] [--threads 2]
"""
import argparse
import contextlib
import copy
import dataclasses
import gzip
import os
import statistics
import time
import types

import torch
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from fairseq.optim.adam import Adam as FairseqAdamLoop

from moleblend_plugin.cpu_autocast import bf16_autocast, describe_cpu_bf16_support
from moleblend_plugin.criterions.pretrain import PretrainCriterion
from moleblend_plugin.data.collate import collate_molecules, molecule_inputs
from moleblend_data.featurize import FeaturizeOptions, RejectedMolecule, make_record
from moleblend_plugin.models.moleblend import MoleBlendConfig, MoleBlendEncoder
from moleblend_plugin.optimizers.fused_adam import FairseqEpsAdamW
from moleblend_plugin.modules import relation_heads, relation_mixing
from moleblend_plugin.modules.atom_embedding import AtomEmbedding
from moleblend_plugin.modules.gaussian_distance_bias import GaussianDistanceBias
from moleblend_plugin.modules.graph_relation_bias import GraphRelationBias
from moleblend_plugin.modules.noise_head import NoiseHead

ARCHS = {
    "moleblend_small": (dict(encoder_layers=6, encoder_embed_dim=256, encoder_ffn_embed_dim=256,
                             encoder_attention_heads=8), 128),
    "moleblend_base": (dict(encoder_layers=12, encoder_embed_dim=768, encoder_ffn_embed_dim=768,
                            encoder_attention_heads=32), 32),
}


class _Model(torch.nn.Module):
    def __init__(self, encoder):
        super().__init__()
        self.encoder, self.cfg = encoder, encoder.cfg

    def forward(self, batch):
        return self.encoder(batch)


def default_data_dir() -> str:
    """Where scripts/fetch_datasets.sh laid out the shared data: $MOLEBLEND_DATA, else the cache."""
    return os.environ.get("MOLEBLEND_DATA", os.path.expanduser("~/.cache/moleblend/datasets"))


def load_molecules(path, count, seed):
    records = []
    with gzip.open(path, "rt") as f, tqdm(total=count, desc="conformers", leave=False) as bar:
        next(f)
        for row, line in enumerate(f):
            try:
                records.append(make_record(line.split(",")[0].strip(),
                                           FeaturizeOptions(num_conformers=1, seed=seed), id=str(row)))
                bar.update()
            except RejectedMolecule:
                continue
            if len(records) == count:
                break
    return [molecule_inputs(r, 0) for r in records]


def batches(items, batch_size):
    """Full batches of molecules of similar size, as the training dataset forms them."""
    items = sorted(items, key=lambda item: item["atom_features"].shape[0])
    return [collate_molecules(items[i:i + batch_size]) for i in range(0, len(items) - batch_size + 1, batch_size)]


def build(arch_overrides, mode="moleblend", blend=True, reference_forms=False):
    torch.manual_seed(0)
    encoder = MoleBlendEncoder(MoleBlendConfig(**arch_overrides, pretrain_mode=mode), 0, True)
    if reference_forms:
        use_reference_forms(encoder)
    if not blend:
        encoder.mode = dataclasses.replace(
            encoder.mode, relation_input=lambda pairs, has_3d, enc: relation_mixing.whole_modalities(
                pairs, (relation_mixing.SPD, relation_mixing.EDGE, relation_mixing.DISTANCE)))
    return _Model(encoder).train()


def use_reference_forms(encoder):
    """This model computes its atom embeddings, edge bias, Gaussian kernels and noise head
    through the plain forms."""
    trunk = encoder.molecule_encoder
    atoms, edges, distances = trunk.atom_feature, trunk.molecule_attn_bias, trunk.molecule_3d_bias
    atoms.atoms = types.MethodType(AtomEmbedding.atoms_reference, atoms)
    edges.edge_bias = types.MethodType(GraphRelationBias.edge_bias_reference, edges)
    distances.encode_distances = types.MethodType(GaussianDistanceBias.encode_distances_reference, distances)
    if encoder.noise_head is not None:
        encoder.noise_head.forward = types.MethodType(NoiseHead.forward_reference, encoder.noise_head)


class _Autocast(_Model):
    """A model whose steps run under CPU bf16 autocast (as --cpu-bf16-autocast runs them)."""

    def __init__(self, model):
        super().__init__(model.encoder)


def step_seconds(model, data, repeats, versus=None, matmul_rates=None):
    """Mean step time of `model` over the batches, each batch's time the median of its
    `repeats` passes; with `versus`, also that of a second model, the two taking turns
    pass by pass (a pass steps through all batches), so that both see the same machine.
    With `matmul_rates` (a list), the large-matmul FLOP/s is measured before each pass
    and appended to it, so that the reference rate sees the machine the passes see.
    Turns of whole passes, not of single steps: a model stepped right after another
    inherits that one's allocator state (freed blocks of other sizes), which a training
    run never does. A mean over the batches, which hold molecules of different sizes, so
    that it matches the mean FLOPs of `step_flops` over the same batches."""
    criterion = PretrainCriterion(None, 1.0, 1.0, 1.0, 1.0, "l1", "cosine")
    models = [model] + ([versus] if versus is not None else [])
    optimizers = [fused_adam(m) for m in models]

    def step(m, optimizer, batch):
        optimizer.zero_grad()
        with bf16_autocast(isinstance(m, _Autocast)):
            loss, _, _ = criterion(m, {"net_input": {"batch": batch}, "nsentences": 0, "ntokens": 0})
        loss.backward()
        optimizer.step()

    times = [[[] for _ in data] for _ in models]  # [model][batch] -> seconds of each pass
    for _ in range(repeats):
        for k, (m, optimizer) in enumerate(zip(models, optimizers)):
            if matmul_rates is not None:
                matmul_rates.append(matmul_flops_per_second())
            step(m, optimizer, data[0])  # warm-up of this turn
            for b, batch in enumerate(data):
                start = time.perf_counter()
                step(m, optimizer, batch)
                times[k][b].append(time.perf_counter() - start)
    means = [statistics.mean(statistics.median(t) for t in per_batch) for per_batch in times]
    return means if versus is not None else means[0]


def fused_adam(model):
    """The optimizer of `--optimizer fused_adam` (what `moleblend pretrain` runs)."""
    return FairseqEpsAdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)


def optimizer_step_seconds(model, repeats=10):
    """Seconds of one optimizer step over the model's parameters (random gradients):
    fairseq's `adam` (its Python loop, what it runs on CPUs) and `fused_adam`. On a copy:
    the steps change the weights."""
    model = copy.deepcopy(model)
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    seconds = []
    for optimizer in (FairseqAdamLoop(model.parameters(), lr=1e-5), fused_adam(model)):
        optimizer.step()
        start = time.perf_counter()
        for _ in range(repeats):
            optimizer.step()
        seconds.append((time.perf_counter() - start) / repeats)
    return seconds


def loss_terms(model, batch, autocast):
    """The loss terms of one batch, the blend and noise drawn from a fixed seed."""
    criterion = PretrainCriterion(None, 1.0, 1.0, 1.0, 1.0, "l1", "cosine")
    torch.manual_seed(1)
    with torch.no_grad(), bf16_autocast(autocast):
        terms, _ = criterion.compute_terms(model, model(batch), batch)
    return {name: float(value) for name, value in terms.items()}


def step_flops(model, data):
    """FLOPs of one step (forward, losses, backward) on each batch, by torch's FlopCounterMode.
    Counted on the reference forms: the FLOPs of the function, without the products the
    fast 3D bias recomputes in its backward."""
    criterion = PretrainCriterion(None, 1.0, 1.0, 1.0, 1.0, "l1", "cosine")
    flops = []
    for batch in data:
        with FlopCounterMode(display=False) as counter:
            loss, _, _ = criterion(model, {"net_input": {"batch": batch}, "nsentences": 0, "ntokens": 0})
            loss.backward()
        model.zero_grad()
        flops.append(counter.get_total_flops())
    return flops


def matmul_flops_per_second(size=2048, repeats=10):
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size ** 3 * repeats / (time.perf_counter() - start)


@contextlib.contextmanager
def materialized_heads():
    factorized = relation_heads.OuterProductHead.forward
    relation_heads.OuterProductHead.forward = relation_heads.OuterProductHead.forward_materialized
    try:
        yield
    finally:
        relation_heads.OuterProductHead.forward = factorized


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_data = default_data_dir()
    parser.add_argument("--moses", default=os.path.join(default_data, "moses", "train.csv.gz"),
                        help="MOSES SMILES as laid out by shared/datasets/fetch.sh (default: $MOLEBLEND_DATA/moses/train.csv.gz)")
    parser.add_argument("--molecules", type=int, default=256, help="molecules to featurize (with conformers)")
    parser.add_argument("--repeats", type=int, default=3, help="passes over the batches per model and measurement")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--archs", default="moleblend_small,moleblend_base", help="comma-separated architectures")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    items = load_molecules(args.moses, args.molecules, seed=0)
    atoms = [i["atom_features"].shape[0] for i in items]
    print(f"{len(items)} MOSES molecules with RDKit conformers, {statistics.mean(atoms):.1f} heavy atoms on average "
          f"(max {max(atoms)}); torch {torch.__version__}, {args.threads} threads, fp32 unless stated")
    print(f"bf16: {describe_cpu_bf16_support()}")
    for name in args.archs.split(","):
        overrides, batch_size = ARCHS[name]
        data = batches(items, batch_size)
        model = build(overrides)
        # The large-matmul reference rate is measured before every pass of every model below
        # (in turns with them, as the models take turns with each other) and read as the
        # median of those measurements, as the step times are medians: on a shared machine
        # both move with its load. The fastest measurement is printed too.
        rates = []
        seconds = step_seconds(model, data, args.repeats, matmul_rates=rates)
        batch_flops = step_flops(build(overrides, reference_forms=True), data)
        flops = statistics.mean(batch_flops)
        with materialized_heads():
            materialized = step_seconds(model, data, args.repeats, matmul_rates=rates)
        fast, reference = step_seconds(build(overrides), data, args.repeats,
                                       versus=build(overrides, reference_forms=True), matmul_rates=rates)
        fp32_in_turn, bf16_in_turn = step_seconds(build(overrides), data, args.repeats,
                                                  versus=_Autocast(build(overrides)), matmul_rates=rates)
        blend, no_blend = step_seconds(build(overrides), data, args.repeats, versus=build(overrides, blend=False),
                                       matmul_rates=rates)
        peak, fastest = statistics.median(rates), max(rates)
        fairseq_adam, fused = optimizer_step_seconds(model)
        fp32_terms, bf16_terms = loss_terms(model.eval(), data[-1], False), loss_terms(model, data[-1], True)
        model.train()
        worst = max(abs(bf16_terms[k] - fp32_terms[k]) / abs(fp32_terms[k]) for k in fp32_terms)
        print(f"\n{name} (batch {batch_size}, MoleBlend mode: blend + noisy node)")
        print(f"  large-matmul throughput        {peak / 1e9:8.1f} GFLOP/s (2048 x 2048 fp32, same threads; median of "
              f"{len(rates)} measurements in turns with the passes, {min(rates) / 1e9:.0f} to {fastest / 1e9:.0f})")
        print(f"  pretraining throughput         {batch_size / seconds:8.1f} molecules/s  (step {seconds * 1e3:.0f} ms)")
        # Four measurements of the same fp32 step in this run (alone, and as the first model of
        # each pair): their spread is the run's own noise on the FLOP fraction.
        fractions = sorted(flops / s / peak for s in (seconds, fast, fp32_in_turn, blend))
        print(f"  achieved / large-matmul FLOP/s {flops / seconds / peak:8.2f}  ({flops / seconds / 1e9:.1f} GFLOP/s, "
              f"{flops / 1e9:.1f} GFLOP per step on average; {fractions[0]:.2f} to {fractions[-1]:.2f} over the "
              f"run's {len(fractions)} fp32 step measurements)")
        print(f"    against the fastest matmul measurement        {flops / seconds / fastest:6.2f}")
        # Until 2026-12-04 the fraction divided the FLOPs of the first batch, which holds the
        # smallest molecules, by the median step time over all batches; in that form, with
        # this run's mean step time in the median's place:
        print(f"    in the earlier form (smallest batch's FLOPs)  {batch_flops[0] / seconds / peak:6.2f}")
        print(f"  materialized / factorized heads step time     {materialized / seconds:6.2f}")
        print(f"  reference / fast forms step time              {reference / fast:6.2f}  (passes in turn; encoder and noise head)")
        print(f"  bf16 autocast / fp32 step time                {bf16_in_turn / fp32_in_turn:6.2f}  (passes in turn; "
              f"bf16 {batch_size / bf16_in_turn:.1f} molecules/s)")
        print(f"  bf16 vs fp32 loss terms, largest relative difference {worst:.2e}  "
              f"({', '.join(f'{k} {fp32_terms[k]:.4f}/{bf16_terms[k]:.4f}' for k in fp32_terms)})")
        print(f"  blend / no blend (2D+3D summed) step time     {blend / no_blend:6.2f}  (passes in turn)")
        print(f"  optimizer step alone: fairseq's adam {fairseq_adam * 1e3:.0f} ms, fused_adam {fused * 1e3:.0f} ms "
              f"({fused / fairseq_adam:.2f}; the steps above use fused_adam)")

if __name__ == "__main__":
    main()
