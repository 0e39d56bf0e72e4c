"""Where the time of a pretraining step goes: torch profiler tables by operator and by module.

One architecture, MoleBlend mode, real MOSES molecules with RDKit conformers batched by
size as training does. Prints
- by operator: self CPU time of the whole step (forward, losses, backward, `fused_adam`), the
  operators that take most of it;
- by part of the model: its forward and its backward time (ranges opened when the
  gradient reaches the part's output), and the optimizer.

    python examples/benchmarks/profile_step.py [--arch moleblend_small] [--molecules 256] [--threads 2]
"""
import argparse
import dataclasses
import os

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from pretraining_speed import ARCHS, batches, build, default_data_dir, fused_adam, load_molecules
from moleblend_plugin.cpu_autocast import bf16_autocast
from moleblend_plugin.criterions.pretrain import PretrainCriterion

# The model's parts: (label, attribute path of a module, its methods that compute the part).
MODEL_PARTS = (
    ("atom embedding", "encoder.molecule_encoder.atom_feature", ("atoms", "degrees")),
    ("2D bias: SPD", "encoder.molecule_encoder.molecule_attn_bias", ("spd_bias",)),
    ("2D bias: multi-hop edge", "encoder.molecule_encoder.molecule_attn_bias", ("edge_bias",)),
    ("3D bias: Gaussian kernels, MLP, atom features", "encoder.molecule_encoder.molecule_3d_bias", ("forward",)),
    ("encoder layers", "encoder.molecule_encoder.layers", ("forward",)),
    ("SPD head", "encoder.spd_head", ("forward",)),
    ("edge head", "encoder.edge_head", ("forward",)),
    ("distance head", "encoder.distance_head", ("forward",)),
    ("noise head", "encoder.noise_head", ("forward",)),
)


class BackwardSections:
    """Profiler ranges over the backward pass: a part's range opens when the gradient
    reaches its output and lasts until the next part's does. Autograd runs the graph in
    reverse order of creation on the calling thread, so each range holds that part's
    backward operators (and the gradient accumulation of its parameters)."""

    def __init__(self):
        self.current = None

    def open(self, label):
        self.close()
        self.current = record_function(label)
        self.current.__enter__()

    def close(self):
        if self.current is not None:
            self.current.__exit__(None, None, None)
            self.current = None


class _GradientReached(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, label, sections):
        ctx.label, ctx.sections = label, sections
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        ctx.sections.open(f"backward: {ctx.label}")
        return grad, None, None


def _mark(output, label, sections):
    if torch.is_tensor(output):
        return _GradientReached.apply(output, label, sections) if output.requires_grad else output
    if dataclasses.is_dataclass(output):
        return dataclasses.replace(output, **{f.name: _mark(getattr(output, f.name), label, sections)
                                              for f in dataclasses.fields(output)})
    return output


def annotate_parts(model, sections):
    """Wrap each part's methods in a forward range and mark its outputs for the backward ranges."""
    for label, path, methods in MODEL_PARTS:
        module = model
        for name in path.split("."):
            module = getattr(module, name, None)
        if module is None:
            continue
        targets = list(module) if isinstance(module, torch.nn.ModuleList) else [module]
        for target in targets:
            for method in methods:
                original = getattr(target, method)

                def wrapped(*args, _original=original, _label=label, **kwargs):
                    with record_function(f"forward: {_label}"):
                        return _mark(_original(*args, **kwargs), _label, sections)

                setattr(target, method, wrapped)


RANGES = ("step: ", "forward: ", "backward: ")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_data = default_data_dir()
    parser.add_argument("--moses", default=os.path.join(default_data, "moses", "train.csv.gz"),
                        help="MOSES SMILES as laid out by scripts/fetch_datasets.sh (default: $MOLEBLEND_DATA/moses/train.csv.gz)")
    parser.add_argument("--arch", default="moleblend_small", choices=sorted(ARCHS), help="architecture to profile")
    parser.add_argument("--molecules", type=int, default=256, help="molecules to featurize (with conformers)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--bf16", action="store_true", help="run the step under CPU bf16 autocast")
    parser.add_argument("--reference-forms", action="store_true",
                        help="compute the edge bias and Gaussian kernels through their plain reference forms "
                             "(the encoder before its fast forms)")
    parser.add_argument("--rows", type=int, default=25, help="operators to list")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    overrides, batch_size = ARCHS[args.arch]
    data = batches(load_molecules(args.moses, args.molecules, seed=0), batch_size)
    model = build(overrides, reference_forms=args.reference_forms)
    sections = BackwardSections()
    annotate_parts(model, sections)
    criterion = PretrainCriterion(None, 1.0, 1.0, 1.0, 1.0, "l1", "cosine")
    optimizer = fused_adam(model)
    autocast = bf16_autocast(args.bf16)

    def step(batch):
        optimizer.zero_grad()
        with record_function("step: forward + losses"), autocast:
            loss, _, _ = criterion(model, {"net_input": {"batch": batch}, "nsentences": 0, "ntokens": 0})
        with record_function("step: backward"):
            sections.open("backward: losses")
            loss.backward()
            sections.close()
        with record_function("step: optimizer"):
            optimizer.step()

    step(data[0])  # warm-up
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        for batch in data:
            step(batch)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    print(f"{args.arch}, batch {batch_size}, {len(data)} steps, {args.threads} threads, "
          f"{'bf16 autocast' if args.bf16 else 'fp32'}, {'reference' if args.reference_forms else 'fast'} forms; {total / 1e3 / len(data):.0f} ms of CPU time per step")
    print("\nby part, ms per step and share of the step:")
    for e in sorted((e for e in events if e.key.startswith(RANGES)), key=lambda e: (RANGES.index(e.key.split(":")[0] + ": "), e.key)):
        print(f"  {e.key:50s} {e.cpu_time_total / 1e3 / len(data):8.1f} ms  {e.cpu_time_total / total:6.1%}")
    print(f"\nby operator (self time, forward + backward + optimizer), top {args.rows}:")
    ops = sorted((e for e in events if not e.key.startswith(RANGES)),
                 key=lambda e: -e.self_cpu_time_total)
    for e in ops[:args.rows]:
        print(f"  {e.key:55s} {e.self_cpu_time_total / 1e3 / len(data):8.1f} ms  {e.self_cpu_time_total / total:6.1%}"
              f"  x{e.count // len(data)}")


if __name__ == "__main__":
    main()
