#!/usr/bin/env bash
# The mdxmix-v1 generation (the first default and its three upstreams) from git history.
#
#   bash recipes/default/v1_weights.sh [OUT]      # default: $DATA/weights_v1 (/work/data/weights_v1)
#   mdxmix song.wav -c OUT/mdxmix-v1.safetensors  # the v1 default, by file
#
# Kept for the recipes that call it (train_v2.sh, lofo.sh); recipes/default/old_weights.py does
# the work for every earlier generation (v1, v2, v2-spleeter), each file checked against its pin.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec "${PY:-.venv/bin/python}" recipes/default/old_weights.py v1 --out "${1:-${DATA:-/work/data}/weights_v1}"
