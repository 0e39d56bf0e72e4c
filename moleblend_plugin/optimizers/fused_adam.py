"""`--optimizer fused_adam`: fairseq's `adam` update through torch's fused AdamW.

fairseq's `adam` takes a Python loop of six or so passes over every parameter tensor
on CPUs (its fused form needs apex and a GPU); torch's `AdamW(fused=True)` makes one
pass. For the 49M parameters of `moleblend_base` on 2 cores: 31 ms per step against
70 ms (examples/benchmarks/pretraining_speed.py times the whole step with it).

The update is fairseq's: decoupled weight decay (p -= lr * wd * p, as AdamW), and eps
added to sqrt(v) before the bias correction, where torch adds it after. fairseq's step
lr * sqrt(c2) / c1 * m / (sqrt(v) + eps) (c1, c2 the bias corrections) equals torch's
lr / c1 * m / (sqrt(v) / sqrt(c2) + eps') with eps' = eps / sqrt(c2), so eps' is set
before each step from the group's step count. Parameters of a group that skip steps
(no gradient on some updates) get eps' of the group's count: it differs from theirs
by at most the ratio of two bias corrections, 1 after about 1 / (1 - beta2) steps.
"""
import ast
import math
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

    def __init__(self, params, lr, betas, eps, weight_decay):
        try:
            super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, fused=True)
        except RuntimeError:  # torch < 2.4 has no fused AdamW on CPU: the same update, loop by loop
            super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        self.fairseq_eps = eps

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            taken = next((int(self.state[p]["step"]) for p in group["params"] if self.state.get(p)), 0)
            bias_correction2 = 1 - group["betas"][1] ** (taken + 1)
            group["eps"] = self.fairseq_eps / math.sqrt(bias_correction2)
        return super().step(closure)


@register_optimizer("fused_adam", dataclass=FusedAdamConfig)
class FusedAdam(FairseqOptimizer):
    """fairseq's `adam` update in torch's fused AdamW (see the module's docstring)."""

    def __init__(self, cfg: FusedAdamConfig, params):
        super().__init__(cfg)
        self._optimizer = FairseqEpsAdamW(params, **self.optimizer_config)

    @property
    def optimizer_config(self):
        """The settings that override those stored in a checkpoint's optimizer state."""
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
