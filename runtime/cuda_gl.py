"""CUDA-GL interop: a generator's frame, finished on the GPU as a torch tensor, is
copied into the GL texture the passes sample, device to device, instead of going
down to host memory and back up (`.cpu()` then `texture.write`).

The texture is registered with CUDA once (cudaGraphicsGLRegisterImage, write-discard)
and mapped around each copy; the copy runs on torch's current stream on the frame
loop's thread, and unmapping orders GL's next use of the texture after it. CUDA
registers RGBA8 textures, not RGB8, so frames travel as (H, W, 4) with rows
bottom-up, as GL stores them.

This needs cuda-bindings (cuda-python, which torch's CUDA wheels depend on) and a GL
context on the same GPU as CUDA (NVIDIA's GL or EGL, not Mesa). `probe` tries the
whole path once on the show's context; where any part is missing it says what, and
the show takes the host path.
"""

from __future__ import annotations

import logging
from typing import Any

import moderngl
import numpy as np
import torch

log = logging.getLogger(__name__)

GL_TEXTURE_2D = 0x0DE1


class InteropError(RuntimeError):
    """A CUDA-GL call failed; the message names the call and CUDA's error."""


def _runtime() -> Any:
    """cuda-bindings' runtime module (cuda.bindings.runtime, or cuda.cudart in
    cuda-python before 12.6). Raises InteropError naming the extra when absent."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:
            from cuda import cudart as runtime
        except ImportError:
            raise InteropError(
                "cuda-bindings is not installed (torch's CUDA wheels bring it; "
                "pip install cuda-bindings)"
            ) from None
    return runtime


def _call(runtime: Any, name: str, *args: Any) -> tuple[Any, ...]:
    """Call a CUDA runtime function; its results after the error code.

    Raises:
        InteropError: naming the call and CUDA's error.
    """
    result = getattr(runtime, name)(*args)
    error = result[0]
    if error != runtime.cudaError_t.cudaSuccess:
        raise InteropError(f"{name}: {error.name}")
    return result[1:]


class CudaTexture:
    """An RGBA8 GL texture that CUDA copies frames into.

    Args:
        ctx: the GL context (current on this thread).
        size_px: (width, height).
        device: the CUDA device the frames live on.
    Raises:
        InteropError: cuda-bindings is missing, or CUDA cannot register the texture
            (no CUDA, or a GL context on another GPU or on Mesa).
    Thread: the thread that owns `ctx` (main).
    """

    def __init__(self, ctx: moderngl.Context, size_px: tuple[int, int], device: torch.device):
        self._runtime = _runtime()
        self.device = device
        self.size_px = size_px
        self.texture = ctx.texture(size_px, 4, dtype="f1", alignment=1)
        self.texture.filter = (moderngl.LINEAR, moderngl.LINEAR)
        self.texture.repeat_x = self.texture.repeat_y = False
        try:
            index = device.index if device.index is not None else torch.cuda.current_device()
            _call(self._runtime, "cudaSetDevice", index)
            flags = self._runtime.cudaGraphicsRegisterFlags.cudaGraphicsRegisterFlagsWriteDiscard
            (self._resource,) = _call(
                self._runtime, "cudaGraphicsGLRegisterImage", self.texture.glo, GL_TEXTURE_2D, flags
            )
        except InteropError:
            self.texture.release()
            raise

    def write(self, frame: torch.Tensor) -> None:
        """Copy a frame into the texture, device to device.

        Args:
            frame: (H, W, 4) uint8 on this texture's CUDA device, contiguous, rows
                bottom-up, H and W the texture's size.
        Raises:
            InteropError: a CUDA call failed (the texture keeps its last frame).
        Thread: main.
        """
        height, width, _ = frame.shape
        assert (width, height) == self.size_px and frame.is_contiguous(), frame.shape
        runtime = self._runtime
        stream = torch.cuda.current_stream(frame.device).cuda_stream
        _call(runtime, "cudaGraphicsMapResources", 1, self._resource, stream)
        try:
            (array,) = _call(runtime, "cudaGraphicsSubResourceGetMappedArray", self._resource, 0, 0)
            row_bytes = width * 4
            _call(
                runtime,
                "cudaMemcpy2DToArrayAsync",
                array,
                0,
                0,
                frame.data_ptr(),
                row_bytes,
                row_bytes,
                height,
                runtime.cudaMemcpyKind.cudaMemcpyDeviceToDevice,
                stream,
            )
        finally:
            _call(runtime, "cudaGraphicsUnmapResources", 1, self._resource, stream)

    def release(self) -> None:
        """Unregister from CUDA and free the texture. Thread: main."""
        try:
            _call(self._runtime, "cudaGraphicsUnregisterResource", self._resource)
        except InteropError as exc:  # the texture goes anyway
            log.warning("CUDA-GL: %s", exc)
        self.texture.release()


def probe(ctx: moderngl.Context, device: torch.device) -> str | None:
    """Try the interop path once on this context: register a small texture, copy a
    known frame into it through CUDA and read it back through GL.

    Args:
        ctx: the show's GL context (current on this thread).
        device: the generator's device.
    Returns:
        None when frames can reach GL without host memory; otherwise why not.
    Thread: main.
    """
    if device.type != "cuda" or not torch.cuda.is_available():
        return "the generator is not on a CUDA device"
    try:
        target = CudaTexture(ctx, (8, 4), device)
    except InteropError as exc:
        return str(exc)
    try:
        pattern = torch.arange(4 * 8 * 4, device=device, dtype=torch.int32) * 7 % 256
        frame = pattern.to(torch.uint8).reshape(4, 8, 4).contiguous()
        target.write(frame)
        torch.cuda.current_stream(device).synchronize()
        seen = np.frombuffer(target.texture.read(alignment=1), np.uint8).reshape(4, 8, 4)
        if not np.array_equal(seen, frame.cpu().numpy()):
            return "a test frame copied by CUDA read back different through GL"
        return None
    except InteropError as exc:
        return str(exc)
    finally:
        target.release()


class GpuUploads:
    """Puts a worker's GPU frames into a source slot through interop, and takes the
    host path for good after the first failure (said once in the log).

    Args:
        ctx: the GL context.
        device: the CUDA device the frames live on.
    Attributes:
        problem: why frames go through host memory now, or None.
    Thread: main.
    """

    def __init__(self, ctx: moderngl.Context, device: torch.device) -> None:
        self.ctx = ctx
        self.device = device
        self.problem: str | None = None
        self._target: CudaTexture | None = None

    def upload(self, slot: Any, frame: torch.Tensor) -> bool:
        """Make `frame` the slot's source.

        Args:
            slot: a SourceSlot or the Compositor (`use_source`, `upload`).
            frame: (H, W, 4) uint8 on `device`, rows bottom-up (`gpu_frame` in
                runtime/generators/worker.py).
        Returns:
            True when it went by interop; False when through host memory.
        Thread: main.
        """
        stale: list[CudaTexture] = []
        if self.problem is None:
            height, width, _ = frame.shape
            target = self._target
            try:
                if target is None or target.size_px != (width, height):
                    target = CudaTexture(self.ctx, (width, height), self.device)
                target.write(frame)
            except InteropError as exc:
                self.problem = str(exc)
                log.error("CUDA-GL interop failed (%s); frames go through host memory", exc)
                stale = [t for t in (target, self._target) if t is not None]
                self._target = None
            else:
                slot.use_source(target.texture)
                if self._target is not None and self._target is not target:
                    self._target.release()  # the slot holds the new one now
                self._target = target
                return True
        slot.upload(host_frame(frame))
        for target in dict.fromkeys(stale):  # once each, after the slot let go
            target.release()
        return False

    def release(self) -> None:
        """Free the registered texture; the slot must not sample it again (release
        the slot first). Thread: main."""
        if self._target is not None:
            self._target.release()
            self._target = None


def connect(worker: Any, ctx: moderngl.Context) -> GpuUploads | None:
    """Ask a CUDA generator's worker for frames on the GPU when the interop path
    works on this context (`probe`); say which path the frames take.

    Args:
        worker: the GeneratorWorker.
        ctx: the show's GL context.
    Returns:
        The uploader, or None (frames come as host arrays).
    Thread: main.
    """
    device = worker.generator.device
    if device.type != "cuda":
        return None
    problem = probe(ctx, device)
    if problem is not None:
        log.info("generated frames reach GL through host memory: %s", problem)
        return None
    log.info("generated frames reach GL by CUDA-GL interop, without host memory")
    worker.frames_on_gpu = True
    return GpuUploads(ctx, device)


def host_frame(frame: torch.Tensor) -> np.ndarray:
    """An interop frame brought to host memory as an uploaded frame is: (H, W, 3)
    uint8, top row first (the fallback when a copy fails). Thread: main."""
    return frame.flip(0)[..., :3].cpu().numpy()
