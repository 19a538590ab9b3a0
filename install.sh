#!/usr/bin/env bash
# Set up latentstage on a fresh Debian/Ubuntu machine: system packages, a virtual
# environment in .venv, and the project with its Python dependencies.
#
#   bash install.sh          everything needed to play shows
#   bash install.sh --dev    also the test tools and the test material (music, MIDI
#                            files by human composers, a JACK server for real-time
#                            audio and MIDI ports without hardware), and Ray for
#                            distributed renders
#
# Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")"

dev=0
[ "${1:-}" = "--dev" ] && dev=1

# System packages: a virtual screen, PortAudio, ffmpeg, OSC tools, EGL/Mesa for
# headless GL. Test material comes from Debian packages too.
apt_packages=(xvfb libportaudio2 ffmpeg liblo-tools libegl1 libgl1 libgl1-mesa-dri x11-apps)
if [ "$dev" = 1 ]; then
    apt_packages+=(imagemagick xdotool jackd2 sonic-pi-samples lmms-common openttd-openmsx)
fi
missing=()
for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if command -v apt-get >/dev/null; then
        sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo"
        echo "installing system packages: ${missing[*]}"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    else
        echo "warning: no apt-get; install these yourself: ${missing[*]}" >&2
    fi
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
extra="[hands,link]"
# --dev adds Ray and cyndilib too, so the tests of distributed renders and of NDI
# output run (docs/RENDERING.md, docs/PERFORMING.md).
[ "$dev" = 1 ] && extra="[dev,hands,link,distributed,ndi]"
# One torch for everything (pyproject pins torch 2.14.1 + torchvision 0.29.1): on
# Linux this is the CUDA build, which also runs on machines without a GPU.
.venv/bin/python -m pip install -q -e ".$extra"
# The hand tracker's model: built once from a MediaPipe wheel on PyPI, then cached.
.venv/bin/python run_show.py hands model >/dev/null || \
    echo "warning: no hand model built; hand tracking will say so when a show uses it" >&2
if [ "$dev" = 1 ]; then
    # Compile librosa's numba code once into .numba_cache (30-60 s cold, then seconds).
    .venv/bin/python run_show.py analyze /usr/share/sonic-pi/samples/loop_amen_full.flac >/dev/null
fi
echo "latentstage installed: .venv/bin/python run_show.py --help"
