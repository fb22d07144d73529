#!/usr/bin/env bash
# Issue 10 experiment: does more solo training send an instrument played alone to its own stem?
# A bundled corpus-v2 upstream trained on with one crop in three holding a single audible stem
# (--solo 0.3; train_v2.sh used 0.1 for its last ~140 CPU minutes), at its own learning rate.
#
#   bash recipes/upstreams/train_solo.sh                   # hdemucs16; start or continue (same command)
#   MODEL=spectral4 bash recipes/upstreams/train_solo.sh   # the spectrogram-mask upstream
#
# Runs in the background (one thread, nice 10), stops by itself after MINUTES CPU minutes (below)
# summed over restarts, checkpoints every 4 minutes; log in $OUT/logs/$MODEL.log, the run in
# $OUT/$MODEL.run/ (log.jsonl has valid L1/SDR every 15 CPU minutes). The bundled files are
# untouched: the result is $OUT/$MODEL-solo.safetensors, to be judged beside $MODEL-v2 on the
# corpus-v2 valid crops (its run's last valid line in /work/data/upstreams_v2/$MODEL.run) and
# by bench/real_recordings.py --set valid --upstream FAMILY-file:$OUT/$MODEL-solo.safetensors.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-/work/data}
OUT=${OUT:-$DATA/upstreams_v2solo}
MODEL=${MODEL:-hdemucs16}
# budgets: hdemucs16's was cut from 110 to 90 at 63 CPU minutes (2026-11-27), so that its
# learning rate decayed and the run ended within that session; rerun with the same budget,
# since the decay point follows it
case $MODEL in  # family and the settings of train_v2.sh
  hdemucs16) args=(demucs --batch 2 --lr 3e-4 --min-seconds 3 --max-seconds 6); MINUTES=${MINUTES:-90} ;;
  spectral4) args=(spectral --batch 4 --lr 5e-4); MINUTES=${MINUTES:-110} ;;
  *) echo "train_solo.sh: MODEL must be hdemucs16 or spectral4" >&2; exit 2 ;;
esac
FROM=${FROM:-weights}  # where $MODEL-v2.safetensors is: the bundled file (train_v2.sh's run folders are gone)
mkdir -p "$OUT/logs"
"$PY" recipes/upstreams/weighted_songs.py --corpus "$DATA/corpus_v2" --weight 3 --out "$OUT/upstream_songs.txt"
nohup nice -n 10 "$PY" recipes/upstreams/train_upstream.py "${args[@]}" --init "$FROM/$MODEL-v2.safetensors" \
    --corpus "$DATA/corpus_v2" --songs "$OUT/upstream_songs.txt" --valid-every 15 --valid-crops 12 \
    --threads 1 --bf16 --solo 0.3 --minutes "$MINUTES" --run "$OUT/$MODEL.run" --out "$OUT/$MODEL-solo.safetensors" \
    >> "$OUT/logs/$MODEL.log" 2>&1 &
echo "$MODEL-solo: pid $!, log $OUT/logs/$MODEL.log"
