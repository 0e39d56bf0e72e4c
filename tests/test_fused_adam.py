"""--optimizer fused_adam: the steps of fairseq's adam, through fairseq-train, resumable."""
import os

import torch
from fairseq.optim.adam import Adam as FairseqAdamLoop

from finetune_runs import PLUGIN_DIR, fairseq_train, qm9_dataset
from moleblend_plugin.checkpoints.safe_loading import load_checkpoint_file
from moleblend_plugin.optimizers.fused_adam import FairseqEpsAdamW

# eps large enough against sqrt(v) that where it is added changes the step
SETTINGS = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-3, weight_decay=0.01)


def _parameters_after_steps(make_optimizer, steps=7):
    g = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(shape, generator=g)) for shape in ((7, 5), (5,), (3, 4, 2), (6,))]
    # two groups, as a model with its own settings for some parameters has
    optimizer = make_optimizer([{"params": params[:2]}, {"params": params[2:], "lr": 3e-3}])
    for step in range(steps):
        for i, p in enumerate(params):
            # gradients of mixed scale, some near eps, as embedding rows and biases get;
            # the first parameter skips every other update (no gradient), as an unused head does
            skip = i == 0 and step % 2 == 1
            p.grad = None if skip else torch.randn(p.shape, generator=g) * (1e-3 if i in (1, 3) else 1.0)
        optimizer.step()
    return [p.detach() for p in params]


def test_fused_adam_takes_the_steps_of_fairseqs_adam():
    fairseq = _parameters_after_steps(lambda groups: FairseqAdamLoop(groups, **SETTINGS))
    fused = _parameters_after_steps(lambda groups: FairseqEpsAdamW(groups, **SETTINGS))
    plain = _parameters_after_steps(lambda groups: torch.optim.AdamW(groups, **SETTINGS))
    for a, b in zip(fused, fairseq):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    # torch's own placement of eps gives other parameters: the comparison can tell
    assert max(float((a - b).abs().max()) for a, b in zip(plain, fairseq)) > 1e-4


def test_one_flat_tensor_steps_as_its_pieces():
    """fairseq's --fp16 gives the optimizer all parameters as one flat fp32 tensor."""
    assert FairseqEpsAdamW.supports_flat_params
    pieces = _parameters_after_steps(lambda groups: FairseqEpsAdamW(groups[0]["params"], **SETTINGS), steps=1)
    g = torch.Generator().manual_seed(0)
    shapes = ((7, 5), (5,))
    flat = torch.nn.Parameter(torch.cat([torch.randn(shape, generator=g).reshape(-1) for shape in shapes]))
    for shape in ((3, 4, 2), (6,)):
        torch.randn(shape, generator=g)  # the other group's draws, in the same order
    flat.grad = torch.cat([torch.randn(shape, generator=g).reshape(-1) * (1e-3 if i == 1 else 1.0)
                           for i, shape in enumerate(shapes)])
    FairseqEpsAdamW([flat], **SETTINGS).step()
    torch.testing.assert_close(flat.detach(), torch.cat([p.reshape(-1) for p in pieces[:2]]))


def _pretrain(save_dir, max_update):
    fairseq_train([qm9_dataset(), "--user-dir", PLUGIN_DIR, "--task", "moleblend_pretrain",
                   "--criterion", "moleblend_pretrain", "--arch", "moleblend_tiny", "--cpu", "--num-workers", "0",
                   "--batch-size", "8", "--required-batch-size-multiple", "1", "--optimizer", "fused_adam",
                   "--adam-betas", "(0.9,0.98)", "--weight-decay", "0.01", "--lr", "1e-3",
                   "--max-update", str(max_update), "--save-dir", save_dir, "--no-epoch-checkpoints",
                   "--no-progress-bar", "--disable-validation", "--seed", "5"])
    return load_checkpoint_file(os.path.join(save_dir, "checkpoint_last.pt"))


def test_fairseq_train_trains_and_resumes_with_fused_adam(tmp_path):
    save_dir = str(tmp_path / "checkpoints")
    first = _pretrain(save_dir, 2)
    assert first["cfg"]["optimizer"]["_name"] == "fused_adam"
    state = first["last_optimizer_state"]
    assert state["param_groups"][0]["betas"] == (0.9, 0.98) and state["state"]
    assert {int(s["step"]) for s in state["state"].values()} == {2}
    assert state["param_groups"][0]["fairseq_eps"] == 1e-8  # kept for the resume
    resumed = _pretrain(save_dir, 3)
    assert resumed["optimizer_history"][-1]["num_updates"] == 3
    assert {int(s["step"]) for s in resumed["last_optimizer_state"]["state"].values()} == {3}
