"""Install the MoleBlend fairseq plugin, its data package and the data preparation tool.

fairseq itself is installed separately, after this package (see README, "Installing by
hand"): PyPI's fairseq 0.12.2 does not build on Python 3.11, and the working build,
`fairseq-fixed==0.12.3.1`, pins a torchaudio that would replace the installed torch, so it
goes in with `--no-deps --no-build-isolation`. Its runtime needs are listed here instead.
torch is installed first, pinned, so that pip does not resolve it to a CUDA build.
"""
from setuptools import find_packages, setup

# Tested: numpy 1.26.4 with RDKit 2024.9.6, and numpy 2.4.6 with RDKit 2026.9.1, on torch 2.13.
DATA = ["numpy>=1.26", "rdkit>=2024.9.6", "ogb>=1.3.6", "lmdb>=1.4", "tqdm", "pandas"]
PLUGIN = ["torch>=2.1", "scikit-learn", "matplotlib",
          # fairseq 0.12's runtime needs (fairseq-fixed is installed --no-deps)
          "hydra-core>=1.3.2,<1.4", "omegaconf>=2.3,<2.4", "bitarray", "regex", "sacrebleu", "cffi",
          "cython", "packaging"]

setup(
    name="moleblend-plugin",
    version="0.2.0",
    description="MoleBlend multimodal molecular pretraining as a fairseq --user-dir plugin",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["moleblend_plugin", "moleblend_plugin.*", "moleblend_data", "moleblend_data.*",
                                    "data_prep", "data_prep.*", "moleblend_cli", "moleblend_cli.*"]),
    python_requires=">=3.10",
    install_requires=DATA + PLUGIN,
    extras_require={"test": ["pytest"], "tensorboard": ["tensorboardX"]},
    entry_points={
        "console_scripts": [
            "moleblend=moleblend_cli.__main__:main",
            "moleblend-prep=data_prep.__main__:main",
            "moleblend-train=moleblend_plugin.train:main",
        ]
    },
    # the C kernels are compiled on the user's machine at first use
    package_data={"moleblend_plugin.modules.native": ["*.c"]},
    include_package_data=True,
)
