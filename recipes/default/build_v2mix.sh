#!/usr/bin/env bash
# Mixers over the corpus-v2 upstreams trained on both corpus styles (issue 10), step by step.
#
#   bash recipes/default/build_v2mix.sh                  # all steps; each can be stopped and rerun
#   STEPS="mixers eval" bash recipes/default/build_v2mix.sh
#
# Why: the corpus-v2 default learnt mixing weights that suit corpus v2's produced renders
# (it builds `other` partly from spectral4's vocals minus the vocals net's) and lost to the
# v1 default on the frozen v1 test split (2.30 against 2.63 dB). Its upstreams never heard a
# v1 song, so v1-style songs are fair mixer-training material: the mixers here train on
# corpus-v2 mixer-train songs and freshly rendered v1 songs together, and are chosen on
# valid songs of both styles.
#
# corpus  render V1_TRAIN_H / V1_VALID_H hours of corpus v1 (seed 0: the same songs as the
#         first songs of the v1 corpus, whose test split stays frozen) into DATA/corpus_v1mix
#         and convert them to 16-bit stem sets
# root    DATA/mixer_v2mix: the first V2_SONGS of build_v2's mixer-train songs (odd numbers,
#         never heard by the upstreams) and every v1 train song; valid: build_v2's 8
#         mixer-valid songs and every v1 valid song (names prefixed "v1 ")
# mixers  1x1 conv and the tiny MDX-Mixer, the hyper-parameters of build_v2.sh
# eval    museval on the valid songs of both styles (the new mixers beside the bundled default
#         and 1x1 conv: the choice), then on the frozen v1 test split and the v2 test split, the
#         two new mixers only (the upstreams and ensembles are build_v2's eval tables, same
#         songs and files)
set -euo pipefail
# The whole script is one { } block: bash reads it completely before running it, so editing
# this file while a long run is in a step cannot change what that run does next.
{
cd "$(dirname "$0")/../.."
source recipes/default/v2_common.sh
PY=${PY:-.venv/bin/python}
MDX=${MDX:-.venv/bin/mdxmix}
DATA=${DATA:-/work/data}
STEPS=${STEPS:-"corpus root mixers eval"}
V1=$DATA/corpus_v1mix
MIX=$DATA/mixer_v2              # build_v2's mixer root
ROOT=$DATA/mixer_v2mix
CACHE=$DATA/cache_v2            # shared with build_v2: its mixer-train and test stems are reused
RUNS=$DATA/runs_v2mix
UP=$DATA/upstreams_v2
F16=$UP/f16
mapfile -t UPSTREAMS < <(v2_upstream_flags "$F16")
# 24 v2 songs, not build_v2's 64: the stems of 64 songs (17.4 GB) and the v1 songs' (5 GB)
# did not fit the disk together on the machine this was first run on
V2_SONGS=${V2_SONGS:-24} V1_TRAIN_H=${V1_TRAIN_H:-0.75} V1_VALID_H=${V1_VALID_H:-0.15}
export MDXMIX_CACHE_MAX_GB=${MDXMIX_CACHE_MAX_GB:-40}
mkdir -p "$DATA/logs" "$RUNS"

if has corpus; then
  if [[ ! -f $V1/corpus.json ]]; then  # the v1 renderer does not resume: a finished render writes corpus.json
    $PY recipes/corpus/render.py --root "$V1" --hours-train "$V1_TRAIN_H" --hours-valid "$V1_VALID_H" \
        --hours-test 0 --seed 0 --jobs 2
  fi
  $PY recipes/corpus/to_pcm16.py "$V1"
fi

if has root; then
  for split in train valid; do
    mkdir -p "$ROOT/$split"
    find "$ROOT/$split" -maxdepth 1 -type l -delete
  done
  ls "$MIX/train" | head -n "$V2_SONGS" | while read -r song; do ln -s "$(readlink -f "$MIX/train/$song")" "$ROOT/train/$song"; done
  ls "$MIX/valid" | while read -r song; do ln -s "$(readlink -f "$MIX/valid/$song")" "$ROOT/valid/$song"; done
  link_v1_songs "$V1" "$ROOT"
  echo "build_v2mix: $(ls "$ROOT/train" | wc -l) train and $(ls "$ROOT/valid" | wc -l) valid songs in $ROOT"
fi

if has mixers; then
  $MDX train --data "$ROOT" "${UPSTREAMS[@]}" --upstream-trained-on "$UP/upstream_train_songs.txt" \
      --cache-dir "$CACHE" "${CONV1X1_TRAIN[@]}" --jobs 2 --out "$RUNS/conv1x1" $(resume "$RUNS/conv1x1")
  $MDX train --data "$ROOT" "${UPSTREAMS[@]}" --upstream-trained-on "$UP/upstream_train_songs.txt" \
      --cache-dir "$CACHE" "${MDX_MIXER_TRAIN[@]}" --preset tiny --epochs 20 --steps-per-epoch 300 \
      --out "$RUNS/mdxmixer_tiny" $(resume "$RUNS/mdxmixer_tiny")
  $PY recipes/default/plot_mixer_curves.py "$RUNS"/* --out recipes/default/mixer_curves_v2mix.png
fi

if has eval; then
  # named links: a table row is named after its checkpoint file
  ln -sfn "$RUNS/mdxmixer_tiny/best.safetensors" "$RUNS/v2mix-tiny.safetensors"
  ln -sfn "$RUNS/conv1x1/best.safetensors" "$RUNS/v2mix-conv1x1.safetensors"
  # valid first (both styles): the new mixers beside the bundled ones, to choose on valid
  $MDX eval --data "$ROOT" --split valid --cache-dir "$CACHE" --jobs 2 --metric museval --no-baselines \
      --checkpoint default --checkpoint mdxmix-conv1x1 --checkpoint "$RUNS/v2mix-tiny.safetensors" \
      --checkpoint "$RUNS/v2mix-conv1x1.safetensors" --out "$DATA/results_v2mix/valid"
  link_v1_eval_root "$DATA/eval_v1" "$DATA" "$MIX/valid"
  for split in v1:$DATA/eval_v1 v2:$MIX; do
    name=${split%%:*} root=${split#*:}
    $MDX eval --data "$root" --split test --cache-dir "$CACHE" --jobs 2 --metric museval --no-baselines \
        --checkpoint "$RUNS/v2mix-tiny.safetensors" --checkpoint "$RUNS/v2mix-conv1x1.safetensors" \
        --out "$DATA/results_v2mix/$name-test"
  done
fi
exit
}
