#!/usr/bin/env bash
# The mdxmix-v1 generation (the first default and its three upstreams) from git history.
#
#   bash recipes/default/v1_weights.sh [OUT]      # default: $DATA/weights_v1 (/work/data/weights_v1)
#   mdxmix song.wav -c OUT/mdxmix-v1.safetensors  # the v1 default, by file
#
# Why: these four files left weights/ when Spleeter joined the default, to keep weights/ under
# its 80 MB budget; git keeps them. train_v2.sh (--init) and the agnostic pool of lofo.sh start
# from them and call this script when OUT lacks them. Each file is checked against its pin:
# mdxmix-v1's sha256 in that commit's registry, the upstreams' in mdxmix-v1's own metadata.
set -euo pipefail
{
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
OUT=${1:-${DATA:-/work/data}/weights_v1}
REV=7089c07  # the last commit with the v1 files in weights/
mkdir -p "$OUT"
for name in mdxmix-v1 hdemucs16 spectral4 spectral_vocals; do
  [[ -f $OUT/$name.safetensors ]] && continue
  git show "$REV:weights/$name.safetensors" > "$OUT/$name.safetensors.part"
  mv "$OUT/$name.safetensors.part" "$OUT/$name.safetensors"
done
$PY - "$OUT" "$(git show "$REV:weights/registry.json")" <<'PY'
import json, sys
from pathlib import Path
from mdxmix.checkpoint import read_meta
from mdxmix.weightfiles import verify_sha256
out, registry = Path(sys.argv[1]), json.loads(sys.argv[2])
verify_sha256(out / "mdxmix-v1.safetensors", registry["checkpoints"]["mdxmix-v1"]["sha256"])
for spec in read_meta(out / "mdxmix-v1.safetensors").upstreams:
    verify_sha256(out / spec.model, spec.sha256)
print(f"v1_weights: {out} holds mdxmix-v1 and its three upstreams, each matching its pin")
PY
exit
}
