"""Offline renders spread over the GPUs of a Ray cluster, identical to a one-machine
render (docs/RENDERING.md).

The driver (this process) keeps what is cheap and carries state, in frame order: the
mapping of every frame, then the compositor's passes and the recorder. Ray actors,
one per GPU, do what is expensive: each loads the generator and the neural stages
once (weights shipped from the driver once, sha256-checked) and renders batches of
frames through the same `GeneratorWorker` a one-machine render uses, sending back
uint8 frames. Frames are pure functions of their Params, so any worker may render
any batch, and a batch lost with a worker is simply rendered again elsewhere.

Two things carry torch state from frame to frame on the worker and cannot be split
into independent batches:

- a neural chain fed its own output (`feedback.amount` > 0 on some frame): such a
  render runs in frame order on one worker, and the chain's state travels with each
  batch (`ChainState`), so a lost worker or a dead driver still continues exactly;
- CLIP (`[clip]`): its steering keeps an optimiser on the worker, and its `clip:`
  signals feed the output back into the mapping a frame later. Such shows are
  refused; render them without --ray.

A cppn drawn in GL on the driver's own context (runtime/gl_frames.py) has no model
for a worker to run: `refuse_unsplittable` refuses it, and `run_show.py --ray`
renders such a show on this machine instead.

Every finished generated frame is kept in a work folder beside the output
(`OUT.work/`), with a manifest of what it was rendered from, until the render
completes; `resume=True` continues a render whose driver died from those frames."""

from runtime.distributed.driver import (
    DEFAULT_BATCH,
    INSTALL_HINT,
    RenderReport,
    refuse_unsplittable,
    render_distributed,
    require_ray,
)
from runtime.errors import DistributedError

__all__ = [
    "DEFAULT_BATCH",
    "INSTALL_HINT",
    "DistributedError",
    "RenderReport",
    "refuse_unsplittable",
    "render_distributed",
    "require_ray",
]
