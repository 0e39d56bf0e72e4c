"""--cpu-bf16-autocast: the steps' products run in bf16, the losses stay close to fp32's,
and the parameters, gradients and checkpoints stay fp32."""
import os

import torch

from finetune_runs import pretrain, qm9_dataset
from model_inputs import ASPIRIN, CAFFEINE, NAPHTHOL, CriterionModel, batch_of, build_encoder, tiny_config
from moleblend_plugin.cpu_autocast import bf16_autocast, cpu_bf16_support
from moleblend_plugin.criterions.pretrain import PretrainCriterion
from moleblend_plugin.models.moleblend import MoleBlendEncoder, MoleBlendModel
from moleblend_plugin.tasks.pretrain import PretrainConfig, PretrainTask

# Relative difference allowed between a fixed batch's loss terms under bf16 autocast and
# in fp32 (bf16 keeps 8 bits of mantissa; on this batch they differ by less than 0.05%).
BF16_LOSS_TOLERANCE = 0.01


def _terms(model, batch, autocast):
    criterion = PretrainCriterion(None, 1.0, 1.0, 1.0, 1.0, "l1", "cosine")
    torch.manual_seed(11)  # the same blend and noise in both precisions
    with bf16_autocast(autocast):
        output = model(batch)
        terms, _ = criterion.compute_terms(model, output, batch)
    return {name: float(value.detach()) for name, value in terms.items()}


def _linear_output_dtypes(model):
    seen = set()
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            module.register_forward_hook(lambda m, i, o: seen.add(o.dtype))
    return seen


def test_loss_terms_under_bf16_autocast_are_within_tolerance_of_fp32():
    model = CriterionModel(build_encoder(pretrain_mode="moleblend", encoder_embed_dim=64, encoder_ffn_embed_dim=64)).train()
    batch = batch_of(ASPIRIN, CAFFEINE, NAPHTHOL)
    dtypes = _linear_output_dtypes(model)
    fp32 = _terms(model, batch, autocast=False)
    assert dtypes == {torch.float32}
    bf16 = _terms(model, batch, autocast=True)
    assert torch.bfloat16 in dtypes
    assert fp32.keys() == bf16.keys() == {"spd", "edge", "3d", "noise"}
    for name in fp32:
        assert abs(bf16[name] - fp32[name]) <= BF16_LOSS_TOLERANCE * abs(fp32[name]), (name, fp32[name], bf16[name])


class _Optimizer:
    """What fairseq's train_step asks of an optimizer."""

    def backward(self, loss):
        loss.backward()


def test_the_task_runs_its_steps_under_autocast_only_with_the_flag():
    for flag in (False, True):
        task = PretrainTask(PretrainConfig(data=qm9_dataset(), seed=1, cpu_bf16_autocast=flag))
        task.load_dataset("valid")
        dataset = task.datasets["valid"]
        sample = dataset.collater([dataset[i] for i in range(len(dataset))])
        torch.manual_seed(0)
        cfg = tiny_config(pretrain_mode="moleblend")
        model = MoleBlendModel(cfg, MoleBlendEncoder(cfg, 0, pretraining=True))
        criterion = PretrainCriterion(task, 1.0, 1.0, 1.0, 1.0, "l1", "cosine")
        dtypes = _linear_output_dtypes(model)
        loss, _, _ = task.train_step(sample, model, criterion, _Optimizer(), update_num=0)
        assert torch.isfinite(loss)
        assert (torch.bfloat16 in dtypes) == flag
        assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32
                   for p in model.parameters() if p.grad is not None)
        dtypes.clear()
        task.valid_step(sample, model, criterion)
        assert (torch.bfloat16 in dtypes) == flag


def test_fairseq_train_takes_the_flag_and_saves_fp32_weights(tmp_path):
    checkpoint = pretrain(str(tmp_path), "--encoder-layers", "1", "--max-update", "3", "--cpu-bf16-autocast")
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    assert state["optimizer_history"][-1]["num_updates"] == 3
    assert {v.dtype for v in state["model"].values() if v.is_floating_point()} == {torch.float32}
    assert os.path.getsize(checkpoint) > 0


def test_cpu_support_is_read_from_the_cpu_flags():
    support = cpu_bf16_support()
    assert set(support) == {"amx_bf16", "avx512_bf16"}
    if os.path.exists("/proc/cpuinfo"):
        flags = open("/proc/cpuinfo").read()
        assert support["avx512_bf16"] == (" avx512_bf16" in flags)
