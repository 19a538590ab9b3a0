#!/usr/bin/env bash
# Every GPU figure the project owes, on a lent GPU machine, in two runs of at most
# about 6.5 minutes each (the limits below), so that both fit one session's 15
# minutes of device time with the machine's start (docs/PERFORMANCE.md, "Owed:
# figures from a GPU"). Run 2 right after run 1, while the machine is warm.
#
# Here first: bash benchmarks/gpu_carry.sh STYLEGAN3_GIT_DIR
# Then, with the device tool, carry=[".whl", ".gl", ".fixtures", ".upstream"]:
#   run 1: bash benchmarks/gpu_checks.sh 1   (interop, GL cppn, pytest -m gpu, StyleGAN)
#   run 2: bash benchmarks/gpu_checks.sh 2   (NVlabs' StyleGAN2, BigGAN, dream/style, CLIP)
# Each step has its own time limit, so one that hangs costs its limit, not the run.
# Output: $OUT/gpu_checks_N.txt (every step's output under a header) and the same
# on stdout.
set -u
group=${1:?which run: 1 or 2}
OUT=${OUT:-/tmp/gpu_checks}
mkdir -p "$OUT"
log="$OUT/gpu_checks_$group.txt"
: >"$log"
export PYTHONUNBUFFERED=1

# The machine is bare: GL loaders, the wheels its image lacks, the fixtures where the
# tests and benchmarks look for them (../shared/fixtures), NVIDIA's EGL vendor file.
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD"
mkdir -p ../shared && ln -sfn "$PWD/.fixtures" ../shared/fixtures
vendor=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
[ -f "$vendor" ] && export __EGL_VENDOR_LIBRARY_FILENAMES="$vendor"

step() {  # step LIMIT_S NAME COMMAND...
    local limit=$1 name=$2
    shift 2
    local start=$SECONDS
    echo "=== $name: $*" | tee -a "$log"
    timeout "$limit" "$@" 2>&1 | tee -a "$log"
    local rc=${PIPESTATUS[0]}
    echo "=== $name: exit $rc after $((SECONDS - start)) s" | tee -a "$log"
}

step 30 machine python3 -c "
import torch, moderngl
from runtime.render.headless import headless_context
ctx = headless_context()
print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name())
print('GL', ctx.info['GL_RENDERER'], ctx.info['GL_VERSION'])"
if [ "$group" = 1 ]; then
    step 45 cuda_gl python3 benchmarks/bench_cuda_gl.py --sizes 1024x1024 1920x1080
    step 60 cppn_gl python3 benchmarks/bench_cppn_gl.py --sizes 1280x720,1920x1080 --frames 30 \
        --device cuda
    step 100 pytest_gpu python3 -m pytest -q -p no:cacheprovider -m gpu \
        tests/test_cuda_gl.py tests/test_biggan.py tests/test_steer_latent.py
    step 150 stylegan python3 -m benchmarks.bench_stylegan --device cuda --sizes 256 512 1024
else
    # NVlabs' forward compiles its CUDA ops on first use (a minute or two with nvcc).
    [ -d .upstream/stylegan3 ] && step 200 stylegan_nvlabs python3 -m benchmarks.bench_stylegan \
        --device cuda --families sg2 --sizes 1024 --no-fixtures --upstream .upstream/stylegan3
    step 90 biggan python3 benchmarks/bench_biggan.py --device cuda
    step 60 neural python3 benchmarks/bench_neural.py --device cuda --sizes 512 1024
    step 60 clip python3 benchmarks/bench_clip.py --device cuda
fi
