"""DeepDream: gradient ascent on a classifier's layer, over an image pyramid.

Each frame is dreamed coarse to fine (classic DeepDream): at each octave the image
is rolled by a random jitter, the chosen layer's activation energy is pushed up by a
few normalised gradient steps, and the detail gained (dreamed minus base) is carried
up to the next, larger octave. `dream.layer` sweeps an ordered list of layers (for
googlenet: edges at conv2 to eyes at inception5b), blending two neighbours between
whole positions. `dream.strength` mixes the dream with the input frame.

Offline every frame takes exactly `dream.steps` steps per octave, with its jitter
seeded by the show's seed and the frame index, so renders are frame-exact. Live, the
stage times its steps and takes fewer rather than overrun the frame's budget.

Options (in `[[neural]]`): `network` (a torchvision classifier, default googlenet,
or the network of `model = "tv-NAME"`), `layers` (module or node names as
torchvision's `get_graph_node_names` gives them; googlenet has a default list),
`octave_scale` (size ratio between octaves, default 1.4). The weights are
torchvision's ImageNet state dict for that network: the catalogue's `tv-NAME`, or
`weights = "PATH"`.
"""

from __future__ import annotations

import functools
import hashlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

from runtime.config import Table, suggest
from runtime.errors import GeneratorError
from runtime.generators.base import Control
from runtime.neural.base import StageRun
from runtime.neural.weights import load_state_dict, weights_path
from runtime.show import NeuralConfig

DEFAULT_NETWORK = "googlenet"
# Edges to eyes: googlenet's blocks in depth order, as its module names.
GOOGLENET_LAYERS = (
    "conv2",
    "conv3",
    "inception3a",
    "inception3b",
    "inception4a",
    "inception4b",
    "inception4c",
    "inception4d",
    "inception4e",
    "inception5a",
    "inception5b",
)
DEFAULT_LAYER = "inception4c"
DEFAULT_OCTAVE_SCALE = 1.4
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Aux classifier heads in torchvision's files: the dream builds without them.
AUX_PREFIXES = ("aux1.", "aux2.", "AuxLogits.")
# Sizes tried (smallest first) to find the smallest octave a network accepts; a
# network that takes none of them wants a fixed input size and cannot dream.
PROBE_SIDES_PX = (16, 24, 32, 40, 48, 64, 80, 96, 128)
# A power of two, so exact in float32: it only lifts fp16 gradients (under CUDA
# autocast) out of the subnormal range; each step's gradient is normalised anyway.
GRAD_SCALE = 1024.0
# Weight of the newest timing in the live per-step time estimate.
STEP_TIME_EMA = 0.3


class DreamStage:
    """DeepDream on the generator's frame.

    Args:
        name: the target prefix (`[[neural]] name`).
        config: its show table (for the weights path at load).
        network: the torchvision classifier's name.
        layers: the layers `NAME.layer` sweeps, in order.
        octave_scale: size ratio between successive octaves.
        min_side_px: the smallest octave side the network accepts at these layers.
    Thread: built anywhere; `load` and `process` on the generator worker.
    """

    kind = "dream"

    def __init__(
        self,
        *,
        name: str,
        config: NeuralConfig,
        network: str,
        layers: tuple[str, ...],
        octave_scale: float,
        min_side_px: int,
    ) -> None:
        self.name = name
        self.config = config
        self.network = network
        self.layers = layers
        self.octave_scale = octave_scale
        self.min_side_px = min_side_px
        default_layer = (
            layers.index(DEFAULT_LAYER) if DEFAULT_LAYER in layers else (len(layers) - 1) // 2
        )
        p = name
        self.controls: tuple[Control, ...] = (
            Control(
                f"{p}.strength",
                1.0,
                0.0,
                2.0,
                "how much of the dream is applied: 0 passes the frame through, 2 doubles it",
            ),
            Control(
                f"{p}.layer",
                float(default_layer),
                0.0,
                float(len(layers) - 1),
                f"which of the {len(layers)} layers dreams (low: edges, high: objects); "
                "between two blends them",
            ),
            Control(
                f"{p}.octaves", 2.0, 1.0, 6.0, "pyramid levels, coarse to fine: more grows larger"
            ),
            Control(f"{p}.step", 0.02, 0.0, 0.2, "gradient-ascent step size, in 0..1 image units"),
            Control(
                f"{p}.jitter", 8.0, 0.0, 64.0, "largest random shift per step, px at full size"
            ),
            Control(
                f"{p}.steps", 3.0, 1.0, 20.0, "gradient steps per octave per frame (live: fewer)"
            ),
        )
        self._by_key = {c.name.rsplit(".", 1)[1]: c for c in self.controls}
        self.device: torch.device | None = None
        # One extractor per deepest layer index, so a shallow layer does not pay for
        # the whole network; they share the model's parameters.
        self._nets: list[torch.nn.Module] | None = None
        self._mean: torch.Tensor | None = None
        self._std: torch.Tensor | None = None
        # Live: seconds per step by (extractor, octave height, octave width).
        self._step_s: dict[tuple[int, int, int], float] = {}

    def load(self, device: torch.device) -> None:
        """Read the weights and prepare the feature extractors on `device`.

        Args:
            device: where `process` will run.
        Raises:
            GeneratorError: weights missing (the message gives the
                `run_show.py models pull` command, or how to set `weights` for a
                network the catalogue lacks), unreadable, or not this network's.
        Thread: the generator worker, before the first `process`.
        """
        config = self.config
        default_model = f"tv-{self.network}"
        if config.weights is None and config.model is None:
            _require_catalogue_entry(self.name, self.network, default_model)
        path = weights_path(config, default_model)
        state = load_state_dict(path)
        model = _architecture(self.network)
        own = model.state_dict()
        state = {k: v for k, v in state.items() if k in own or not k.startswith(AUX_PREFIXES)}
        _check_keys(path, self.network, own, state)
        model.load_state_dict(state, strict=True)
        model.eval().requires_grad_(False)
        if device.type == "cuda":
            model = model.to(device=device, memory_format=torch.channels_last)
        else:
            model = model.to(device=device)
        nets = []
        for deepest in range(len(self.layers)):
            wanted = list(dict.fromkeys(self.layers[max(deepest - 1, 0) : deepest + 1]))
            nets.append(create_feature_extractor(model, return_nodes=wanted).eval())
        self._nets = nets
        self._mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)  # (1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)  # (1, 3, 1, 1)
        self.device = device
        self._step_s.clear()

    def forward(self, position: float) -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
        """The network pass the objective at `position` reads.

        Args:
            position: a `NAME.layer` value, 0..len(layers) - 1.
        Returns:
            A function of a (1, 3, h, w) image in 0..1 giving the activations of the
            (one or two) layers at `position`, by layer name; under fp16 autocast on
            CUDA.
        Raises:
            GeneratorError: the stage is not loaded.
        Thread: the generator worker.
        """
        if self._nets is None or self._mean is None or self._std is None:
            raise GeneratorError(f"{self.name}: the dream was used before its weights loaded")
        net = self._nets[_deepest(position, len(self.layers))]
        mean, std = self._mean, self._std
        on_cuda = mean.device.type == "cuda"

        def run(image: torch.Tensor) -> dict[str, torch.Tensor]:
            x = (image - mean) / std  # (1, 3, h, w)
            if not on_cuda:
                return net(x)
            x = x.contiguous(memory_format=torch.channels_last)  # (1, 3, h, w)
            with torch.autocast("cuda", dtype=torch.float16):
                return net(x)

        return run

    def process(
        self, image: torch.Tensor, values: Mapping[str, float], run: StageRun
    ) -> tuple[torch.Tensor, int]:
        """Dream on one frame.

        Args:
            image: (1, 3, H, W) float32 in 0..1 on the stage's device.
            values: target values by name; missing ones take the controls' defaults.
            run: the frame's index and seed (they seed the jitter) and, live, its
                time budget.
        Returns:
            (image, steps): the (1, 3, H, W) float32 frame in 0..1 and the gradient
            steps taken. At strength 0 (or step 0) the input tensor itself, and 0.
        Raises:
            GeneratorError: not loaded, or the frame is smaller than the network
                accepts at these layers.
        Thread: the generator worker.
        """
        strength = self._value(values, "strength")
        step_size = self._value(values, "step")
        if strength <= 0.0 or step_size <= 0.0:
            return image, 0
        position = self._value(values, "layer")
        octaves = round(self._value(values, "octaves"))
        jitter_px = self._value(values, "jitter")
        steps = round(self._value(values, "steps"))
        forward = self.forward(position)
        deepest = _deepest(position, len(self.layers))

        _, _, height, width = image.shape
        if min(height, width) < self.min_side_px:
            raise GeneratorError(
                f"{self.name}: a {width}x{height} px frame is smaller than {self.network} "
                f"takes at these layers ({self.min_side_px} px a side)"
            )
        sizes = octave_sizes(
            height, width, octaves=octaves, scale=self.octave_scale, min_side_px=self.min_side_px
        )
        budget_s = run.budget_s
        live = budget_s is not None
        per_octave = steps
        if budget_s is not None:
            per_octave = self._affordable(sizes, deepest, steps, budget_s)
        sync = live and image.device.type == "cuda"
        start_s = time.perf_counter()
        taken = 0
        out_of_time = False
        # The worker may render under no_grad or inference_mode; the dream needs grads.
        with torch.inference_mode(False), torch.enable_grad():
            bases = [_resize(image, size) for size in sizes]  # each (1, 3, h, w)
            detail = torch.zeros_like(bases[0])  # (1, 3, h0, w0)
            dreamed = image  # (1, 3, H, W): each octave replaces it; the last is full size
            for octave, (size, base) in enumerate(zip(sizes, bases)):
                if octave:
                    detail = _resize(detail, size)  # (1, 3, h, w)
                dreamed = base + detail  # (1, 3, h, w)
                shift_px = round(jitter_px * size[0] / height)
                for step in range(per_octave):
                    if budget_s is not None and taken and time.perf_counter() - start_s > budget_s:
                        out_of_time = True
                        break
                    step_start_s = time.perf_counter()
                    dreamed = dream_step(
                        forward,
                        dreamed,
                        layers=self.layers,
                        position=position,
                        step_size=step_size,
                        shift=jitter_shift(
                            seed=run.seed,
                            frame=run.frame,
                            octave=octave,
                            step=step,
                            jitter_px=shift_px,
                        ),
                    )
                    taken += 1
                    if live:
                        if sync:
                            torch.cuda.synchronize(image.device)
                        self._record((deepest, *size), time.perf_counter() - step_start_s)
                detail = dreamed - base  # (1, 3, h, w)
                if out_of_time:
                    # Later octaves take no steps but still carry the detail up.
                    per_octave = 0
        out = image + strength * (dreamed - image)  # (1, 3, H, W)
        return out.clamp_(0.0, 1.0), taken

    def _value(self, values: Mapping[str, float], key: str) -> float:
        control = self._by_key[key]
        return min(max(float(values.get(control.name, control.default)), control.lo), control.hi)

    def _affordable(
        self, sizes: Sequence[tuple[int, int]], deepest: int, steps: int, budget_s: float
    ) -> int:
        """The most steps per octave whose estimated time fits `budget_s` (at least 1)."""
        known = {(h, w): s for (d, h, w), s in self._step_s.items() if d == deepest}
        if not known:
            # Nothing measured at this layer yet: one step per octave, to measure.
            return 1
        # An unmeasured size is estimated from the nearest measured one, by area.
        round_s = 0.0
        for h, w in sizes:
            if (h, w) in known:
                round_s += known[(h, w)]
            else:
                (kh, kw), s = min(known.items(), key=lambda kv: abs(kv[0][0] * kv[0][1] - h * w))
                round_s += s * (h * w) / (kh * kw)
        return max(1, min(steps, int(budget_s / max(round_s, 1e-9))))

    def _record(self, key: tuple[int, int, int], seconds: float) -> None:
        old = self._step_s.get(key)
        self._step_s[key] = seconds if old is None else old + STEP_TIME_EMA * (seconds - old)


def octave_sizes(
    height: int, width: int, *, octaves: int, scale: float, min_side_px: int
) -> list[tuple[int, int]]:
    """The image pyramid's sizes, coarse to fine.

    Args:
        height, width: the frame's size in px (the finest octave).
        octaves: how many levels were asked for.
        scale: the size ratio between successive levels (> 1).
        min_side_px: levels with a side below this are left out.
    Returns:
        (height, width) per octave, coarsest first; the last is (height, width).
    Thread: any.
    """
    sizes = []
    for level in range(max(octaves, 1) - 1, 0, -1):
        factor = scale**level
        size = (round(height / factor), round(width / factor))
        if min(size) >= min_side_px:
            sizes.append(size)
    sizes.append((height, width))
    return sizes


def layer_blend(position: float, count: int) -> tuple[tuple[int, float], ...]:
    """The layers a `NAME.layer` position reads, with their weights.

    Args:
        position: 0..count - 1 (clamped); a fraction blends two neighbours.
        count: how many layers the list has.
    Returns:
        ((index, weight), ...): one layer at a whole position, else two whose
        weights sum to 1.
    Thread: any.
    """
    position = min(max(position, 0.0), float(count - 1))
    low = min(math.floor(position), count - 1)
    frac = position - low
    if frac <= 0.0:
        return ((low, 1.0),)
    return ((low, 1.0 - frac), (low + 1, frac))


def objective(
    features: Mapping[str, torch.Tensor], *, layers: Sequence[str], position: float
) -> torch.Tensor:
    """What a dream step climbs: the activation energy of the layer(s) at `position`.

    Each layer's energy, mean(a^2), is divided by its own detached value, so each
    contributes 1 at the current image and a blend of two is not ruled by the one
    with the larger activations; the gradient still points up each layer's energy.

    Args:
        features: activations by layer name (from `DreamStage.forward`).
        layers: the stage's ordered layer list.
        position: the `NAME.layer` value.
    Returns:
        A scalar float32 tensor (1.0 in value; its gradient is what matters).
    Thread: any.
    """
    total = torch.zeros((), device=next(iter(features.values())).device)
    for index, weight in layer_blend(position, len(layers)):
        energy = features[layers[index]].float().pow(2).mean()
        # A dead layer has energy 0 and zero gradient: keep the ratio finite.
        total = total + weight * energy / energy.detach().clamp_min(1e-30)
    return total


def dream_step(
    forward: Callable[[torch.Tensor], Mapping[str, torch.Tensor]],
    image: torch.Tensor,
    *,
    layers: Sequence[str],
    position: float,
    step_size: float,
    shift: tuple[int, int],
) -> torch.Tensor:
    """One gradient-ascent step on a jittered image.

    The image is rolled by `shift` before the network sees it and rolled back
    exactly after the step, so the network's pixel grid never lines up twice the same
    way (that grid is what prints checkerboards into a dream).

    Args:
        forward: image -> activations (`DreamStage.forward(position)`).
        image: (1, 3, h, w) float32.
        layers: the stage's ordered layer list.
        position: the `NAME.layer` value.
        step_size: the step, in image units, for a gradient normalised to mean |g| = 1.
        shift: (dy, dx) px to roll by.
    Returns:
        The stepped (1, 3, h, w) image, clamped to 0..1, without autograd history.
    Thread: the generator worker.
    """
    dy, dx = shift
    rolled = torch.roll(image.detach(), shifts=(dy, dx), dims=(2, 3))  # (1, 3, h, w)
    rolled.requires_grad_(True)
    loss = objective(forward(rolled), layers=layers, position=position)
    (grad,) = torch.autograd.grad(loss * GRAD_SCALE, rolled)  # (1, 3, h, w)
    # An fp16 overflow must not put NaN into the picture: such pixels just stay put.
    grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
    grad = grad / (grad.abs().mean() + 1e-12)
    stepped = (rolled.detach() + step_size * grad).clamp_(0.0, 1.0)  # (1, 3, h, w)
    return torch.roll(stepped, shifts=(-dy, -dx), dims=(2, 3))


def jitter_shift(
    *, seed: int, frame: int, octave: int, step: int, jitter_px: int
) -> tuple[int, int]:
    """The random (dy, dx) roll of one step, each in -jitter_px..jitter_px.

    Drawn from a CPU generator seeded by all four indices, so a frame rendered twice
    dreams the same, whatever ran before it.

    Thread: any.
    """
    if jitter_px <= 0:
        return (0, 0)
    key = f"{seed}:{frame}:{octave}:{step}".encode()
    generator = torch.Generator(device="cpu")
    generator.manual_seed(int.from_bytes(hashlib.blake2b(key, digest_size=8).digest()) >> 1)
    dy, dx = torch.randint(-jitter_px, jitter_px + 1, (2,), generator=generator).tolist()
    return (dy, dx)


def build(config: NeuralConfig) -> DreamStage:
    """Build a dream stage from its `[[neural]]` table, without reading weights.

    Args:
        config: the stage's table; options `network`, `layers`, `octave_scale`.
    Returns:
        The stage, with its controls; `load` reads the weights.
    Raises:
        ConfigError: an unknown option, an unknown network, a missing or unknown
            layer, or a bad octave scale, naming the file, line and key.
    Thread: any.
    """
    t = config.options
    networks = torchvision.models.list_models(module=torchvision.models)
    model_network = (
        config.model[3:] if config.model is not None and config.model.startswith("tv-") else None
    )

    def known_network(value: Any) -> str | None:
        if value in networks:
            return None
        return f"no torchvision classifier '{value}'{suggest(value, networks)}"

    network = t.take("network", str, model_network or DEFAULT_NETWORK, check=known_network)
    if model_network is not None and model_network != network:
        raise t.error(
            "network",
            f"model '{config.model}' holds {model_network} weights, not {network}: "
            f'set network = "{model_network}" or model = "tv-{network}"',
        )
    if network == DEFAULT_NETWORK:
        layers_value = t.take("layers", list, list(GOOGLENET_LAYERS))
    elif "layers" in t.data:
        layers_value = t.take("layers", list)
    else:
        raise t.error(
            None,
            f"network '{network}' has no default layers: set layers = [...] to its "
            "module names, shallow to deep (`torchvision.models.feature_extraction."
            "get_graph_node_names` lists them)",
        )
    layers = _check_layers(t, network, layers_value)
    octave_scale = t.take(
        "octave_scale",
        float,
        DEFAULT_OCTAVE_SCALE,
        check=lambda v: None if 1.1 <= v <= 2.0 else f"expected 1.1..2.0, got {v!r}",
    )
    t.finish()
    min_side_px = _min_side_px(network, layers)
    if min_side_px is None:
        raise t.error(
            "network",
            f"{network} takes no image of {PROBE_SIDES_PX[0]}..{PROBE_SIDES_PX[-1]} px "
            "at these layers (it wants a fixed input size): choose a convolutional "
            "network such as googlenet, vgg16 or resnet50",
        )
    return DreamStage(
        name=config.name,
        config=config,
        network=network,
        layers=layers,
        octave_scale=octave_scale,
        min_side_px=min_side_px,
    )


def _check_layers(t: Table, network: str, value: list[Any]) -> tuple[str, ...]:
    if not value or not all(isinstance(v, str) for v in value):
        raise t.error("layers", "expected a non-empty array of layer names")
    names = _layer_names(network)
    for layer in value:
        if layer not in names:
            raise t.error(
                "layers", f"{network} has no layer '{layer}'{suggest(layer, sorted(names))}"
            )
    if len(set(value)) != len(value):
        twice = next(v for v in value if value.count(v) > 1)
        raise t.error("layers", f"'{twice}' is listed twice")
    return tuple(value)


def _build_kwargs(network: str) -> dict[str, Any]:
    """How torchvision builds `network` for its ImageNet weights, without the aux heads."""
    if network in ("googlenet", "inception_v3"):
        return {"transform_input": True, "aux_logits": False, "init_weights": False}
    return {}


def _architecture(network: str, device: str | torch.device = "cpu") -> torch.nn.Module:
    with torch.device(device):
        return torchvision.models.get_model(network, weights=None, **_build_kwargs(network))


@functools.lru_cache(maxsize=8)
def _layer_names(network: str) -> frozenset[str]:
    """Every eval-mode node name and each of its module prefixes (`inception4c` for
    `inception4c.cat`): `create_feature_extractor` takes either, and a prefix means
    that module's output."""
    # On the meta device: no memory, no weight init, just the graph.
    _, nodes = get_graph_node_names(_architecture(network, "meta").eval())
    names = set()
    for node in nodes:
        parts = node.split(".")
        names.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return frozenset(names)


@functools.lru_cache(maxsize=8)
def _min_side_px(network: str, layers: tuple[str, ...]) -> int | None:
    """The smallest square side (of PROBE_SIDES_PX) the network takes up to `layers`,
    found by running it on meta tensors (shapes only); None when none fits."""
    net = create_feature_extractor(_architecture(network, "meta").eval(), return_nodes=list(layers))
    for side in PROBE_SIDES_PX:
        try:
            net(torch.empty(1, 3, side, side, device="meta"))
        except (RuntimeError, ValueError, AssertionError):
            # Too small for a pooling or a fixed-size check: try the next size.
            continue
        return side
    return None


def _deepest(position: float, count: int) -> int:
    """The extractor for `position`: the index of the deepest layer it reads."""
    return max(index for index, _ in layer_blend(position, count))


def _resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(image.shape[-2:]) == size:
        return image
    # Antialias when shrinking, so the coarse octaves do not alias the frame.
    shrink = size[0] < image.shape[-2]
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=shrink)


def _require_catalogue_entry(name: str, network: str, default_model: str) -> None:
    from runtime.models import ModelError, lookup

    try:
        lookup(default_model)
    except ModelError:
        try:
            url = torchvision.models.get_model_weights(network).DEFAULT.url
        except (ValueError, AttributeError):
            url = "torchvision's ImageNet weights for it"
        raise GeneratorError(
            f"{name}: the catalogue has no weights for network '{network}' ({default_model}):"
            f' set weights = "PATH" in its [[neural]] table to a state dict of torchvision\'s'
            f" {network}, such as {url}"
        ) from None


def _check_keys(
    path: Path, network: str, own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]
) -> None:
    """Raise a GeneratorError naming the file and a few keys when `state` is not a
    state dict of this architecture."""
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
        for k, v in own.items()
        if k in state and state[k].shape != v.shape
    ]
    if not (missing or unexpected or wrong):
        return
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if keys:
            more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
            parts.append(f"{label}: {', '.join(keys[:3])}{more}")
    raise GeneratorError(
        f"{path}: not a state dict of torchvision's {network} ({'; '.join(parts)}); "
        "is `network` right?"
    )
