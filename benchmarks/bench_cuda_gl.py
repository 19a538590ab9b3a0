"""A CUDA frame into the GL texture the passes sample: through host memory (what the
worker and the compositor do without interop) beside CUDA-GL interop, one run.

    python benchmarks/bench_cuda_gl.py                    # 1024x1024 and 1920x1080
    python benchmarks/bench_cuda_gl.py --sizes 1024x1024 --frames 200

Host path: the uint8 frame (H, W, 3) copied down with `.cpu()`, flipped and written
into an RGB8 texture (`SourceSlot.upload`). Interop: the frame laid out as RGBA rows
bottom-up on the GPU (`gpu_frame`, worker side) and copied device to device into a
registered RGBA8 texture (`GpuUploads.upload`). Each is timed from a finished CUDA
frame to the texture being ready for GL (CUDA synchronised and glFinish). The two
alternate frame by frame; each row gives medians and the ratio as the median of each
frame pair's.

Needs a CUDA device and a GL context on it (NVIDIA's EGL); says which is missing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtime.cuda_gl import GpuUploads, probe
from runtime.generators.worker import gpu_frame
from runtime.render.compositor import SourceSlot
from runtime.render.headless import headless_context


def size_arg(text: str) -> tuple[int, int]:
    width, _, height = text.partition("x")
    return int(width), int(height)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", type=size_arg, default=[(1024, 1024), (1920, 1080)])
    parser.add_argument("--frames", type=int, default=120, help="timed frames per path and size")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench_cuda_gl: needs a CUDA device (torch.cuda.is_available() is False)")
        return 2
    device = torch.device("cuda", 0)
    ctx = headless_context()
    print(f"GL: {ctx.info['GL_RENDERER']}; CUDA: {torch.cuda.get_device_name(device)}")
    problem = probe(ctx, device)
    if problem is not None:
        print(f"interop unavailable here: {problem}; the host path only")
    for width, height in args.sizes:
        image = torch.randint(0, 256, (3, height, width), dtype=torch.uint8, device=device)
        host_slot, interop_slot = SourceSlot(ctx), SourceSlot(ctx)
        uploads = GpuUploads(ctx, device)
        host_ms: list[float] = []
        interop_ms: list[float] = []
        for i in range(args.frames + 5):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            host_slot.upload(image.permute(1, 2, 0).contiguous().cpu().numpy())
            ctx.finish()
            t1 = time.perf_counter()
            if problem is None:
                assert uploads.upload(interop_slot, gpu_frame(image)), uploads.problem
                torch.cuda.synchronize()
                ctx.finish()
            t2 = time.perf_counter()
            if i >= 5:  # warm-up: allocation, registration
                host_ms.append((t1 - t0) * 1000.0)
                interop_ms.append((t2 - t1) * 1000.0)
        host = statistics.median(host_ms)
        line = f"  {width}x{height}  host {host:7.3f} ms"
        if problem is None:
            interop = statistics.median(interop_ms)
            ratio = statistics.median(h / max(g, 1e-6) for h, g in zip(host_ms, interop_ms))
            line += f" | interop {interop:7.3f} ms | interop {ratio:.1f}x faster"
        print(line + f"  (medians of {args.frames} frames)")
        uploads.release()
        host_slot.release()
        interop_slot.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
