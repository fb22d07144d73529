#!/usr/bin/env bash
# The corpus-v2 default (issue 10), step by step; every step can be stopped and rerun.
#
#   bash recipes/default/build_v2.sh                       # all steps
#   STEPS="mixers eval" bash recipes/default/build_v2.sh   # some steps
#
# corpus    render corpus v2 (10 h train, 1 h valid, 1 h test), resumes after the last song
# upstreams train the three upstreams (recipes/upstreams/train_v2.sh; runs to MINUTES of
#           CPU each and resumes from the last checkpoint), then score them on 4 valid songs
#           and write float16 copies
# split     mixer-train = the first MIXER_SONGS (64, 3.05 h) odd-numbered v2 train songs (the
#           upstreams trained on the even ones), mixer-valid = the first VALID_SONGS (8) valid songs
# mixers    1x1 conv and MDX-Mixer on all mixer-train songs, the MDX-Mixer in two sizes: tiny
#           and small (small: 11-19 s for 60 s of audio on this CPU, so a 3-minute song stays
#           near 0.5x real time with the upstreams; paper: 141 s for 60 s, too slow); the bundle
#           step takes the size with the lower valid L1. --resume continues a stopped run
#           from its last finished epoch
# eval      museval on the frozen v1 test split (11 songs) and on the v2 test split: the chosen
#           MDX-Mixer, the 1x1 conv, the upstreams and every fixed ensemble
#
# bundle    (only when asked for: STEPS=bundle) copy the 1x1 conv, the MDX-Mixer size with the
#           lower valid L1, and their float16 upstreams into weights/, pin them in
#           weights/registry.json, keep the v1 default as mdxmix-v1 and remove the v1 conv
# consistency (after bundle, when asked for) the bundled default on the mixer-valid songs under
#           each mixture-consistency mode, to choose the default mode on valid again
#
# Data stays outside the repo (DATA, default /work/data). Bundling into weights/ is a
# deliberate step, run once the numbers are final (each weights file is committed once).
set -euo pipefail
# The whole script is one { } block: bash reads it completely before running it, so editing
# this file while a long run is in a step cannot change what that run does next.
{
cd "$(dirname "$0")/../.."
source recipes/default/v2_common.sh
PY=${PY:-.venv/bin/python}
MDX=${MDX:-.venv/bin/mdxmix}
DATA=${DATA:-/work/data}
STEPS=${STEPS:-"corpus upstreams split mixers eval"}
CORPUS=$DATA/corpus_v2
UP=$DATA/upstreams_v2
MIX=$DATA/mixer_v2
CACHE=$DATA/cache_v2
RUNS=$DATA/runs_v2
# The mixers train on the float16 copies, the files that get bundled (a checkpoint pins
# its upstreams by sha256); the upstreams step measures that float16 changes < 0.01 dB.
F16=$UP/f16
mapfile -t UPSTREAMS < <(v2_upstream_flags "$F16")
MIXER_SONGS=${MIXER_SONGS:-64} VALID_SONGS=${VALID_SONGS:-8}
# The three upstreams' stems are 5.7 GB of float16 per hour of audio (18 channels). One cache
# holds them for mixer-train (3.05 h: 17.4 GB), mixer-valid (0.37 h: 2.1 GB), v2 test (5.8 GB),
# v1 test (0.55 h: 3.1 GB; its per-source best is chosen on mixer-valid): ~28.4 GB, which must
# not evict itself. All 102 mixer-train songs (4.9 h) would need ~39 GB, more than is free.
export MDXMIX_CACHE_MAX_GB=${MDXMIX_CACHE_MAX_GB:-40}
mkdir -p "$DATA/logs"

if has corpus; then
  $PY recipes/corpus/render.py --version 2 --root "$CORPUS" --hours-train 10 --hours-valid 1 \
      --hours-test 1 --seed 0 --jobs 2
fi

if has upstreams; then
  CORPUS=$CORPUS OUT=$UP bash recipes/upstreams/train_v2.sh
  $PY recipes/upstreams/evaluate_upstreams.py "$UP"/*-v2.safetensors --corpus "$CORPUS" --split valid \
      --songs 4 --half-out "$F16" | tee "$UP/evaluate_valid4.jsonl"
  $PY recipes/upstreams/plot_curves.py "$UP"/*.run --out recipes/default/upstream_curves_v2.png
fi

if has split; then
  $PY recipes/upstreams/split_corpus.py --corpus "$CORPUS" --mixer-root "$MIX" \
      --list "$UP/upstream_train_songs.txt" --mixer-songs "$MIXER_SONGS" --valid-songs "$VALID_SONGS"
fi

if has mixers; then
  need_gb=${NEED_GB:-30} free_gb=$(df -BG --output=avail "$DATA" | tail -1 | tr -dc 0-9)
  if [[ ! -d $CACHE ]] && (( free_gb < need_gb )); then
    echo "build_v2: the stem cache needs ~${need_gb} GB in $DATA, only ${free_gb} GB free" \
         "(the v1 cache, $DATA/cache_v1, can go: it only serves the v1 default)" >&2; exit 1
  fi
  $MDX train --data "$MIX" "${UPSTREAMS[@]}" --upstream-trained-on "$UP/upstream_train_songs.txt" \
      --cache-dir "$CACHE" "${CONV1X1_TRAIN[@]}" --out "$RUNS/conv1x1" $(resume "$RUNS/conv1x1")
  # The same 6000 steps of 4 segments each; small validates every 600 steps, because scoring
  # the 8 valid songs costs it ~2 min (fp32, hop T) against tiny's ~0.5 min. The conv run
  # above filled the cache, so the two sizes train side by side, one thread each: two
  # one-thread jobs use two cores better than one two-thread job of small matrices.
  pids=()
  for size in "tiny 20 300" "small 10 600"; do
    read -r preset epochs steps <<< "$size"
    OMP_NUM_THREADS=1 $MDX train --data "$MIX" "${UPSTREAMS[@]}" --upstream-trained-on "$UP/upstream_train_songs.txt" \
        --cache-dir "$CACHE" "${MDX_MIXER_TRAIN[@]}" --preset "$preset" --epochs "$epochs" --steps-per-epoch "$steps" \
        --out "$RUNS/mdxmixer_$preset" $(resume "$RUNS/mdxmixer_$preset") \
        > "$DATA/logs/mdxmixer_$preset.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done  # set -e: a failed run stops the script here
  $PY recipes/default/plot_mixer_curves.py "$RUNS"/* --out recipes/default/mixer_curves_v2.png
fi

if has eval; then
  # Only the MDX-Mixer size that bundle.py will take (lower valid L1) is scored on test: the
  # small preset runs at ~1.8x real time on one core, so each extra checkpoint costs ~50 CPU
  # minutes over both test splits.
  chosen=$($PY -c 'import sys; sys.path.insert(0, "recipes/default"); from pathlib import Path; from bundle import best_run
print(best_run(Path(sys.argv[1]), "mdxmixer*"))' "$RUNS")
  # The per-source-best row picks each stem's upstream on valid songs: for both tables the
  # mixer-valid songs of corpus v2 (already cached), so v1's own valid split is not needed.
  link_v1_eval_root "$DATA/eval_v1" "$DATA" "$MIX/valid"
  for split in v1:$DATA/eval_v1 v2:$MIX; do  # v2 through the mixer root: its valid songs are cached already
    name=${split%%:*} root=${split#*:}
    $MDX eval --data "$root" --split test --cache-dir "$CACHE" --jobs 2 --metric museval \
        --checkpoint "$chosen" --checkpoint "$RUNS/conv1x1/best.safetensors" \
        --out "$DATA/results_v2/$name-test" --plot "$DATA/results_v2/$name-test/sdr.png"
  done
fi

if has bundle; then
  if [[ -f weights/spleeter-2stems.safetensors ]]; then  # it would rename the four-upstream default mdxmix-v1
    echo "build_v2: the default is build_spleeter.sh's now (four upstreams); its bundle step replaced this one" >&2
    exit 1
  fi
  # The v1 default stays registered as mdxmix-v1: its upstreams are train_v2.sh's --init and
  # part of the agnostic mixer's pool, and its README numbers stay reproducible by name.
  $PY recipes/default/bundle.py --runs "$RUNS" --upstreams "$F16" --weights weights --trained-on "corpus v2" --prune \
      --keep-previous mdxmix-v1
  $MDX inspect examples/demo.wav --no-cache --plot recipes/default/demo_weights.png --csv "$DATA/demo_weights_v2.csv"
fi

if has consistency; then
  $MDX eval --data "$MIX" --split valid --cache-dir "$CACHE" --jobs 2 --metric museval --checkpoint default \
      --consistency none --consistency even --consistency energy --consistency spectral --no-baselines \
      --out "$DATA/results_v2/consistency-valid"
fi
exit
}
