#!/usr/bin/env bash
# A musician's set-up: a virtual environment in .venv holding mdxmix and a PyTorch build
# that fits this machine. Needs only Python >= 3.10 and pip's network access: no system
# packages, no sudo. Linux, macOS and WSL. Afterwards: .venv/bin/mdxmix song.wav
#
#   TORCH_SPEC='torch==2.13.0'  the PyTorch requirement to install (default: the tested version)
#   PYTHON=python3.12           the interpreter that creates .venv
#
# On Linux without an NVIDIA GPU the CPU build is installed (from PyTorch's CPU index when
# it can be reached, else from the configured indexes); macOS and CUDA machines take
# PyTorch's default build. The developer and corpus set-up (tests, evaluation, the
# soundfonts the corpus recipe renders with) is .ci/setup, which runs this first.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
CPU_INDEX=https://download.pytorch.org/whl/cpu
# pip's own failure still stops the script (pipefail); only its noise about local indexes is hidden.
quiet() { "$@" 2>&1 | { grep -v "^WARNING: Location" || true; }; }

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || { echo "mdxmix needs Python >= 3.10 ($PYTHON is $("$PYTHON" -V 2>&1)); set PYTHON=..." >&2; exit 1; }
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  extra=()
  if [ "$(uname -s)" = Linux ] && ! command -v nvidia-smi >/dev/null 2>&1 \
     && .venv/bin/python -c "import urllib.request as u; u.urlopen('$CPU_INDEX/', timeout=5)" 2>/dev/null; then
    extra=(--extra-index-url "$CPU_INDEX")  # no NVIDIA GPU: skip gigabytes of CUDA libraries
  fi
  quiet .venv/bin/python -m pip install -q ${extra[@]+"${extra[@]}"} "$TORCH_SPEC"
fi
# Editable, so that the bundled models in weights/ are found beside the package.
quiet .venv/bin/python -m pip install -q -e .
.venv/bin/python -c "import torch, mdxmix.pipeline" # fail here, not at the first song, if an install went wrong
