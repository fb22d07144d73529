#!/usr/bin/env bash
# Corpus-v2 upstreams: the three bundled families, warm-started from the bundled v1 files
# and trained on the even-numbered train songs of corpus v2, validated on v2 valid crops.
#
#   bash recipes/upstreams/train_v2.sh            # start, or continue after any stop
#
# All three run at once (one thread each, nice 10) and each stops by itself after its budget
# of training time in CPU minutes (summed over restarts): MINUTES (240) for the four-stem
# runs, VOCALS_MINUTES (150) for the vocals net, whose valid SDR sat flat from 60 to 90 CPU
# minutes (4.18 / 4.16 / 4.07 dB) at constant learning rate; 132 started its decay (the last
# 30 %) at the 92 CPU minutes it had reached, and 150 gives it 18 more for the expressive
# leads. Rerunning the same command continues every run from its last checkpoint (every
# 4 min); a finished run only rewrites its --out file.
# Runs live in $OUT/<name>.run/ (state.pt, last/best.safetensors, log.jsonl); the final
# files are $OUT/<name>-v2.safetensors (the name a mixer checkpoint records).
# --bf16 (since 30 CPU minutes into each run): bfloat16 autocast for the forward pass, 1.3-1.5x
# the steps per CPU second on this AVX512-BF16 CPU; its gradients have cosine 0.9997 with
# float32's on the same batches (recipes/upstreams/README.md).
# --songs (since ~147 CPU minutes into the four-stem runs, 132 into the vocals net): corpus v2
# gained 31 train songs whose lead parts bend, slide and play vibrato (render.py
# --expressive-from 205); the 9 upstream-train ones among them are listed 3 times
# (weighted_songs.py), and the vocals net, done at 132, continues to 150.
# --solo 0.1 (since ~100 CPU minutes into the four-stem runs, ~97 into the vocals net): one
# training crop in ten holds a single audible stem, the others silent, so that an instrument
# played alone (a guitar track, a drum loop) is learnt to go to its own stem; the real-recording
# check (bench/real_recordings.py) found solo guitars going to vocals and bass.
set -euo pipefail
# The whole script is one { } block: bash reads it completely before running it, so editing
# this file while a long run is in a step cannot change what that run does next.
{
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
CORPUS=${CORPUS:-/work/data/corpus_v2}
OUT=${OUT:-/work/data/upstreams_v2}
MINUTES=${MINUTES:-240}
VOCALS_MINUTES=${VOCALS_MINUTES:-150}
V1=${V1:-/work/data/weights_v1}  # the v1 upstreams each run starts from (--init), out of git history
mkdir -p "$OUT/logs"
[[ -f $V1/hdemucs16.safetensors ]] || bash recipes/default/v1_weights.sh "$V1"
# the upstream-train songs (even numbers), those with expressive leads listed 3 times
"$PY" recipes/upstreams/weighted_songs.py --corpus "$CORPUS" --weight 3 --out "$OUT/upstream_songs.txt"
common=(--corpus "$CORPUS" --songs "$OUT/upstream_songs.txt" --valid-every 15 --valid-crops 12 --threads 1 --bf16
        --solo 0.1)
train() { name=$1 minutes=$2; shift 2
  nohup nice -n 10 "$PY" recipes/upstreams/train_upstream.py "$@" "${common[@]}" --minutes "$minutes" \
      --run "$OUT/$name.run" --out "$OUT/$name-v2.safetensors" >> "$OUT/logs/$name.log" 2>&1 &
  echo "$name: pid $!, log $OUT/logs/$name.log"; }
train hdemucs16 "$MINUTES" demucs --init "$V1/hdemucs16.safetensors" --batch 2 --lr 3e-4 --min-seconds 3 --max-seconds 6
train spectral4 "$MINUTES" spectral --init "$V1/spectral4.safetensors" --batch 4 --lr 5e-4
train spectral_vocals "$VOCALS_MINUTES" spectral --init "$V1/spectral_vocals.safetensors" --stems vocals --batch 4 --lr 5e-4
wait
exit
}
