"""`--optimizer fused_adam`: fairseq's `adam` update through torch's fused AdamW.

fairseq's `adam` takes a Python loop of six or so passes over every parameter tensor
on CPUs (its fused form needs apex and a GPU); torch's `AdamW(fused=True)` makes one
pass. For the 49M parameters of `moleblend_base` on 2 cores: 32 ms per step against
74 ms (examples/benchmarks/pretraining_speed.py prints both).

The update is fairseq's: decoupled weight decay (p -= lr * wd * p, as AdamW), and eps
added to sqrt(v) before the bias correction, where torch adds it after. fairseq's step
lr * sqrt(c2) / c1 * m / (sqrt(v) + eps) (c1, c2 the bias corrections) equals torch's
lr / c1 * m / (sqrt(v) / sqrt(c2) + eps') with eps' = eps / sqrt(c2), so eps' is set
before each step from the parameters' step count; parameters with different counts
(some skipped updates without a gradient) are stepped in separate passes. fairseq's eps
is kept in each parameter group as "fairseq_eps", so that a checkpoint restores it and
--optimizer-overrides '{"eps": ...}' changes it, as with fairseq's `adam`.
"""
import ast
import math
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, List

import torch
from fairseq.dataclass import FairseqDataclass
from fairseq.optim import FairseqOptimizer, register_optimizer
from omegaconf import II, OmegaConf


@dataclass
class FusedAdamConfig(FairseqDataclass):
    adam_betas: Any = field(default=(0.9, 0.999), metadata={"help": "betas for Adam, e.g. '(0.9,0.999)'"})
    adam_eps: float = field(default=1e-8, metadata={"help": "epsilon for Adam, added as fairseq's adam adds it"})
    weight_decay: float = field(default=0.0, metadata={"help": "decoupled weight decay, as fairseq's adam"})
    lr: List[float] = II("optimization.lr")


class FairseqEpsAdamW(torch.optim.AdamW):
    """torch's AdamW, fused where torch has the fused kernel, with eps placed as fairseq's adam places it."""

    # fairseq's --fp16 hands the optimizer one flat fp32 tensor of all parameters
    supports_flat_params = True

    def __init__(self, params, lr, betas, eps, weight_decay):
        try:
            super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, fused=True)
        except RuntimeError:  # torch < 2.4 has no fused AdamW on CPU: the same update, loop by loop
            super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        for group in self.param_groups:
            group["fairseq_eps"] = eps

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        all_params = [group["params"] for group in self.param_groups]
        # each group's parameters with a gradient, by the number of steps they have taken
        by_count = [defaultdict(list) for _ in self.param_groups]
        for counts, params in zip(by_count, all_params):
            for p in params:
                if p.grad is not None:
                    state = self.state.get(p)
                    counts[int(state["step"]) if state else 0].append(p)
        turns = [sorted(counts.items()) for counts in by_count]  # per group: (steps taken, params)
        try:
            for turn in range(max((len(t) for t in turns), default=0)):
                for group, group_turns in zip(self.param_groups, turns):
                    taken, params = group_turns[turn] if turn < len(group_turns) else (0, [])
                    group["params"] = params
                    group["eps"] = group["fairseq_eps"] / math.sqrt(1 - group["betas"][1] ** (taken + 1))
                super().step()
        finally:
            for group, params in zip(self.param_groups, all_params):
                group["params"] = params
        return loss


@register_optimizer("fused_adam", dataclass=FusedAdamConfig)
class FusedAdam(FairseqOptimizer):
    """fairseq's `adam` update in torch's fused AdamW (see the module's docstring)."""

    def __init__(self, cfg: FusedAdamConfig, params):
        super().__init__(cfg)
        self._optimizer = FairseqEpsAdamW(params, **self.optimizer_config)

    @property
    def optimizer_config(self):
        """The settings the optimizer is built with."""
        betas = self.cfg.adam_betas  # "(0.9,0.999)" on the command line
        if isinstance(betas, str):
            betas = ast.literal_eval(betas)
        elif OmegaConf.is_config(betas):
            betas = OmegaConf.to_container(betas)
        return {
            "lr": self.cfg.lr[0] if isinstance(self.cfg.lr, Collection) else self.cfg.lr,
            "betas": tuple(betas),
            "eps": self.cfg.adam_eps,
            "weight_decay": self.cfg.weight_decay,
        }

    def load_state_dict(self, state_dict, optimizer_overrides=None):
        """As fairseq's, with an "eps" override meaning fairseq's eps."""
        overrides = dict(optimizer_overrides or {})
        if "eps" in overrides:
            overrides["fairseq_eps"] = overrides.pop("eps")
        super().load_state_dict(state_dict, overrides)
