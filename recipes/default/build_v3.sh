#!/usr/bin/env bash
# Issue 10: does the default gain from the continued upstreams (recipes/upstreams/train_v3.sh)?
# A controlled A/B like build_spleeter.sh's: the bundled default (B there, its own recipe) against
# C, the same tiny MDX-Mixer recipe on the same 64 mixer-train songs over the same four upstreams
# with hdemucs16-v3 and spectral4-v3 in place of their v2 files (spectral_vocals-v2 and Spleeter's
# vocals unchanged). One change: the two upstream files.
#
#   bash recipes/default/build_v3.sh               # every step but bundle; rerun to resume
#   STEPS="eval real" bash recipes/default/build_v3.sh
#   STEPS=bundle bash recipes/default/build_v3.sh  # only after the decision rule below holds
#
# Needs: train_v3.sh finished (V3/hdemucs16-v3.safetensors, V3/spectral4-v3.safetensors: the
# lowest valid L1 of each run), build_spleeter.sh's mixer songs (MIX, default
# /work/data/mixer_spleeter64) and corpus v1's frozen test split (DATA/corpus/test).
#
# half     float16 copies of the two v3 files in V3/f16 (the form that is bundled; a checkpoint
#          pins its upstreams by sha256, so the mixer trains on these), scored beside the float32
#          files and the bundled v2 files on 4 whole corpus-v2 valid songs (global SDR)
# upreal   bench/real_recordings.py on the valid clips: each v2 and v3 upstream alone
# mixers   the stem cache of the new files (two songs at a time), then C: `tiny`, 20 x 300 x 4
#          segments, lr 1e-3, --amp --half, one thread (build_spleeter.sh's B, the bundled default)
# conv     the 1x1-conv baseline over C's four upstreams (build_v2.sh's settings)
# eval     museval on the 8 mixer-valid songs (to decide on) and the frozen v1 test split (to
#          report): C, the 1x1 conv and the bundled default
# real     bench/real_recordings.py on the valid and test clips with C
# bundle   (asked for alone) C becomes mdxmix-default and its conv mdxmix-conv1x1, the two v3
#          files go into weights/, and files no registered checkpoint uses leave weights/ (the
#          80-MB budget has no room for two generations of the two files): the current default
#          and mdxmix-v2 are then in git history only
#
# Decision rule, written before any score of C exists (the same as for Spleeter): C replaces the
# default if it gains >= 0.2 dB museval SDR on the 8 mixer-valid songs and puts no more than 3
# points fewer of the valid real clips in the right stem than the default (72 %).
#
# Disk: the new files' stems of 72 songs take ~17 GB of cache; MDXMIX_CACHE_MAX_GB (28 here)
# evicts the least recently used entries (other upstreams' stems) to stay under it.
set -euo pipefail
# One { } block: bash reads it whole before running, so an edit cannot change a running build.
{
cd "$(dirname "$0")/../.."
source recipes/default/v2_common.sh
PY=${PY:-.venv/bin/python}
MDX=${MDX:-.venv/bin/mdxmix}
DATA=${DATA:-/work/data}
STEPS=${STEPS:-"half upreal mixers conv eval real"}
V3=${V3:-$DATA/upstreams_v3}
EPOCHS=${EPOCHS:-20} STEPS_PER_EPOCH=${STEPS_PER_EPOCH:-300}  # the default's recipe; smaller only for a smoke test
MIX=${MIX:-$DATA/mixer_spleeter64} RUNS=${RUNS:-$DATA/runs_v3} RESULTS=${RESULTS:-$DATA/results_v3}
CACHE=${CACHE:-$DATA/cache}
export MDXMIX_CACHE_MAX_GB=${MDXMIX_CACHE_MAX_GB:-28}
F16=$V3/f16
V2=${V2:-$DATA/weights_v2}  # the v2 files, for the comparisons (restored from git history if missing)
mapfile -t UPSTREAMS < <(v3_upstream_flags "$F16")
TRAINED_ON=$V3/upstream_songs.txt  # the even-numbered train songs both v3 runs trained on
mkdir -p "$DATA/logs" "$RUNS" "$RESULTS"
for name in hdemucs16 spectral4; do
  [[ -f $V3/$name-v3.safetensors ]] || { echo "build_v3.sh: no $V3/$name-v3.safetensors (run recipes/upstreams/train_v3.sh to its end)" >&2; exit 1; }
done
[[ -d $MIX/train ]] || { echo "build_v3.sh: no mixer songs at $MIX (recipes/default/build_spleeter.sh, steps corpus and split)" >&2; exit 1; }

if has half || has upreal; then v2_weights "$V2"; fi
if has half; then
  $PY recipes/upstreams/evaluate_upstreams.py "$V3/hdemucs16-v3.safetensors" "$V3/spectral4-v3.safetensors" \
      --half-out "$F16" --corpus "$DATA/corpus_v2" --split valid --songs 4 | tee "$RESULTS/upstreams_valid.jsonl"
  $PY recipes/upstreams/evaluate_upstreams.py "$V2/hdemucs16-v2.safetensors" "$V2/spectral4-v2.safetensors" \
      --corpus "$DATA/corpus_v2" --split valid --songs 4 | tee -a "$RESULTS/upstreams_valid.jsonl"
fi

if has upreal; then
  for file in "$V2/hdemucs16-v2.safetensors" "$F16/hdemucs16-v3.safetensors"; do
    $PY bench/real_recordings.py --set valid --upstream "demucs-file:$file" | tee "$RESULTS/real-valid-$(basename "$file" .safetensors).md"
  done
  for file in "$V2/spectral4-v2.safetensors" "$F16/spectral4-v3.safetensors"; do
    $PY bench/real_recordings.py --set valid --upstream "spectral-file:$file" | tee "$RESULTS/real-valid-$(basename "$file" .safetensors).md"
  done
fi

if has mixers; then
  # --verbose: an internal error leaves its traceback in the log
  $MDX train --data "$MIX" "${UPSTREAMS[@]}" --cache-dir "$CACHE" --kind conv1x1 --epochs 1 --steps-per-epoch 1 -j 2 \
      --verbose --out "$RUNS/fill" > "$DATA/logs/v3_fill.log" 2>&1
  OMP_NUM_THREADS=1 $MDX train --data "$MIX" "${UPSTREAMS[@]}" --upstream-trained-on "$TRAINED_ON" \
      --cache-dir "$CACHE" "${MDX_MIXER_TRAIN[@]}" --preset tiny --epochs "$EPOCHS" --steps-per-epoch "$STEPS_PER_EPOCH" \
      --out "$RUNS/C" $(resume "$RUNS/C") > "$DATA/logs/v3_C.log" 2>&1
fi

if has conv; then
  $MDX train --data "$MIX" "${UPSTREAMS[@]}" --upstream-trained-on "$TRAINED_ON" \
      --cache-dir "$CACHE" "${CONV1X1_TRAIN[@]}" --out "$RUNS/conv1x1" $(resume "$RUNS/conv1x1") \
      > "$DATA/logs/v3_conv1x1.log" 2>&1
fi

if has eval; then
  CANDIDATES=(--checkpoint "$RUNS/C/best.safetensors" --checkpoint "$RUNS/conv1x1/best.safetensors" --checkpoint default)
  score "$CACHE" "$MIX" valid "$RESULTS/v2-valid" "${CANDIDATES[@]}"
  score "$CACHE" "$DATA/corpus" test "$RESULTS/v1-test" "${CANDIDATES[@]}"
fi

if has real; then real_clips "$RUNS/C" C "$RESULTS"; fi
if has bundle; then bundle_pair "$RUNS" C "corpus v2, Spleeter on Deezer's own data" "$F16" weights; fi
exit
}
