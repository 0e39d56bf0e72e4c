import subprocess
import sys


def test_data_modules_import_without_torch_or_fairseq():
    code = ("import sys, moleblend_plugin.data.shards, moleblend_plugin.data.featurize, data_prep.build; "
            "print(sorted(m for m in ('torch', 'fairseq') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_importing_the_package_after_fairseq_registers_tasks_models_and_criterions():
    code = ("import fairseq, moleblend_plugin; "
            "from fairseq.tasks import TASK_REGISTRY; from fairseq.models import MODEL_REGISTRY, ARCH_MODEL_REGISTRY; "
            "from fairseq.criterions import CRITERION_REGISTRY; "
            "print(all(['moleblend_pretrain' in TASK_REGISTRY, 'moleblend_finetune' in TASK_REGISTRY, "
            "'moleblend' in MODEL_REGISTRY, 'moleblend_tiny' in ARCH_MODEL_REGISTRY, "
            "'moleblend_pretrain' in CRITERION_REGISTRY, 'moleblend_finetune' in CRITERION_REGISTRY]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("True")
