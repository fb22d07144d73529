#!/usr/bin/env bash
# Install what recipes/corpus needs: Debian sound sources + tools (as root), and the
# PyPI packages into the *current* python (run it with the venv active or set PYTHON).
# Idempotent and quiet; safe to run again.
set -euo pipefail
PYTHON="${PYTHON:-python}"
PKGS=(fluidsynth libfluidsynth3 fluid-soundfont-gm musescore-general-soundfont
      timgm6mb-soundfont csound-soundfont avldrums.lv2-soundfont hydrogen-drumkits
      festival festvox-kallpc16k festvox-kdlpc16k espeak-ng)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
"$PYTHON" -m pip install -q -r "$(dirname "$0")/requirements.txt"
