#!/usr/bin/env bash
# Create (once) the Python environment the plugin runs in and print its path.
#
#   usage: source <(bash scripts/setup_env.sh --print-activate)   or   bash scripts/setup_env.sh
#
# The environment lives in $MOLEBLEND_VENV (default: .venv in the repository). It is
# rebuilt only when requirements change. MOLEBLEND_CONSTRAINTS names a pip constraints
# file (e.g. scripts/constraints-oldest.txt, the oldest versions tested); by default pip
# takes the newest versions setup.py allows. torch is pinned first so nothing pulls a CUDA
# build; fairseq comes from `fairseq-fixed` (PyPI fairseq 0.12.2 does not build on
# Python 3.11), installed without its dependencies because its torchaudio pin would
# replace torch.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${MOLEBLEND_VENV:-$repo/.venv}
constraints=${MOLEBLEND_CONSTRAINTS:-}
if [[ -n $constraints && $constraints != /* ]]; then constraints="$PWD/$constraints"; fi
stamp_src=$(cat "$repo/requirements.txt" "$repo/setup.py" "$repo/scripts/setup_env.sh" ${constraints:+"$constraints"} \
  | sha256sum | cut -c1-16)
python=${PYTHON:-python3}

if [[ -f $venv/.moleblend-ready && $(cat "$venv/.moleblend-ready") == "$stamp_src" ]]; then
  [[ ${1:-} == --print-activate ]] && echo "source $venv/bin/activate"
  exit 0
fi

echo "setting up the Python environment in $venv (a few minutes, once)" >&2
"$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip install -q)
"${pip[@]}" --upgrade pip setuptools wheel >&2
"${pip[@]}" "torch==${MOLEBLEND_TORCH_VERSION:-2.13.0}" >&2
"${pip[@]}" ${constraints:+-c "$constraints"} -e "$repo[test,tensorboard]" >&2
"${pip[@]}" --no-deps --no-build-isolation fairseq-fixed==0.12.3.1 >&2
# fairseq's Cython extension is compiled against the numpy present when its wheel was
# built; a wheel cached from another numpy fails to import (fairseq then says "Please
# build Cython components"). Rebuild it against this numpy when that happens.
if ! "$venv/bin/python" -c "import fairseq.data.data_utils_fast" 2>/dev/null; then
  echo "rebuilding fairseq's extension against this environment's numpy" >&2
  "${pip[@]}" --no-deps --no-build-isolation --no-cache-dir --force-reinstall fairseq-fixed==0.12.3.1 >&2
  "$venv/bin/python" -c "import fairseq.data.data_utils_fast"
fi
"$venv/bin/python" -c "import numpy, rdkit, torch; print('environment: numpy', numpy.__version__, '| rdkit', rdkit.__version__, '| torch', torch.__version__)" >&2
echo "$stamp_src" > "$venv/.moleblend-ready"
[[ ${1:-} == --print-activate ]] && echo "source $venv/bin/activate"
exit 0
