#!/usr/bin/env bash
# Make the working tree fit the lent GPU machine's transfer limit for a run, then undo it.
#
#   bash bench/device_tree.sh fit       # before the device runs (prints the size that travels)
#   bash bench/device_tree.sh restore   # right after them; commit nothing in between
#
# Why: the device tool sends the tracked and the untracked-not-ignored files, at most 64 MiB.
# Since the corpus-v2 default was bundled beside mdxmix-v1, the tracked files are 78 MB
# (weights/ 69 MB), so every device run would be refused. The GPU checks need only the
# default's files: `fit` takes the mdxmix-v1 set out of the index (the files stay on disk,
# unchanged) and hides it in .git/info/exclude; `restore` puts both back as they were.
set -euo pipefail
cd "$(dirname "$0")/.."
V1=(weights/mdxmix-v1.safetensors weights/hdemucs16.safetensors weights/spectral4.safetensors
    weights/spectral_vocals.safetensors)
EXCLUDE=.git/info/exclude
MARK="# bench/device_tree.sh fit"

travelling_mib() {  # tracked + untracked-not-ignored files, as the device tool counts them
  git ls-files -z --cached --others --exclude-standard | xargs -0 -r stat -c %s 2>/dev/null \
    | awk '{s += $1} END {printf "%.1f", s / 1048576}'
}

case "${1:-}" in
  fit)
    git rm -q --cached -- "${V1[@]}"
    grep -qxF "$MARK" "$EXCLUDE" 2>/dev/null || { echo "$MARK"; printf '/%s\n' "${V1[@]}"; } >> "$EXCLUDE"
    echo "device_tree: $(travelling_mib) MiB travel (limit 64); run 'bash bench/device_tree.sh restore' afterwards"
    ;;
  restore)
    git reset -q -- "${V1[@]}"
    if grep -qxF "$MARK" "$EXCLUDE" 2>/dev/null; then
      tmp=$(mktemp)
      grep -vxF -e "$MARK" $(printf -- '-e /%s ' "${V1[@]}") "$EXCLUDE" > "$tmp" || true
      mv "$tmp" "$EXCLUDE"
    fi
    git diff --quiet --cached -- "${V1[@]}" || { echo "device_tree: the index still differs for the v1 files" >&2; exit 1; }
    echo "device_tree: restored; $(travelling_mib) MiB would travel"
    ;;
  *)
    echo "usage: bash bench/device_tree.sh fit|restore" >&2
    exit 2
    ;;
esac
