"""The encoder's fast forms against their references on another device (a GPU), and their speed there.

Prints, on `--device` (default cuda):
- the encoder trunk (`moleblend_small` and `moleblend_base` widths, every relation input,
  dropout off) forward and backward with the fast forms and with the references
  (Graphormer's multi-hop edge bias, Transformer-M's whole-tensor Gaussian layer,
  nn.Embedding atom rows): the largest relative differences of outputs and gradients, in
  fp32 (TF32 off) and under bf16 autocast;
- the relation head's factorized product against the materialized one, the noise head
  against its per-axis reference, the grouped cross-entropy against F.cross_entropy on
  gathered entries (in the logits' contiguous layout and in the head's);
- molecules/s of the trunk's forward and backward with each form, taking turns, and the
  device's peak memory; with `--ablation`, each fast form swapped for its reference alone.

Batches are real MOSES molecules with RDKit conformers, sized by training's batching. A
machine without RDKit or fairseq reads them from `--batches FILE`, written beforehand
with `--save-batches FILE` where the project is installed; the script imports only the
plugin's torch modules, not its fairseq registrations, so torch alone runs it there.

    python examples/benchmarks/device_forms.py --save-batches batches.pt   # on the CPU machine
    python examples/benchmarks/device_forms.py --batches batches.pt [--device cuda] [--steps 30] [--ablation]
"""
import argparse
import os
import sys
import time
import types

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _import_torch_modules_only():
    """Makes `moleblend_plugin` and its `criterions` importable without running their
    __init__ (which registers with fairseq), where fairseq is not installed."""
    for name in ("moleblend_plugin", "moleblend_plugin.criterions"):
        if name not in sys.modules:
            package = types.ModuleType(name)
            package.__path__ = [os.path.join(ROOT, *name.split("."))]
            sys.modules[name] = package


def save_batches(path, molecules):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from pretraining_speed import ARCHS, batches, default_data_dir, load_molecules

    items = load_molecules(os.path.join(default_data_dir(), "moses", "train.csv.gz"), molecules, seed=0)
    tensors = lambda batch: {k: v for k, v in batch.items() if torch.is_tensor(v)}  # noqa: E731
    torch.save({name: [tensors(b) for b in batches(items, size)] for name, (_, size) in ARCHS.items()}, path)
    print(f"{len(items)} molecules, batches of {', '.join(f'{n}: {s}' for n, (_, s) in ARCHS.items())} -> {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", help="collated batches written by --save-batches")
    parser.add_argument("--save-batches", metavar="FILE", help="write the batches (needs RDKit and $MOLEBLEND_DATA) and stop")
    parser.add_argument("--molecules", type=int, default=256, help="MOSES molecules for --save-batches")
    parser.add_argument("--device", default="cuda", help="torch device to check on")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per form and turn")
    parser.add_argument("--ablation", action="store_true", help="also time each fast form swapped for its reference alone")
    args = parser.parse_args()
    if args.save_batches:
        save_batches(args.save_batches, args.molecules)
        return
    if not args.batches:
        parser.error("--batches FILE is needed (write it with --save-batches FILE)")
    _import_torch_modules_only()
    check = DeviceCheck(torch.load(args.batches), torch.device(args.device))
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0) if check.device.type == 'cuda' else args.device}")
    for arch in ARCH_WIDTHS:
        for autocast in (False, True):
            check.compare(arch, autocast)
    check.heads_and_losses()
    for arch in ARCH_WIDTHS:
        for autocast in (False, True):
            check.speeds(arch, autocast, args.steps, args.ablation)


ARCH_WIDTHS = {"moleblend_small": dict(num_layers=6, embed_dim=256, ffn_embed_dim=256, num_heads=8),
               "moleblend_base": dict(num_layers=12, embed_dim=768, ffn_embed_dim=768, num_heads=32)}


class DeviceCheck:
    def __init__(self, batches, device):
        from moleblend_plugin.modules.atom_embedding import AtomEmbedding
        from moleblend_plugin.modules.gaussian_distance_bias import GaussianDistanceBias
        from moleblend_plugin.modules.graph_relation_bias import GraphRelationBias

        self.batches, self.device = batches, device
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        self.reference = {(GraphRelationBias, "edge_bias"): GraphRelationBias.edge_bias_reference,
                          (GaussianDistanceBias, "encode_distances"): GaussianDistanceBias.encode_distances_reference,
                          (AtomEmbedding, "atoms"): AtomEmbedding.atoms_reference}
        self.fast = {key: getattr(*key) for key in self.reference}

    def _use(self, forms):
        for (cls, name), fn in forms.items():
            setattr(cls, name, fn)

    def _model(self, arch, dropout):
        from moleblend_plugin.modules.molecule_encoder import MoleculeEncoder

        torch.manual_seed(0)
        rates = dict(dropout=0.0, attention_dropout=0.0, activation_dropout=0.0) if not dropout else {}
        return MoleculeEncoder(**ARCH_WIDTHS[arch], **rates).to(self.device).train()

    def _step(self, model, batch, autocast):
        from moleblend_plugin.modules import relation_mixing as mixing

        model.zero_grad(set_to_none=True)
        mask = batch["atom_mask"]
        relations = mixing.whole_modalities(mask[:, :, None] & mask[:, None, :], (mixing.SPD, mixing.EDGE, mixing.DISTANCE))
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=autocast):
            out = model(batch, relations)
            loss = out.atom_states.float().square().mean() + out.graph_state.float().square().mean()
        loss.backward()
        return out, {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}

    def _on_device(self, batch):
        return {k: v.to(self.device) for k, v in batch.items()}

    def compare(self, arch, autocast):
        model, batch = self._model(arch, dropout=False), self._on_device(self.batches[arch][-1])
        self._use(self.fast)
        fast_out, fast_grads = self._step(model, batch, autocast)
        self._use(self.reference)
        ref_out, ref_grads = self._step(model, batch, autocast)
        self._use(self.fast)
        # relative to each tensor's largest entry, floored at 1e-3 of the largest gradient of
        # all: k_proj.bias's gradient is 0 up to rounding (softmax ignores a constant per query)
        floor = 1e-3 * max(float(g.abs().max()) for g in ref_grads.values())
        diffs = {n: float((fast_grads[n] - ref_grads[n]).abs().max()) / max(float(ref_grads[n].abs().max()), floor)
                 for n in ref_grads}
        worst = max(diffs, key=diffs.get)
        finite = fast_out.pair_bias.isfinite() & ref_out.pair_bias.isfinite()
        print(f"{arch} trunk, {'bf16 autocast' if autocast else 'fp32'}: fast vs reference forms, largest relative "
              f"difference: atom states {_relative(fast_out.atom_states, ref_out.atom_states):.1e}, pair bias "
              f"{_relative(fast_out.pair_bias[finite], ref_out.pair_bias[finite]):.1e}, gradients {diffs[worst]:.1e} "
              f"({worst}; {len(ref_grads)} tensors, the same ones: {fast_grads.keys() == ref_grads.keys()})")

    def heads_and_losses(self):
        from moleblend_plugin.criterions.grouped_cross_entropy import (grouped_cross_entropy,
                                                                       grouped_cross_entropy_reference)
        from moleblend_plugin.modules.noise_head import NoiseHead
        from moleblend_plugin.modules.relation_heads import OuterProductHead

        torch.manual_seed(1)
        b, n, d, dev = 32, 26, 256, self.device
        h = torch.randn(b, n, d, device=dev, requires_grad=True)
        head = OuterProductHead(d, 8, 65).to(dev)
        fast, reference = head(h), head.forward_materialized(h)
        upstream = torch.randn_like(reference)
        grad_fast, = torch.autograd.grad((fast * upstream).sum(), h)
        grad_reference, = torch.autograd.grad((reference * upstream).sum(), h)
        print(f"relation head, factorized vs materialized: values {_relative(fast, reference):.1e}, input gradient "
              f"{_relative(grad_fast, grad_reference):.1e}")
        noise = NoiseHead(d, 8).to(dev)
        bias = torch.randn(b, 8, n, n, device=dev)
        directions = torch.nn.functional.normalize(torch.randn(b, n, n, 3, device=dev), dim=-1)
        print(f"noise head vs its per-axis reference: values "
              f"{_relative(noise(h, bias, directions), noise.forward_reference(h, bias, directions)):.1e}")
        sizes = (5, 6, 2)
        target = torch.stack([torch.randint(0, k, (b, n, n, 5), device=dev) for k in sizes], dim=-1)
        valid = torch.rand(b, n, n, 5, device=dev) > 0.3
        for layout, make in (("contiguous", lambda: torch.randn(b, n, n, 5, 13, device=dev) * 3),
                             ("the head's [B, N, C, N] product", lambda: head(h.detach()).unflatten(-1, (5, 13)) * 3)):
            logits = make().detach().requires_grad_()
            loss, correct = grouped_cross_entropy(logits, target, valid, sizes)[:2]
            grad, = torch.autograd.grad(loss, logits)
            ref_loss, ref_correct = grouped_cross_entropy_reference(logits, target, valid, sizes)[:2]
            ref_grad, = torch.autograd.grad(ref_loss, logits)
            print(f"grouped cross-entropy ({layout}): loss {float(loss.detach()):.6f} vs "
                  f"{float(ref_loss.detach()):.6f}, correct {int(correct)} vs {int(ref_correct)}, gradient "
                  f"{_relative(grad, ref_grad):.1e}")

    def _molecules_per_second(self, arch, autocast, forms, steps):
        model = self._model(arch, dropout=True)
        self._use(forms)
        batches = [self._on_device(b) for b in self.batches[arch]]
        for batch in batches[:2]:
            self._step(model, batch, autocast)
        self._synchronize()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        start, molecules = time.perf_counter(), 0
        for i in range(steps):
            self._step(model, batches[i % len(batches)], autocast)
            molecules += batches[i % len(batches)]["atom_mask"].shape[0]
        self._synchronize()
        seconds = time.perf_counter() - start
        self._use(self.fast)
        peak = torch.cuda.max_memory_allocated() / 2 ** 20 if self.device.type == "cuda" else None
        return molecules / seconds, peak

    def _synchronize(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def speeds(self, arch, autocast, steps, ablation):
        variants = {"fast forms": self.fast}
        if ablation:
            for key, reference in self.reference.items():
                variants[f"{key[1]} in its reference form"] = {**self.fast, key: reference}
        variants["reference forms"] = self.reference
        results = {name: [] for name in variants}
        for _ in range(2):  # taking turns
            for name, forms in variants.items():
                results[name].append(self._molecules_per_second(arch, autocast, forms, steps))
        print(f"{arch} trunk forward and backward, {'bf16 autocast' if autocast else 'fp32'}, molecules/s (2 turns; "
              f"peak memory): " + "; ".join(f"{name} {', '.join(f'{r:.0f}' for r, _ in runs)}"
                                              + (f" ({runs[0][1]:.0f} MiB)" if runs[0][1] is not None else "")
                                              for name, runs in results.items()))


def _relative(a, b):
    a, b = a.detach().float(), b.detach().float()
    return float((a - b).abs().max() / b.abs().max())


if __name__ == "__main__":
    main()
