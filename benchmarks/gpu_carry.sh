#!/usr/bin/env bash
# Gathers here, on a machine with the package registries, what benchmarks/gpu_checks.sh
# needs on a bare, offline GPU machine (docs/PERFORMANCE.md, "Owed: figures from a GPU"):
#
#   .whl/       cp312 wheels of the project's dependencies that machine's image lacks
#   .gl/        the GL loader packages (libglvnd, EGL) its image lacks, as .debs
#   .fixtures/  the upstream-made checkpoints (a copy of ../shared/fixtures, which
#               does not travel)
#   .upstream/stylegan3/  NVlabs' stylegan3 sources, for bench_stylegan --upstream
#
# Usage: bash benchmarks/gpu_carry.sh [STYLEGAN3_GIT_DIR]
#   STYLEGAN3_GIT_DIR: a git directory of github.com/NVlabs/stylegan3 (for example
#   the one the library's `fetch github:NVlabs/stylegan3` returns); without it,
#   .upstream is left as it is and the NVlabs rows are skipped.
# About 22 MB in all, under the device's 64 MiB a call. All four are ignored by git.
set -euo pipefail
cd "$(dirname "$0")/.."

# The image has torch, numpy, scipy, pillow, safetensors, tqdm, numba and more (the
# device notes list them); these are the rest of what the runtime, the benchmarks
# and `pytest -m gpu` import, at the versions the project's own install takes.
wheels=(
    moderngl==5.13.0 glcontext==3.1.0 glfw==2.11.0 python-osc==1.10.2 mido==1.3.3
    tomlkit==0.15.2 open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4 soundfile==0.14.0
    librosa==0.11.0 audioread==3.1.0 soxr==1.1.0 pooch==1.9.0 decorator==5.3.1
)
rm -rf .whl && mkdir -p .whl
platforms=()
for p in manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux_2_5 manylinux1; do
    platforms+=(--platform "${p}_x86_64")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${platforms[@]}" -d .whl "${wheels[@]}"

rm -rf .gl && mkdir -p .gl /tmp/amd64/partial
apt_options=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
apt-get "${apt_options[@]}" update -qq
(cd .gl && apt-get "${apt_options[@]}" download -qq \
    libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 2>/dev/null)

rm -rf .fixtures && cp -r ../shared/fixtures .fixtures

if [ $# -ge 1 ]; then
    rm -rf .upstream/stylegan3 && mkdir -p .upstream/stylegan3
    git --git-dir="$1" archive HEAD -- dnnlib torch_utils training legacy.py \
        | tar -x -C .upstream/stylegan3
fi
du -sh .whl .gl .fixtures .upstream 2>/dev/null || true
