"""The pretraining task's datasets and validation: single atoms left out and counted,
validation metrics that do not change between two passes, old shards refused."""
import json
import logging
import shutil

import pytest
import torch

from finetune_runs import qm9_dataset
from model_inputs import tiny_config
from moleblend_plugin.criterions.pretrain import PretrainCriterion
from moleblend_data.shards import MANIFEST
from moleblend_plugin.errors import UserError
from moleblend_plugin.models.moleblend import MoleBlendEncoder, MoleBlendModel
from moleblend_plugin.tasks.finetune import FinetuneConfig, FinetuneTask
from moleblend_plugin.tasks.pretrain import PretrainConfig, PretrainTask



def test_single_atom_molecules_are_left_out_of_pretraining_only(caplog):
    caplog.set_level(logging.INFO)
    pretrain, finetune = PretrainTask(PretrainConfig(data=qm9_dataset(), seed=1)), \
        FinetuneTask(FinetuneConfig(data=qm9_dataset(), seed=1))
    manifest = pretrain.manifest
    left_out = 0
    for split in ("train", "valid", "test"):
        pretrain.load_dataset(split)
        finetune.load_dataset(split)
        assert len(finetune.datasets[split]) == manifest["splits"][split]  # every molecule
        dataset = pretrain.datasets[split]
        assert all(dataset[i]["atom_features"].shape[0] >= 2 for i in range(len(dataset)))
        assert sorted(dataset.ordered_indices().tolist()) == list(range(len(dataset)))
        left_out += manifest["splits"][split] - len(dataset)
    assert left_out == 3  # methane, ammonia and water of the QM9 fixture
    assert "single-atom molecules left out" in caplog.text


def test_validation_metrics_are_the_same_twice():
    task = PretrainTask(PretrainConfig(data=qm9_dataset(), seed=1))
    task.load_dataset("valid")
    dataset = task.datasets["valid"]
    sample = dataset.collater([dataset[i] for i in range(len(dataset))])
    torch.manual_seed(0)
    cfg = tiny_config(pretrain_mode="moleblend")
    model = MoleBlendModel(cfg, MoleBlendEncoder(cfg, 0, pretraining=True))
    criterion = PretrainCriterion(task, 1.0, 1.0, 1.0, 1.0, "l1", "cosine")
    first = task.valid_step(sample, model, criterion)[2]
    torch.rand(100)  # whatever the training stream of random numbers did in between
    second = task.valid_step(sample, model, criterion)[2]
    for key in first:
        assert first[key] == second[key] or (torch.is_tensor(first[key]) and torch.equal(first[key], second[key])), key
    assert float(first["noise_loss_sum"]) > 0  # the noise was drawn


def test_shards_of_another_featurization_version_are_refused(tmp_path):
    old = tmp_path / "old"
    shutil.copytree(qm9_dataset(), old)
    manifest = json.loads((old / MANIFEST).read_text())
    manifest["featurization_version"] = 1
    (old / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="featurization version 1.*rebuild"):
        PretrainTask(PretrainConfig(data=str(old), seed=1))
