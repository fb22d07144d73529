#!/usr/bin/env bash
# The corpus-v1 default (`mdxmix-v1`, since replaced: build_v2.sh, then build_spleeter.sh).
# Rebuild it from nothing, on this kind of machine (2 CPU cores):
#   corpus → upstream separators → upstream stem cache → 1×1-conv and MDX-Mixer → SDR table
#   → weights/ (registered) → the W_k plot of the demo song.
#
#   bash recipes/default/build.sh            # everything (≈ 3 h on 2 idle cores, see README.md here)
#   STEPS="mixers eval bundle" bash recipes/default/build.sh   # only some steps
#
# Upstream training is budgeted in minutes of wall time, so a rebuild on another machine
# gives models of the same kind, not byte-identical ones.
set -euo pipefail
# The whole script is one { } block: bash reads it completely before running it, so editing
# this file while a long run is in a step cannot change what that run does next.
{
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
MDX=${MDX:-.venv/bin/mdxmix}
DATA=${DATA:-data/default-build}          # ignored by git
STEPS=${STEPS:-"corpus upstreams subset mixers eval bundle inspect"}
CACHE=$DATA/cache
UP=$DATA/upstreams
MIX=$DATA/mix16
UPSTREAMS=(--upstream "demucs-file:$UP/hdemucs16.safetensors"
           --upstream "spectral-file:$UP/spectral4.safetensors"
           --upstream "spectral-file:$UP/spectral_vocals.safetensors:vocals")
has() { [[ " $STEPS " == *" $1 "* ]]; }
mkdir -p "$DATA"

if has corpus; then
  $PY recipes/corpus/render.py --root "$DATA/corpus" --hours-train 3 --hours-valid 0.5 --hours-test 0.5 --seed 0 --jobs 2
fi

if has upstreams; then
  mkdir -p "$UP/fp32"
  $PY recipes/upstreams/split_corpus.py --corpus "$DATA/corpus" --mixer-root "$DATA/mixer_root" --list "$UP/upstream_train_songs.txt"
  $PY recipes/upstreams/train_upstream.py demucs --corpus "$DATA/corpus" --songs "$UP/upstream_train_songs.txt" \
      --out "$UP/hdemucs16.f32.safetensors" --minutes 28 --batch 2 --lr 5e-4 --min-seconds 3 --max-seconds 6
  $PY recipes/upstreams/train_upstream.py spectral --corpus "$DATA/corpus" --songs "$UP/upstream_train_songs.txt" \
      --out "$UP/spectral4.f32.safetensors" --minutes 18 --batch 4 --lr 1e-3
  $PY recipes/upstreams/train_upstream.py spectral --corpus "$DATA/corpus" --songs "$UP/upstream_train_songs.txt" \
      --stems vocals --n-fft 4096 --hop 1024 --out "$UP/spectral_vocals.f32.safetensors" --minutes 14 --batch 4 --lr 1e-3
  $PY recipes/upstreams/evaluate_upstreams.py "$UP"/*.f32.safetensors --corpus "$DATA/corpus" --split valid --songs 2 --half-out "$UP"
  mv "$UP"/*.f32.safetensors "$UP/fp32/"
fi

if has subset; then
  # The mixer trains on 16 of the 31 mixer-train songs and validates on 4 valid songs, so
  # that the upstream stems of train, valid and test fit in about 20 minutes of CPU.
  rm -rf "$MIX" && mkdir -p "$MIX/train" "$MIX/valid" "$MIX/test"
  link() { find "$DATA/mixer_root/$1" -mindepth 1 -maxdepth 1 | sort | head -n "$2" | while IFS= read -r s; do
             ln -s "$(readlink -f "$s")" "$MIX/$1/$(basename "$s")"; done; }
  link train 16; link valid 4; link test 1000
fi

if has mixers; then
  $MDX train --data "$MIX" "${UPSTREAMS[@]}" --upstream-trained-on "$UP/upstream_train_songs.txt" --cache-dir "$CACHE" \
      --kind conv1x1 --segment 32768 --epochs 10 --steps-per-epoch 150 --lr 3e-3 --out "$DATA/runs/conv1x1"
  $MDX train --data "$MIX" "${UPSTREAMS[@]}" --upstream-trained-on "$UP/upstream_train_songs.txt" --cache-dir "$CACHE" \
      --kind mdx_mixer --preset tiny --epochs 8 --steps-per-epoch 150 --lr 1e-3 --half --out "$DATA/runs/mdxmixer"
fi

if has eval; then
  $MDX eval --data "$MIX" --split test --cache-dir "$CACHE" --jobs 2 \
      --checkpoint "$DATA/runs/conv1x1/best.safetensors" --checkpoint "$DATA/runs/mdxmixer/best.safetensors" \
      --out "$DATA/results" --plot "$DATA/results/sdr.png"
fi

if has bundle; then
  if [[ -f weights/spleeter-2stems.safetensors ]]; then  # it would replace the four-upstream default
    echo "build.sh: weights/ holds a later default (build_spleeter.sh); compare with bundle.py --weights DIR instead" >&2
    exit 1
  fi
  $PY recipes/default/bundle.py --runs "$DATA/runs" --upstreams "$UP" --weights weights
fi

if has inspect; then
  $MDX inspect examples/demo.wav --plot recipes/default/demo_weights.png --csv "$DATA/demo_weights.csv"
fi
exit
}
