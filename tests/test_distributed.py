"""Data-parallel training of the plugin's model and criterions: 2 CPU processes (gloo).

fairseq 0.12 launches data-parallel training on GPUs only, so this test wraps the plugin's
model as fairseq's `pytorch_ddp` backend does (torch's DistributedDataParallel inside
fairseq's ModuleProxyWrapper, through which the criterions read `model.cfg`) and runs the
plugin's criterions on batches of real molecules read from prepared shards.

What is compared. Each update has a global batch of two half-batches, one per rank. Both
criterions return per-batch mean losses with sample_size 1, and fairseq divides a
data-parallel update's summed gradients by the summed sample size, so an update's
gradient is the mean over ranks of each rank's half-batch gradient (DDP's average). The
single-process reference runs the same two half-batches as two accumulated micro-batches,
each loss halved: the same objective, as fairseq's --update-freq 2 on one process would
weight it. (One forward over the concatenated batch weights pairs, atoms and labels
otherwise: a different objective, so no check of data parallelism.)

Randomness. The blend sampler, the coordinate noise and dropout draw from torch's global
RNG. Like fairseq's trainer, every rank seeds it with seed + update number before its
forward; the reference seeds the same before each micro-batch, so it reproduces every
rank's draws exactly and only the order of floating-point sums differs.

The two ranks are forked from the test process (they reuse its imports) and meet through
a rendezvous file; each reads its own half-batches from the shards, as a rank would.
"""
import os
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from fairseq.distributed import ModuleProxyWrapper
from torch.nn.parallel import DistributedDataParallel

from data_prep.__main__ import main as data_prep_main
from moleblend_plugin.criterions.finetune import FinetuneCriterion
from moleblend_plugin.criterions.pretrain import PretrainCriterion
from moleblend_plugin.models.moleblend import MoleBlendModel
from moleblend_plugin.tasks.finetune import FinetuneConfig, FinetuneTask
from moleblend_plugin.tasks.pretrain import PretrainConfig, PretrainTask

from model_inputs import tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QM9_SAMPLE = os.path.join(REPO, "examples", "data", "qm9", "qm9.csv")
WORLD_SIZE = 2
MOLECULES_PER_RANK = 4
UPDATES = 3
SEED = 7
# Plain SGD: its step is proportional to the gradient, so a summed instead of averaged
# gradient would show (Adam's step hardly depends on the gradient's scale).
LR = 0.05
# float32 gradients summed in another order, through a few SGD steps
TOLERANCE = 1e-6

# Dropout on, so that the reference has to reproduce its masks too.
DROPOUT = dict(dropout=0.1, attention_dropout=0.1, act_dropout=0.1)
CASES = {
    # blend-then-predict: every parameter takes part in the loss
    "pretrain_blend": dict(pretraining=True, model=dict(pretrain_mode="blend"), find_unused_parameters=False),
    # the same plus noisy node (coordinate noise drawn from the global RNG as well)
    "pretrain_moleblend": dict(pretraining=True, model=dict(pretrain_mode="moleblend"), find_unused_parameters=False),
    # 2D input leaves the 3D encoder (molecule_encoder.molecule_3d_bias) without a gradient
    "finetune_2d": dict(pretraining=False, model=dict(input_modality="2d"), find_unused_parameters=True),
}
UNUSED_IN_2D = "encoder.molecule_encoder.molecule_3d_bias."


def build(case: str, data: str):
    """Task, model (same initial weights in every process), criterion and training split."""
    spec = CASES[case]
    if spec["pretraining"]:
        task = PretrainTask(PretrainConfig(data=data, seed=1))
    else:
        task = FinetuneTask(FinetuneConfig(data=data, seed=1, targets="gap"))
    task.load_dataset("train")
    torch.manual_seed(0)
    model = MoleBlendModel.build_model(tiny_config(**DROPOUT, **spec["model"]), task)
    if spec["pretraining"]:
        criterion = PretrainCriterion(task, 1.0, 1.0, 1.0, 1.0, "l1", "cosine")
    else:
        criterion = FinetuneCriterion(task, "mse")
    return task, model, criterion, task.dataset("train")


def make_optimizer(parameters):
    return torch.optim.SGD(parameters, lr=LR)


def half_batch(dataset, update: int, rank: int):
    start = (update * WORLD_SIZE + rank) * MOLECULES_PER_RANK
    return dataset.collater([dataset[i] for i in range(start, start + MOLECULES_PER_RANK)])


def reference_run(case: str, data: str, ranks=range(WORLD_SIZE)):
    """One process, the half-batches of `ranks` accumulated into each update."""
    _, model, criterion, dataset = build(case, data)
    model.train()
    optimizer = make_optimizer(model.parameters())
    for update in range(UPDATES):
        optimizer.zero_grad()
        for rank in ranks:
            torch.manual_seed(SEED + update)
            loss, _, _ = criterion(model, half_batch(dataset, update, rank))
            (loss / len(ranks)).backward()
        optimizer.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def ddp_train(case: str, data: str, rank: int, find_unused_parameters: bool, updates: int = UPDATES):
    _, model, criterion, dataset = build(case, data)
    model.train()
    wrapped = ModuleProxyWrapper(DistributedDataParallel(model, find_unused_parameters=find_unused_parameters))
    optimizer = make_optimizer(wrapped.parameters())
    for update in range(updates):
        optimizer.zero_grad()
        torch.manual_seed(SEED + update)
        loss, _, _ = criterion(wrapped, half_batch(dataset, update, rank))
        loss.backward()
        optimizer.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def worker(rank: int, init_file: str, data: str, out_dir: str):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE,
                            timeout=timedelta(seconds=120))
    results = {}
    for case, spec in CASES.items():
        results[case] = ddp_train(case, data, rank, spec["find_unused_parameters"])
    # Without find_unused_parameters, DDP waits for gradients the 3D encoder never gets and
    # refuses the next iteration: the reason the fine-tuning scripts pass --find-unused-parameters.
    try:
        ddp_train("finetune_2d", data, rank, find_unused_parameters=False, updates=2)
        results["unused_error"] = ""
    except RuntimeError as error:
        results["unused_error"] = str(error)
    torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def qm9_sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "qm9"
    assert data_prep_main(["qm9", "--input", QM9_SAMPLE, "--output", str(out), "--limit", "40",
                           "--valid-size", "4", "--test-size", "4", "--quiet"]) == 0
    return str(out)


@pytest.fixture(scope="module")
def ddp_results(qm9_sample, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("ddp_ranks")
    # fork: the workers reuse the imports of this process instead of loading torch and fairseq again
    mp.start_processes(worker, args=(str(out_dir / "rendezvous"), qm9_sample, str(out_dir)), nprocs=WORLD_SIZE,
                       join=True, start_method="fork")
    return [torch.load(out_dir / f"rank{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]


def _max_difference(a, b):
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.mark.parametrize("case", list(CASES))
def test_ddp_matches_the_single_process_run_with_the_same_global_batch(case, ddp_results, qm9_sample):
    rank0, rank1 = (r[case] for r in ddp_results)
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), f"{key} differs between the ranks"

    reference = reference_run(case, qm9_sample)
    difference = _max_difference(rank0, reference)
    assert difference < TOLERANCE, f"DDP and the single-process run differ by {difference:.2e}"

    # The comparison has teeth: training moved the weights far beyond the tolerance, and
    # leaving out rank 1's half-batch gives a different model.
    _, initial, _, _ = build(case, qm9_sample)
    assert _max_difference(initial.state_dict(), reference) > 1e-4
    assert _max_difference(reference_run(case, qm9_sample, ranks=[0]), reference) > 1e-4


def test_2d_finetuning_leaves_the_3d_encoder_untouched_and_needs_find_unused_parameters(ddp_results, qm9_sample):
    _, initial, _, _ = build("finetune_2d", qm9_sample)
    trained = ddp_results[0]["finetune_2d"]
    unused = [k for k in trained if k.startswith(UNUSED_IN_2D)]
    assert unused
    for key in unused:
        assert torch.equal(trained[key], initial.state_dict()[key])
    for rank in ddp_results:
        assert "find_unused_parameters" in rank["unused_error"]
