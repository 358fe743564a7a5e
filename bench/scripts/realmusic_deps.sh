#!/usr/bin/env bash
# What bench/realmusic.py needs to build its real-music sets: FluidSynth and Debian's General MIDI sound
# font (apt), and music21 (its corpus of public-domain scores) in the project's venv. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v fluidsynth >/dev/null || [ ! -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq fluidsynth fluid-soundfont-gm
fi
.venv/bin/python -c "import music21" 2>/dev/null || .venv/bin/pip install -q music21
