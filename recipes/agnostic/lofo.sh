#!/usr/bin/env bash
# Issue 11's leave-one-family-out test of the agnostic mixer, step by step; every step resumes.
#
#   bash recipes/agnostic/lofo.sh                       # all steps
#   STEPS="eval oracle" bash recipes/agnostic/lofo.sh   # some steps
#
# data    a training root of SONGS mixer-train songs of corpus v2 (odd numbers: no upstream of
#         the pool or the held-out family saw them) and VALID valid songs, as symlinks; with
#         V1_CORPUS (e.g. DATA/corpus_v1mix, build_v2mix.sh's render) also every train and valid
#         song of that corpus-v1 render, named "v1 ...", so the mixer learns both production styles
# train   `mdxmix train --kind agnostic` on random sets of the POOL families (demucs: the v1
#         and v2 HDemucs files; umx when its file exists) and synthetic separators; the
#         HELD family (spectral: spectral4 and the vocals net) is never seen
# eval    museval on EVAL_DATA/test (default the frozen v1 test split, per-source best
#         chosen on corpus v2's mixer-valid songs): the HELD upstreams
#         alone, every fixed ensemble of them and the agnostic mixer over them
#         (`mdxmix eval --with-upstream`, which leaves out the checkpoint's own pool
#         upstreams), with and without mixture consistency; targets: >= best single + 0.3 dB, >= best
#         ensemble + 0.2 dB
# oracle  three near-oracle synthetic separators (14-20 dB) and the mixer over them
#         (recipes/agnostic/near_oracle.py); target: within 0.1 dB of the best or above
#
# POOL and HELD are space-separated upstream specs; everything lives under OUT.
set -euo pipefail
# The whole script is one { } block: bash reads it completely before running it, so editing
# this file while a long run is in a step cannot change what that run does next.
{
cd "$(dirname "$0")/../.."
source recipes/default/v2_common.sh
MDX=${MDX:-.venv/bin/mdxmix}
PY=${PY:-.venv/bin/python}
DATA=${DATA:-/work/data}
# the corpus-v2 upstreams: the float16 files bundled on 2026-11-27/28 (train_v2.sh's own output folder is not kept);
# set UP to a folder that also holds umx4-v2.safetensors to add that family to the pool
UP=${UP:-$DATA/weights_v2}
[[ $UP != "$DATA/weights_v2" ]] || v2_weights "$UP"  # restored from git history where missing
CORPUS=${CORPUS:-$DATA/corpus_v2}
# the frozen v1 test split beside corpus v2's mixer-valid songs (the per-source best is chosen
# there), the root build_v2's eval step makes; v1's own valid split was deleted for disk space
V1_ROOT=$DATA/eval_v1
EVAL_DATA=${EVAL_DATA:-$V1_ROOT}
OUT=${OUT:-$DATA/agnostic_v2}
CACHE=${CACHE:-$DATA/cache_v2}
# cache_v2 also holds build_v2's mixer stems (19 GB for mixer train and valid, ~28 GB with
# both test splits): the default 20-GB limit would evict them
export MDXMIX_CACHE_MAX_GB=${MDXMIX_CACHE_MAX_GB:-40}
STEPS=${STEPS:-"data train eval oracle"}
SONGS=${SONGS:-24} VALID=${VALID:-4} V1_CORPUS=${V1_CORPUS:-} EPOCHS=${EPOCHS:-10} STEPS_PER_EPOCH=${STEPS_PER_EPOCH:-200}
ANCHOR=${ANCHOR:-0.2}  # --anchor: L2 penalty on the free rows of W (0 in the first two runs; README: third run)
if [[ -z ${POOL:-} ]]; then  # a POOL given is taken as it is
  V1=$DATA/weights_v1  # the v1 HDemucs, out of git history (it left weights/)
  [[ -f $V1/hdemucs16.safetensors ]] || bash recipes/default/v1_weights.sh "$V1"
  POOL="demucs-file:$V1/hdemucs16.safetensors demucs-file:$UP/hdemucs16-v2.safetensors"
  [[ -f $UP/umx4-v2.safetensors ]] && POOL="$POOL umx-file:$UP/umx4-v2.safetensors"
fi
HELD=${HELD:-"spectral-file:$UP/spectral4-v2.safetensors spectral-file:$UP/spectral_vocals-v2.safetensors:vocals"}
# VALID_ONLY: upstreams (e.g. one POOL family taken out of POOL) that choose the best epoch
# and are never trained on (`--valid-upstream`), a stand-in for the unseen HELD family
VALID_ONLY=${VALID_ONLY:-}
RUN=$OUT/runs/lofo
flags() { local flag=$1; shift; for spec in "$@"; do printf '%s\n%s\n' "$flag" "$spec"; done; }
mapfile -t pool_flags < <(flags --upstream $POOL)
mapfile -t held_flags < <(flags --with-upstream $HELD)
mapfile -t valid_only_flags < <(flags --valid-upstream $VALID_ONLY)
# the mixer's rows with each mixture-consistency mode: the fixed ensembles are raw sums, so
# `none` is the like-for-like row, `spectral` what `mdxmix` writes by default
CONSISTENCY=${CONSISTENCY:-"spectral none"}
mapfile -t consistency_flags < <(flags --consistency $CONSISTENCY)
mkdir -p "$OUT/root/train" "$OUT/root/valid" "$OUT/results"

if has data; then
  find "$OUT/root/train" "$OUT/root/valid" -maxdepth 1 -type l -delete
  ls "$CORPUS/train" | awk -F' - ' '$1 % 2 == 1' | head -n "$SONGS" | while read -r song; do
    ln -s "$CORPUS/train/$song" "$OUT/root/train/$song"; done
  ls "$CORPUS/valid" | head -n "$VALID" | while read -r song; do ln -s "$CORPUS/valid/$song" "$OUT/root/valid/$song"; done
  [[ -z $V1_CORPUS ]] || link_v1_songs "$V1_CORPUS" "$OUT/root"  # both styles
  echo "lofo: $(ls "$OUT/root/train" | wc -l) train and $(ls "$OUT/root/valid" | wc -l) valid songs in $OUT/root"
fi

if has train; then
  resume=(); [[ -f $RUN/state.safetensors ]] && resume=(--resume)
  $MDX train --kind agnostic --preset tiny --data "$OUT/root" "${pool_flags[@]}" "${valid_only_flags[@]}" --cache-dir "$CACHE" \
      --synthetic 0.5 --max-upstreams 4 --lr 1e-3 --batch-size 4 --epochs "$EPOCHS" \
      --steps-per-epoch "$STEPS_PER_EPOCH" --anchor "$ANCHOR" --out "$RUN" "${resume[@]}"
fi

if has eval; then
  if [[ $EVAL_DATA == "$V1_ROOT" && ! -e $V1_ROOT/test ]]; then  # as build_v2's eval step makes it; never in a root given
    link_v1_eval_root "$V1_ROOT" "$DATA" "$DATA/mixer_v2/valid"
  fi
  ln -sfn "$RUN/best.safetensors" "$OUT/agnostic-lofo.safetensors"  # the table's row name
  $MDX eval --data "$EVAL_DATA" --split test --cache-dir "$CACHE" --checkpoint "$OUT/agnostic-lofo.safetensors" \
      "${held_flags[@]}" "${consistency_flags[@]}" --metric museval --jobs 2 --out "$OUT/results/lofo" | tee "$OUT/results/lofo.log"
fi

if has oracle; then
  $PY recipes/agnostic/near_oracle.py "$RUN/best.safetensors" --data "$EVAL_DATA" --split test --songs 3 \
      | tee "$OUT/results/near_oracle.log"
fi
exit
}
