# Shared by recipes/default/build_v2.sh, build_v2mix.sh, build_v3*.sh and
# recipes/agnostic/lofo.sh (sourced, not run): the pieces that must stay the same in all of them,
# so that a mixer trained or scored by one recipe is comparable with the others'. Defines
# functions and constants only; each recipe keeps its own paths.

# has STEP: whether STEP is in the space-separated $STEPS
has() { [[ " $STEPS " == *" $1 "* ]]; }

# resume RUN: --resume when RUN holds a stopped run's state
resume() { [[ -f "$1/state.safetensors" ]] && echo --resume || true; }

# v2_weights DIR: DIR holds the corpus-v2 generation (mdxmix-v2 and its three upstreams, float16,
# as bundled on 2026-11-27/28), restored from git history and checked by old_weights.py where
# missing: weights/ holds only the current generation, so recipes read earlier ones from DIR
v2_weights() { "${PY:-.venv/bin/python}" recipes/default/old_weights.py v2 --out "$1" >&2; }

# v2_upstream_flags F16: the --upstream flags of the corpus-v2 default's three float16
# upstreams (the files that get bundled: a checkpoint pins its upstreams by sha256), one per
# line, for `mapfile -t UPSTREAMS < <(v2_upstream_flags "$F16")`
v2_upstream_flags() {
  printf '%s\n' --upstream "demucs-file:$1/hdemucs16-v2.safetensors" \
                --upstream "spectral-file:$1/spectral4-v2.safetensors" \
                --upstream "spectral-file:$1/spectral_vocals-v2.safetensors:vocals"
}

# The mixers' training settings (what follows `mdxmix train --data ... --upstream ...`).
# MDX-Mixer runs add --preset, --epochs and --steps-per-epoch.
CONV1X1_TRAIN=(--kind conv1x1 --segment 32768 --epochs 10 --steps-per-epoch 300 --lr 3e-3)
MDX_MIXER_TRAIN=(--kind mdx_mixer --lr 1e-3 --amp --half)

# link_v1_eval_root ROOT DATA VALID: ROOT/test -> the frozen v1 test split, ROOT/valid -> VALID
# (corpus v2's mixer-valid songs, where the per-source best is chosen; v1's own valid split was
# deleted for disk space)
link_v1_eval_root() {
  mkdir -p "$1"
  ln -sfn "$2/corpus/test" "$1/test"
  ln -sfn "$3" "$1/valid"
}

# link_v1_songs V1 ROOT: every train and valid song of a corpus-v1 render V1 into the training
# root ROOT as "v1 NAME", beside corpus-v2 songs (mixers trained on both production styles;
# by_style.py splits tables by that prefix)
link_v1_songs() {
  local split song
  for split in train valid; do
    ls "$1/$split" | while read -r song; do ln -s "$1/$split/$song" "$2/$split/v1 $song"; done
  done
}

# v3_upstream_flags DIR: the --upstream flags of the four-upstream default bundled on 2026-11-28
# (11:45 UTC), its two -v3 files read from DIR (train_v3.sh's float16 copies, or weights/), the
# vocals net and Spleeter from weights/; for `mapfile -t UPSTREAMS < <(v3_upstream_flags "$DIR")`
v3_upstream_flags() {
  printf '%s\n' --upstream "demucs-file:$1/hdemucs16-v3.safetensors" \
                --upstream "spectral-file:$1/spectral4-v3.safetensors" \
                --upstream "spectral-file:weights/spectral_vocals-v2.safetensors:vocals" \
                --upstream "spleeter-file:weights/spleeter-2stems.safetensors:vocals"
}

# score CACHE ROOT SPLIT OUT ARGS...: museval SDR of the mixers in ARGS (--checkpoint ...) on
# ROOT/SPLIT, tables in OUT: the settings of every mixer comparison of the v3 recipes (stem cache
# CACHE, two songs at a time, no upstream or ensemble rows)
score() {
  "${MDX:-.venv/bin/mdxmix}" eval --data "$2" --split "$3" --cache-dir "$1" --jobs 2 --metric museval --no-baselines \
      --out "$4" "${@:5}"
}

# score_tests CACHE DATA RESULTS ARGS...: `score` on the frozen v1 test split (DATA/corpus) and
# the v2 test split (DATA/v2test), into RESULTS/v1-test and RESULTS/v2-test (to report, never to choose)
score_tests() {
  score "$1" "$2/corpus" test "$3/v1-test" "${@:4}"
  score "$1" "$2/v2test" test "$3/v2-test" "${@:4}"
}

# real_clips RUN NAME RESULTS: bench/real_recordings.py on the valid and test clips with RUN's
# best checkpoint, each table also written to RESULTS/real-SET-NAME.md
real_clips() {
  local set
  for set in valid test; do
    "${PY:-.venv/bin/python}" bench/real_recordings.py --set "$set" --checkpoint "$1/best.safetensors" \
        | tee "$3/real-$set-$2.md"
  done
}

# bundle_pair RUNS MIXER TRAINED_ON UPSTREAM_DIR...: RUNS/MIXER becomes mdxmix-default and
# RUNS/conv1x1 mdxmix-conv1x1 (recipes/default/bundle.py, upstream files looked up in the
# UPSTREAM_DIRs); files no registered checkpoint uses leave weights/ (the 80-MB budget)
bundle_pair() {
  local runs=$1 mixer=$2 trained_on=$3 dir
  shift 3
  local upstreams=()
  for dir in "$@"; do upstreams+=(--upstreams "$dir"); done
  mkdir -p "$runs/bundle"
  ln -sfn "$runs/$mixer" "$runs/bundle/mdxmixer_$mixer"  # bundle.py takes mdxmixer* as the default
  ln -sfn "$runs/conv1x1" "$runs/bundle/conv1x1"
  "${PY:-.venv/bin/python}" recipes/default/bundle.py --runs "$runs/bundle" "${upstreams[@]}" --weights weights \
      --trained-on "$trained_on" --prune
}
