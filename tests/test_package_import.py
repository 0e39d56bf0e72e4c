import subprocess
import sys


def test_fairseq_user_dir_registers_the_plugin_even_after_an_earlier_data_import():
    # fairseq skips a --user-dir package that is already imported, so any first import
    # of the plugin (here its data modules) must register it.
    code = ("import moleblend_data.shards; import moleblend_plugin.data.collate; import fairseq; "
            "from fairseq.tasks import TASK_REGISTRY; from fairseq.models import MODEL_REGISTRY, ARCH_MODEL_REGISTRY; "
            "from fairseq.criterions import CRITERION_REGISTRY; "
            "print(all(['moleblend_pretrain' in TASK_REGISTRY, 'moleblend_finetune' in TASK_REGISTRY, "
            "'moleblend' in MODEL_REGISTRY, 'moleblend_tiny' in ARCH_MODEL_REGISTRY, "
            "'moleblend_pretrain' in CRITERION_REGISTRY, 'moleblend_finetune' in CRITERION_REGISTRY]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("True")


def test_data_preparation_imports_neither_torch_nor_fairseq():
    code = ("import sys, data_prep.__main__, data_prep.build, moleblend_data.featurize, moleblend_data.shards; "
            "print(sorted(m for m in ('torch', 'fairseq', 'moleblend_plugin') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_importing_the_plugin_leaves_an_unconfigured_root_logger_alone():
    # fairseq's import calls logging.basicConfig(level=DEBUG); a script using the plugin's
    # API would then print every library's debug messages.
    code = ("import logging, moleblend_plugin.embeddings; root = logging.getLogger(); "
            "print(root.level, len(root.handlers))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "30 0"
