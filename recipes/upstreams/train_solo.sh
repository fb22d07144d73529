#!/usr/bin/env bash
# Issue 10 experiment: does more solo training send an instrument played alone to its own stem?
# The bundled hdemucs16-v2, trained on with one crop in three holding a single audible stem
# (--solo 0.3; train_v2.sh used 0.1 for its last ~140 CPU minutes), at its own learning rate.
#
#   bash recipes/upstreams/train_solo.sh      # start, or continue after any stop (same command)
#
# Runs in the background (one thread, nice 10), stops by itself after MINUTES CPU minutes
# summed over restarts, checkpoints every 4 minutes; log in $OUT/logs/hdemucs16.log, the run
# in $OUT/hdemucs16.run/ (log.jsonl has valid L1/SDR every 15 CPU minutes). The bundled file
# is untouched: the result is $OUT/hdemucs16-solo.safetensors, to be judged on corpus-v2 valid
# SDR beside hdemucs16-v2 (6.09 / 6.45 / 4.01 / 3.15 dB at its end) and by
# bench/real_recordings.py --upstream demucs-file:$OUT/hdemucs16-solo.safetensors.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-/work/data}
OUT=${OUT:-$DATA/upstreams_v2solo}
MINUTES=${MINUTES:-110}
mkdir -p "$OUT/logs"
nohup nice -n 10 "$PY" recipes/upstreams/train_upstream.py demucs --init "$DATA/upstreams_v2/hdemucs16-v2.safetensors" \
    --batch 2 --lr 3e-4 --min-seconds 3 --max-seconds 6 --corpus "$DATA/corpus_v2" \
    --songs "$DATA/upstreams_v2/upstream_songs.txt" --valid-every 15 --valid-crops 12 --threads 1 --bf16 \
    --solo 0.3 --minutes "$MINUTES" --run "$OUT/hdemucs16.run" --out "$OUT/hdemucs16-solo.safetensors" \
    >> "$OUT/logs/hdemucs16.log" 2>&1 &
echo "hdemucs16-solo: pid $!, log $OUT/logs/hdemucs16.log"
