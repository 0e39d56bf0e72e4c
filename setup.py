"""Install the MoleBlend fairseq plugin and the data preparation tool.

torch and fairseq are installed by scripts/setup_env.sh before this package, because
their PyPI resolution on Python 3.11 needs care (see README).
"""
from setuptools import find_packages, setup

setup(
    name="moleblend-plugin",
    version="0.1.0",
    description="MoleBlend multimodal molecular pretraining as a fairseq --user-dir plugin",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["moleblend_plugin", "moleblend_plugin.*", "moleblend_data", "moleblend_data.*",
                                    "data_prep", "data_prep.*"]),
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.1",
        "numpy>=1.26",
        "rdkit>=2023.9",
        "ogb>=1.3.6",
        "lmdb>=1.4",
        "tqdm",
        "pandas",
        "scikit-learn",
        "matplotlib",
    ],
    extras_require={"test": ["pytest"], "tensorboard": ["tensorboardX"]},
    entry_points={
        "console_scripts": [
            "moleblend-prep=data_prep.__main__:main",
            "moleblend-train=moleblend_plugin.train:main",
        ]
    },
    include_package_data=True,
)
