"""Cross-entropy of relation logits whose classes come in groups, over the valid entries.

The edge head predicts, for every pair and hop, the three OGB bond features at once: its
13 logits are three groups (5 bond types, 6 stereo labels, 2 conjugation flags), each a
softmax of its own. The SPD head is the case of one group. The loss of an entry is the
mean over its groups of -log softmax(group)[target]; entries that are not valid (padding,
the diagonal, hops beyond the path) count for nothing.

`grouped_cross_entropy` computes the sum of those losses over the valid entries on the
logits as the head made them, whatever their strides, with the backward written out:
the softmax minus the target's one-hot, times each entry's weight. Gathering the valid
entries first (`grouped_cross_entropy_reference`) copies them out and scatters their
gradient back into a zero tensor of the logits' size: for the edge head's
[B, N, N, hops, 13] logits those copies took more time than the loss.
"""
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F


class _GroupedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, target, weight, sizes):
        """logits [..., sum(sizes)] (fp32), target [..., groups] (class within each group, any
        value where weight is 0), weight [...] -> (sum of weight * sum over groups of the
        cross-entropy, entries whose every group's argmax is its target, among weight > 0)."""
        total = logits.new_zeros(())
        correct = weight > 0
        maxima, exp_sums = [], []
        for group, (start, size) in enumerate(_spans(sizes)):
            x = logits[..., start:start + size]
            t = target[..., group:group + 1]
            # shifted by the group's largest logit, as log_softmax is: a log-normalizer
            # added back to large logits would lose their small differences to rounding
            best, best_class = x.max(-1, keepdim=True)
            exp_sum = (x - best).exp_().sum(-1, keepdim=True)
            total += (weight * (exp_sum.log() + (best - x.gather(-1, t))).squeeze(-1)).sum()
            correct &= (best_class == t).squeeze(-1)
            maxima.append(best)
            exp_sums.append(exp_sum)
        ctx.sizes = sizes
        ctx.save_for_backward(logits, target, weight, *maxima, *exp_sums)
        ctx.mark_non_differentiable(correct)
        return total, correct.sum()

    @staticmethod
    def backward(ctx, grad_total, _grad_correct):
        logits, target, weight, *saved = ctx.saved_tensors
        groups = len(ctx.sizes)
        maxima, exp_sums = saved[:groups], saved[groups:]
        # the logits' own strides: the gradient reaches the head's product in its layout
        grad = torch.empty_like(logits)
        scale = (weight * grad_total).unsqueeze(-1)
        for group, (start, size) in enumerate(_spans(ctx.sizes)):
            part = grad[..., start:start + size]
            torch.sub(logits[..., start:start + size], maxima[group], out=part)
            part.exp_().mul_(scale / exp_sums[group])  # softmax times the entry's weight
            part.scatter_add_(-1, target[..., group:group + 1], -scale)
        return grad, None, None, None


def _spans(sizes: Sequence[int]):
    start = 0
    for size in sizes:
        yield start, size
        start += size


def grouped_cross_entropy(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
                          sizes: Sequence[int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """(sum over valid entries of the mean over groups of the cross-entropy, number of valid
    entries with every group right) for logits [..., sum(sizes)], target [..., len(sizes)]
    and valid [...]. Logits are taken in fp32."""
    if logits.shape[-1] != sum(sizes) or target.shape[-1] != len(sizes):
        raise ValueError(f"logits [..., {logits.shape[-1]}] and targets [..., {target.shape[-1]}] do not match "
                         f"class groups of sizes {list(sizes)}")
    weight = valid.to(torch.float32) / len(sizes)
    target = torch.where(valid.unsqueeze(-1), target, torch.zeros_like(target)).long()
    return _GroupedCrossEntropy.apply(logits.float(), target, weight, tuple(sizes))


def grouped_cross_entropy_reference(logits, target, valid, sizes):
    """`grouped_cross_entropy` on the valid entries gathered out, through F.cross_entropy."""
    picked, target = logits[valid].float(), target[valid]
    total, correct = 0.0, torch.ones(len(target), dtype=torch.bool, device=target.device)
    for group, group_logits in enumerate(torch.split(picked, list(sizes), dim=-1)):
        total = total + F.cross_entropy(group_logits, target[:, group], reduction="sum") / len(sizes)
        correct &= group_logits.argmax(-1) == target[:, group]
    return total, correct.sum()
