"""ESOL molecules embedded by a pretrained MoleBlend encoder and by the same encoder
untrained: a PCA map coloured by measured solubility, and a linear probe of solubility.

    python examples/embeddings/esol_embeddings.py CHECKPOINT --input esol.csv --output docs/images/esol_embeddings.png

The probe is ridge regression (alpha chosen by inner cross-validation) on the graph-token
embedding, scored by R² on each of 5 seeded cross-validation folds; the untrained encoder (same
architecture, the initialisation of a new model, seed 0) says how much of the fit comes
from pretraining rather than from the architecture and the input features alone.
"""
import argparse
import sys

import numpy as np
import pandas as pd

SOLUBILITY = "measured log solubility in mols per litre"


def pca(x: np.ndarray, k: int = 2) -> np.ndarray:
    centred = x - x.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:k].T


def probe_r2(x: np.ndarray, y: np.ndarray, seed: int = 0) -> np.ndarray:
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13)))
    return cross_val_score(model, x, y, cv=KFold(5, shuffle=True, random_state=seed), scoring="r2")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a moleblend_pretrain (or moleblend_finetune) checkpoint")
    parser.add_argument("--input", required=True, help="ESOL CSV (delaney-processed.csv columns)")
    parser.add_argument("--output", required=True, help="PNG to write")
    parser.add_argument("--input-modality", default="2d", choices=["2d", "3d", "2d+3d"], help="default 2d")
    args = parser.parse_args(argv)

    import torch

    from moleblend_plugin.embeddings import MoleculeEmbedder, load_model
    from moleblend_plugin.models.moleblend import MoleBlendEncoder, MoleBlendModel

    table = pd.read_csv(args.input)
    smiles, y = table["smiles"].tolist(), table[SOLUBILITY].to_numpy()
    model, featurization = load_model(args.checkpoint)
    torch.manual_seed(0)
    untrained = MoleBlendModel(model.cfg, MoleBlendEncoder(model.cfg, 0, pretraining=True)).eval()
    results = {}
    for name, encoder in (("untrained", untrained), ("pretrained", model)):
        embedded = MoleculeEmbedder(encoder, featurization, args.input_modality).embed(smiles)
        used = np.array([not e for e in embedded.errors])
        x = embedded.graph_token[used]
        results[name] = (pca(x), y[used], probe_r2(x, y[used]), int(used.sum()))
        folds = results[name][2]
        print(f"{name}: {used.sum()} of {len(smiles)} molecules embedded; ridge probe of solubility, R² of the "
              f"5 folds {' '.join(f'{v:.3f}' for v in folds)}, median {np.median(folds):.3f}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    for ax, (name, (points, values, folds, count)) in zip(axes, results.items()):
        shown = ax.scatter(points[:, 0], points[:, 1], c=values, cmap="viridis", s=10)
        ax.set_title(f"{name} encoder\nridge probe R² median {np.median(folds):.2f} (5 folds, n={count})", fontsize=10)
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
    fig.colorbar(shown, ax=axes, label="measured log solubility (mol/L)")
    fig.savefig(args.output, dpi=120, bbox_inches="tight")
    print(f"-> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
