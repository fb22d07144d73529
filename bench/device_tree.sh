#!/usr/bin/env bash
# Make the working tree fit the lent GPU machine's transfer limit for a run, then undo it.
#
# One run, measuring the previous default `mdxmix-v2` (no Spleeter):
#   bash bench/device_tree.sh fit       # before the device run (prints the size that travels)
#   bash bench/device_tree.sh restore   # right after it; commit nothing in between
#
# Two runs on one warm machine, measuring the four-upstream default itself:
#   bash bench/device_tree.sh stage1    # device: mkdir -p .stash && cp weights/spleeter-2stems.safetensors .stash/
#   bash bench/device_tree.sh stage2    # at once (the machine stays warm ~30 s), then on the device:
#                                       #   cp .stash/spleeter-2stems.safetensors weights/ && bash bench/gpu_check.sh
#   bash bench/device_tree.sh restore
#
# Why: the device tool sends the tracked and the untracked-not-ignored files, at most 64 MiB.
# Since Spleeter joined the default, the tracked files are ~79 MiB (weights/ ~73 MiB, Spleeter's
# float16 file 37.5 MiB of it), so every device run would be refused.
# - `fit` takes Spleeter's file out of the index (the file stays on disk, unchanged), hides it in
#   .git/info/exclude, and points weights/registry.json at `mdxmix-v2` (the three upstreams
#   without Spleeter, the default the GPU figures of issue 14 were measured with), leaving out the
#   entries that need Spleeter. So on the device "default" means mdxmix-v2, and
#   tests/test_default.py (which checks the four-upstream default) is left out by gpu_check.sh.
# - `stage1` instead sends Spleeter and leaves HDemucs and the vocals net behind (54 MiB); the
#   first device command copies Spleeter into `.stash/`, a folder git ignores, which the device
#   keeps between calls on a warm machine. `stage2` sends everything but Spleeter (42 MiB) with the
#   registry unchanged; its device command copies Spleeter back from `.stash/`. If the machine
#   was given back in between, `.stash/` is gone and the cp fails: run stage1 again.
# `restore` puts everything back as it was, from any of the three states.
set -euo pipefail
cd "$(dirname "$0")/.."
SPLEETER=weights/spleeter-2stems.safetensors
# the default's HDemucs and vocals net, whichever generation weights/ holds (one at a time)
STAGE1_LEFT=($(ls weights/hdemucs16-v[0-9].safetensors weights/spectral_vocals-v[0-9].safetensors))
ALL_LEFT=("$SPLEETER" "${STAGE1_LEFT[@]}")
EXCLUDE=.git/info/exclude
MARK="# bench/device_tree.sh fit"

travelling_mib() {  # tracked + untracked-not-ignored files, as the device tool counts them
  git ls-files -z --cached --others --exclude-standard | xargs -0 -r stat -c %s 2>/dev/null \
    | awk '{s += $1} END {printf "%.1f", s / 1048576}'
}

# leave_out FILE...: out of the index and hidden from git (the files stay on disk), .stash/ ignored too
leave_out() {
  git rm -q --cached -- "$@"
  { echo "$MARK"; echo "/.stash/"; printf '/%s\n' "$@"; } >> "$EXCLUDE"
}

# back_in: every file any mode left out goes back into the index, every line a mode added goes
back_in() {
  git reset -q -- "${ALL_LEFT[@]}"
  git checkout -q -- weights/registry.json
  if grep -qxF "$MARK" "$EXCLUDE" 2>/dev/null; then
    tmp=$(mktemp)
    grep -vxF -e "$MARK" -e "/.stash/" $(printf -- '-e /%s ' "${ALL_LEFT[@]}") "$EXCLUDE" > "$tmp" || true
    mv "$tmp" "$EXCLUDE"
  fi
}

case "${1:-}" in
  fit)
    grep -q '"mdxmix-v2"' weights/registry.json || {
      echo "device_tree: fit needs mdxmix-v2 registered (it left weights/ with the v3 default); use stage1 and stage2" >&2; exit 1; }
    back_in
    leave_out "$SPLEETER"
    python3 - <<'PY'
import json
from pathlib import Path
path = Path("weights/registry.json")
registry = json.loads(path.read_text())
needs_spleeter = {"mdxmix-default", "mdxmix-conv1x1"}  # the four-upstream mixers
registry["checkpoints"] = {k: v for k, v in registry["checkpoints"].items() if k not in needs_spleeter}
registry["default"] = "mdxmix-v2"
path.write_text(json.dumps(registry, indent=2) + "\n")
PY
    echo "device_tree: $(travelling_mib) MiB travel (limit 64); 'default' is mdxmix-v2 until 'bash bench/device_tree.sh restore'"
    ;;
  stage1)
    back_in
    leave_out "${STAGE1_LEFT[@]}"
    echo "device_tree: $(travelling_mib) MiB travel (limit 64); on the device: mkdir -p .stash && cp $SPLEETER .stash/"
    ;;
  stage2)
    back_in
    leave_out "$SPLEETER"
    echo "device_tree: $(travelling_mib) MiB travel (limit 64); on the device first: cp .stash/$(basename "$SPLEETER") weights/"
    ;;
  restore)
    back_in
    git diff --quiet --cached -- "${ALL_LEFT[@]}" || { echo "device_tree: the index still differs for the files left out" >&2; exit 1; }
    echo "device_tree: restored; $(travelling_mib) MiB would travel"
    ;;
  *)
    echo "usage: bash bench/device_tree.sh fit|stage1|stage2|restore" >&2
    exit 2
    ;;
esac
