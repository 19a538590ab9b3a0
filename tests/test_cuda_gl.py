"""CUDA-GL interop (runtime/cuda_gl.py): a CUDA generator's frame copied into the GL
texture without host memory, and the host path wherever that fails.

Everywhere: the frame's layout, and the failure path through the real cuda-bindings
(here without a driver) into a real GL texture. With `pytest -m gpu` on a CUDA
machine whose EGL is NVIDIA's: the copy bit for bit, and a StyleGAN show rendering
the same frames both ways."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from runtime import cuda_gl
from runtime.cuda_gl import CudaTexture, GpuUploads, InteropError, host_frame, probe
from runtime.generators.worker import gpu_frame
from runtime.loop import render_offline
from runtime.render.compositor import SourceSlot
from runtime.show import load_show

pytestmark = pytest.mark.gl

CUDA = torch.device("cuda", 0)


def picture(height: int, width: int, seed: int) -> torch.Tensor:
    """(3, H, W) uint8 noise."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, height, width), generator=generator, dtype=torch.uint8)


def test_a_gpu_frame_is_rgba_bottom_up_and_comes_back_as_the_host_frame():
    image = picture(5, 7, seed=1)
    frame = gpu_frame(image)
    assert frame.shape == (5, 7, 4) and frame.dtype == torch.uint8 and frame.is_contiguous()
    assert bool((frame[..., 3] == 255).all())
    assert torch.equal(frame[0, :, :3], image[:, -1].T)  # GL's first row: the picture's last
    np.testing.assert_array_equal(host_frame(frame), image.permute(1, 2, 0).numpy())


@pytest.mark.skipif(torch.cuda.is_available(), reason="the failure path needs no CUDA")
def test_without_cuda_the_failing_call_is_named_and_frames_take_the_host_path(gl_ctx, caplog):
    with pytest.raises(InteropError, match=r"^cudaSetDevice: cudaError\w+|cuda-bindings is not"):
        CudaTexture(gl_ctx, (8, 4), CUDA)
    slot = SourceSlot(gl_ctx)
    uploads = GpuUploads(gl_ctx, CUDA)
    first, second = picture(6, 10, seed=2), picture(6, 10, seed=3)
    with caplog.at_level(logging.ERROR, logger="runtime.cuda_gl"):
        assert uploads.upload(slot, gpu_frame(first)) is False
        seen = np.frombuffer(slot.texture.read(), np.uint8).reshape(6, 10, 3)[::-1]
        np.testing.assert_array_equal(seen, first.permute(1, 2, 0).numpy())
        assert uploads.upload(slot, gpu_frame(second)) is False  # not tried again
    seen = np.frombuffer(slot.texture.read(), np.uint8).reshape(6, 10, 3)[::-1]
    np.testing.assert_array_equal(seen, second.permute(1, 2, 0).numpy())
    assert uploads.problem is not None and uploads.problem.split(":")[0] in caplog.text
    assert len(caplog.records) == 1 and "frames go through host memory" in caplog.text
    slot.release()


class HostCopiedTexture(CudaTexture):
    """A CudaTexture whose copy goes through the host, so that the uploader's
    bookkeeping (which texture the slot samples, which are freed) runs on a machine
    without CUDA; the GL textures are real."""

    def __init__(self, ctx, size_px, device):
        self.size_px, self.device = size_px, device
        self.texture = ctx.texture(size_px, 4, dtype="f1", alignment=1)
        self.released = False

    def write(self, frame: torch.Tensor) -> None:
        self.texture.write(frame.numpy().tobytes())

    def release(self) -> None:
        assert not self.released, "released twice"
        self.released = True
        self.texture.release()


def test_the_slot_samples_the_uploaders_texture_and_a_new_size_frees_the_old(gl_ctx, monkeypatch):
    monkeypatch.setattr(cuda_gl, "CudaTexture", HostCopiedTexture)
    slot = SourceSlot(gl_ctx)
    uploads = GpuUploads(gl_ctx, CUDA)
    made: list[HostCopiedTexture] = []
    for height, width, seed in ((4, 8, 1), (4, 8, 2), (6, 10, 3)):
        image = picture(height, width, seed)
        assert uploads.upload(slot, gpu_frame(image)) is True
        if not made or made[-1].size_px != (width, height):
            made.append(uploads._target)
        assert slot.texture is uploads._target.texture and slot.size_px == (width, height)
        seen = np.frombuffer(slot.texture.read(), np.uint8).reshape(height, width, 4)[::-1]
        np.testing.assert_array_equal(seen[..., :3], image.permute(1, 2, 0).numpy())
    assert [t.released for t in made] == [True, False]  # one texture per size, the old freed
    slot.release()  # not the slot's own: left alone
    assert not made[1].released
    uploads.release()
    assert made[1].released and uploads.problem is None


def need_interop(ctx) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    problem = probe(ctx, CUDA)
    assert problem is None, problem  # a CUDA machine's EGL must be NVIDIA's for this


@pytest.mark.gpu
def test_interop_copies_frames_into_gl_bit_for_bit(gl_ctx):
    need_interop(gl_ctx)
    slot = SourceSlot(gl_ctx)
    uploads = GpuUploads(gl_ctx, CUDA)
    for size, seed in (((1024, 1024), 1), ((1024, 1024), 2), ((640, 360), 3)):
        image = picture(size[1], size[0], seed).to(CUDA)
        assert uploads.upload(slot, gpu_frame(image)) is True
        torch.cuda.synchronize()
        assert slot.texture.size == size and slot.texture.components == 4
        seen = np.frombuffer(slot.texture.read(), np.uint8).reshape(size[1], size[0], 4)[::-1]
        np.testing.assert_array_equal(seen[..., :3], image.permute(1, 2, 0).cpu().numpy())
    assert uploads.problem is None
    uploads.release()
    slot.release()


@pytest.mark.gpu
def test_a_stylegan_show_renders_the_same_frames_by_interop_and_by_host(
    gl_ctx, tmp_path, fixtures_dir, monkeypatch, caplog
):
    from conftest import need_fixture

    need_interop(gl_ctx)
    weights = need_fixture(fixtures_dir, "stylegan/sg2-tiny.pkl")
    (tmp_path / "m.toml").write_text('[[map]]\nsource = "lfo:slow"\ntarget = "latent.phase"\n')
    show = tmp_path / "show.toml"
    show.write_text(
        f'mappings = ["m.toml"]\n[generator]\nkind = "stylegan"\nseed = 1\n'
        f'weights = "{weights}"\ndevice = "cuda"\n[output]\nsize = [96, 64]\nfps = 30\n'
        '[[effects]]\nshader = "fit"\n[[effects]]\nshader = "grade"\n'
    )

    def frames(out: Path) -> list[np.ndarray]:
        render_offline(load_show(show), frames=6, out=out, progress=False)
        return [np.asarray(Image.open(p)) for p in sorted(out.glob("frame_*.png"))]

    with caplog.at_level(logging.INFO, logger="runtime.cuda_gl"):
        by_interop = frames(tmp_path / "interop")
    assert "by CUDA-GL interop" in caplog.text
    monkeypatch.setattr(cuda_gl, "connect", lambda worker, ctx: None)
    by_host = frames(tmp_path / "host")
    assert len(by_interop) == len(by_host) == 6
    for a, b in zip(by_interop, by_host, strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.abs(by_interop[0].astype(int) - by_interop[-1]).mean() > 0.5  # it moved
