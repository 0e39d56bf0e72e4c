#!/usr/bin/env bash
# The ablation study's pretraining corpus: the first 50,000 SMILES of MOSES' train.csv.gz
# with one RDKit conformer each, the same shards every build (examples/ablations/corpus.py
# holds the recipe; docs/data.md the build time and counts).
#
#   usage: bash examples/ablations/build_corpus.sh DEST [DATA] [--workers N] [--rows N] [--dry-run]
#   DATA: folder holding moses/train.csv.gz (default $MOLEBLEND_DATA or ~/.cache/moleblend/datasets)
set -euo pipefail
exec python "$(dirname "$0")/corpus.py" "$@"
