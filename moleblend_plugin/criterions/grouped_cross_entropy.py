"""Cross-entropy of relation logits whose classes come in groups, over the valid entries.

The edge head predicts, for every pair and hop, the three OGB bond features at once: its
13 logits are three groups (5 bond types, 6 stereo labels, 2 conjugation flags), each a
softmax of its own. The SPD head is the case of one group. The loss of an entry is the
mean over its groups of -log softmax(group)[target]; entries that are not valid (padding,
the diagonal, hops beyond the path) count for nothing.

`grouped_cross_entropy` computes the sum of those losses over the valid entries on the
logits as the head made them, walking them in the order of their memory, with the
backward written out: the softmax minus the target's one-hot, times each entry's
weight. Gathering the valid entries first (`grouped_cross_entropy_reference`) copies
them out and scatters their gradient back into a zero tensor of the logits' size: for
the edge head's [B, N, N, hops, 13] logits those copies took more time than the loss.
"""
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F


class _GroupedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, target, weight, sizes, dim):
        """logits [..., sum(sizes), ...] (fp32, classes along `dim`), target [..., groups, ...]
        (class within each group, any value where weight is 0), weight [..., 1, ...] ->
        (sum of weight * sum over groups of the cross-entropy, entries with every group's
        argmax on its target, among weight > 0). Entries of weight 0 take no part, whatever
        their logits (also inf or NaN)."""
        total = logits.new_zeros(())
        valid = weight > 0
        correct = valid.clone()
        maxima, exp_sums = [], []
        ctx.unscored_not_finite = False
        for group, (start, size) in enumerate(_spans(sizes)):
            x = logits.narrow(dim, start, size)
            t = target.narrow(dim, group, 1)
            # shifted by the group's largest logit, as log_softmax is: a log-normalizer
            # added back to large logits would lose their small differences to rounding
            best = x.amax(dim, keepdim=True)
            picked = x.gather(dim, t)
            exp_sum = (x - best).exp_().sum(dim, keepdim=True)
            loss = weight * (exp_sum.log() + best - picked)
            # an entry with an inf or NaN logit has a maximum that is not finite: if it is
            # not scored, it must not reach the sum (0 * inf is NaN) nor the gradient
            if not bool(torch.isfinite(best).all()):
                ctx.unscored_not_finite = True
                loss = torch.where(valid, loss, 0.0)
            total += loss.sum()
            correct &= _argmax_is(x, best, picked, exp_sum, t, dim)
            maxima.append(best)
            exp_sums.append(exp_sum)
        ctx.sizes, ctx.dim = sizes, dim
        ctx.save_for_backward(logits, target, weight, *maxima, *exp_sums)
        return total, correct.sum()

    @staticmethod
    def backward(ctx, grad_total, _grad_correct):
        logits, target, weight, *saved = ctx.saved_tensors
        groups, dim = len(ctx.sizes), ctx.dim
        maxima, exp_sums = saved[:groups], saved[groups:]
        grad = torch.empty_like(logits)
        scale = weight * grad_total
        for group, (start, size) in enumerate(_spans(ctx.sizes)):
            part = grad.narrow(dim, start, size)
            torch.sub(logits.narrow(dim, start, size), maxima[group], out=part)
            part.exp_().mul_(scale / exp_sums[group])  # softmax times the entry's weight
            if ctx.unscored_not_finite:
                part.masked_fill_(weight == 0, 0.0)
            part.scatter_add_(dim, target.narrow(dim, group, 1), -scale)
        return grad, None, None, None, None


def _argmax_is(x, best, picked, exp_sum, target, dim):
    """argmax(x, dim) == target, with argmax's first-of-ties rule, without argmax (it
    reduces many times slower across the classes' stride). A class tied with the target
    at the top adds exp(0) = 1 to exp_sum beside the target's own 1, so a tie needs
    exp_sum >= 2; only then are the classes at the top counted, and only where the target
    shares the top are the classes before it looked at."""
    hit = picked == best
    if not bool((hit & (exp_sum >= 2)).any()):
        return hit
    top = x == best
    tied = hit & (top.sum(dim, keepdim=True, dtype=torch.int32) > 1)
    if not bool(tied.any()):
        return hit
    earlier = torch.zeros_like(hit)
    for c in range(x.shape[dim] - 1):
        earlier |= top.narrow(dim, c, 1) & (target > c)
    return hit & ~earlier


def _spans(sizes: Sequence[int]):
    start = 0
    for size in sizes:
        yield start, size
        start += size


def grouped_cross_entropy(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
                          sizes: Sequence[int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """(sum over valid entries of the mean over groups of the cross-entropy, number of valid
    entries with every group right) for logits [..., sum(sizes)], target [..., len(sizes)]
    and valid [...]. Logits are taken in fp32; a group is right when its argmax (the first
    of tied classes) is the target."""
    if logits.shape[-1] != sum(sizes) or target.shape[-1] != len(sizes):
        raise ValueError(f"logits [..., {logits.shape[-1]}] and targets [..., {target.shape[-1]}] do not match "
                         f"class groups of sizes {list(sizes)}")
    weight = (valid.to(torch.float32) / len(sizes)).unsqueeze(-1)
    # Dimensions in the order of the logits' memory (the heads' [B, N, C, N] product lays
    # the classes before the partners): reductions over the classes and the passes over
    # targets, weights and gradient then walk memory in one order, not at cross purposes.
    order = sorted(range(logits.dim()), key=lambda d: -logits.stride(d))
    class_dim = order.index(len(order) - 1)
    target = target.permute(order).to(torch.long, memory_format=torch.contiguous_format, copy=True)
    for group, size in enumerate(sizes):
        # any class index where the entry is not valid (edge paths hold -1 past their end)
        target.narrow(class_dim, group, 1).clamp_(0, size - 1)
    return _GroupedCrossEntropy.apply(logits.float().permute(order), target, weight.permute(order).contiguous(),
                                      tuple(sizes), class_dim)


def grouped_cross_entropy_reference(logits, target, valid, sizes):
    """`grouped_cross_entropy` on the valid entries gathered out, through F.cross_entropy."""
    picked, target = logits[valid].float(), target[valid]
    total, correct = 0.0, torch.ones(len(target), dtype=torch.bool, device=target.device)
    for group, group_logits in enumerate(torch.split(picked, list(sizes), dim=-1)):
        total = total + F.cross_entropy(group_logits, target[:, group], reduction="sum") / len(sizes)
        correct &= group_logits.argmax(-1) == target[:, group]
    return total, correct.sum()
