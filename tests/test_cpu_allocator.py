"""On CPUs the tasks keep freed memory in the process: a tensor freed and made again
costs no page faults (glibc otherwise maps blocks above 32 MB fresh each time)."""
import json
import subprocess
import sys

from finetune_runs import REPO, qm9_dataset
from moleblend_plugin.tasks.pretrain import PretrainConfig, PretrainTask

FAULTS_OF_A_SECOND_TENSOR = """
import json, resource, sys, torch
from moleblend_plugin.cpu_allocator import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
torch.empty(64 << 20, dtype=torch.uint8).fill_(1)  # 64 MiB, freed at once
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
torch.empty(64 << 20, dtype=torch.uint8).fill_(1)
print(json.dumps({"kept": kept, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def _second_tensor(mode):
    result = subprocess.run([sys.executable, "-c", FAULTS_OF_A_SECOND_TENSOR, mode], cwd=REPO,
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_freed_memory_is_reused_without_page_faults():
    default, kept = _second_tensor("default"), _second_tensor("keep")
    assert default["faults"] > 10_000  # 64 MiB of 4 KiB pages faulted in again
    assert kept["kept"] is True and kept["faults"] < 100


def test_a_cpu_task_keeps_freed_memory_unless_told(monkeypatch):
    calls = []
    monkeypatch.setattr("moleblend_plugin.tasks.molecule_task.keep_freed_memory", lambda: calls.append(1) or True)
    PretrainTask(PretrainConfig(data=qm9_dataset(), seed=1, cpu=True))
    assert calls == [1]
    PretrainTask(PretrainConfig(data=qm9_dataset(), seed=1, cpu=True, cpu_return_freed_memory=True))
    assert calls == [1]
