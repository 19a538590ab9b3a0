"""The DeepDream stage on a random-weight googlenet (no downloads): it climbs its
layer, its pyramid and jitter are exact, offline frames repeat, live frames keep to
their budget, and every show mistake names its key or file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from runtime.errors import ConfigError, GeneratorError
from runtime.neural.base import StageRun
from runtime.neural.dream import (
    DreamStage,
    build,
    dream_step,
    jitter_shift,
    layer_blend,
    objective,
    octave_sizes,
)
from runtime.show import NeuralConfig, load_show

CPU = torch.device("cpu")
LAYER_4C = 6.0  # inception4c in the default googlenet list


def neural_config(folder: Path, options: str = "", *, weights: Path | None = None) -> NeuralConfig:
    """The first [[neural]] stage of a show written into `folder`."""
    lines = ["[[neural]]", 'kind = "dream"']
    if weights is not None:
        lines.append(f'weights = "{weights}"')
    show = folder / "show.toml"
    show.write_text("\n".join(lines) + "\n" + options, encoding="utf-8")
    return load_show(show).neural[0]


def smooth_image(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """A (1, 3, H, W) image in 0.25..0.75: smooth colour blobs, away from the clamp."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 6, 6, generator=g)  # (1, 3, 6, 6)
    image = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bicubic")
    return image.clamp(0.0, 1.0) * 0.5 + 0.25  # (1, 3, H, W)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    net = torchvision.models.googlenet(
        weights=None, aux_logits=False, init_weights=True, transform_input=True
    )
    path = tmp_path_factory.mktemp("dream") / "googlenet.pth"
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def stage(weights_file: Path, tmp_path_factory: pytest.TempPathFactory) -> DreamStage:
    s = build(neural_config(tmp_path_factory.mktemp("show"), weights=weights_file))
    s.load(CPU)
    return s


def energy(stage: DreamStage, image: torch.Tensor, layer: str = "inception4c") -> float:
    with torch.no_grad():
        return stage.forward(LAYER_4C)(image)[layer].pow(2).mean().item()


def test_controls_and_defaults(stage: DreamStage):
    names = [c.name for c in stage.controls]
    assert names == [
        "dream.strength",
        "dream.layer",
        "dream.octaves",
        "dream.step",
        "dream.jitter",
        "dream.steps",
    ]
    layer = stage.controls[1]
    assert (layer.default, layer.lo, layer.hi) == (6.0, 0.0, 10.0)
    assert stage.layers[6] == "inception4c"
    assert stage.kind == "dream" and stage.name == "dream" and stage.network == "googlenet"
    assert all(c.doc for c in stage.controls)


def test_a_dream_step_climbs_its_layer_steadily(stage: DreamStage):
    image = smooth_image(64, 64)
    forward = stage.forward(LAYER_4C)
    climb = [energy(stage, image)]
    for _ in range(5):
        image = dream_step(
            forward, image, layers=stage.layers, position=LAYER_4C, step_size=0.01, shift=(0, 0)
        )
        climb.append(energy(stage, image))
    assert all(b > a for a, b in zip(climb, climb[1:])), climb
    assert climb[-1] > 1.5 * climb[0], climb


def test_layer_position_blends_two_layers_each_normalised(stage: DreamStage):
    assert layer_blend(6.0, 11) == ((6, 1.0),)
    assert layer_blend(10.0, 11) == ((10, 1.0),)
    (a, wa), (b, wb) = layer_blend(6.25, 11)
    assert (a, b) == (6, 7) and wa == pytest.approx(0.75) and wb == pytest.approx(0.25)
    features = stage.forward(6.25)(smooth_image(48, 48))
    assert set(features) >= {"inception4c", "inception4d"}
    # Each layer counts 1 at the current image, whatever its activations' scale.
    value = objective(features, layers=stage.layers, position=6.25)
    assert value.item() == pytest.approx(1.0)


def test_octave_sizes_coarse_to_fine():
    assert octave_sizes(60, 96, octaves=3, scale=1.5, min_side_px=16) == [
        (27, 43),
        (40, 64),
        (60, 96),
    ]
    assert octave_sizes(60, 96, octaves=1, scale=1.5, min_side_px=16) == [(60, 96)]
    # Levels smaller than the network takes are left out; the frame's size stays.
    assert octave_sizes(60, 96, octaves=6, scale=1.5, min_side_px=32) == [(40, 64), (60, 96)]


def test_non_square_frame_keeps_its_size(stage: DreamStage):
    image = smooth_image(48, 80)
    out, steps = stage.process(
        image, {"dream.octaves": 2, "dream.steps": 1}, StageRun(frame=0, t_s=0.0, seed=1)
    )
    assert out.shape == (1, 3, 48, 80) and out.dtype == torch.float32
    assert out.min().item() >= 0.0 and out.max().item() <= 1.0
    assert steps == 2
    assert (out - image).abs().mean().item() > 1e-3


def test_jitter_is_undone_exactly(stage: DreamStage):
    image = smooth_image(48, 64)
    out = dream_step(
        stage.forward(LAYER_4C),
        image,
        layers=stage.layers,
        position=LAYER_4C,
        step_size=0.0,
        shift=(5, -7),
    )
    assert torch.equal(out, image)
    shifts = {jitter_shift(seed=1, frame=f, octave=0, step=0, jitter_px=4) for f in range(20)}
    assert len(shifts) > 5 and all(abs(dy) <= 4 and abs(dx) <= 4 for dy, dx in shifts)
    assert jitter_shift(seed=1, frame=3, octave=1, step=2, jitter_px=4) == jitter_shift(
        seed=1, frame=3, octave=1, step=2, jitter_px=4
    )


def test_strength_zero_returns_the_input_itself(stage: DreamStage):
    image = smooth_image(48, 48)
    before = image.clone()
    out, steps = stage.process(image, {"dream.strength": 0.0}, StageRun(0, 0.0, 0))
    assert out is image and steps == 0
    assert torch.equal(image, before)


def test_offline_frames_repeat_and_jitter_varies_them(stage: DreamStage):
    image = smooth_image(48, 64)
    values = {"dream.steps": 2, "dream.octaves": 2, "dream.jitter": 8}
    a, steps_a = stage.process(image, values, StageRun(frame=3, t_s=0.1, seed=7))
    b, steps_b = stage.process(image, values, StageRun(frame=3, t_s=0.1, seed=7))
    c, _ = stage.process(image, values, StageRun(frame=4, t_s=0.13, seed=7))
    assert steps_a == steps_b == 4
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_live_budget_takes_fewer_steps(stage: DreamStage):
    image = smooth_image(48, 48)
    values = {"dream.steps": 4, "dream.octaves": 2}
    _, offline = stage.process(image, values, StageRun(0, 0.0, 0))
    assert offline == 8
    _, tight = stage.process(image, values, StageRun(1, 0.0, 0, budget_s=1e-6))
    assert 1 <= tight < offline
    # Once its steps are timed, a roomy budget affords the full count.
    stage.process(image, values, StageRun(2, 0.0, 0, budget_s=60.0))
    _, roomy = stage.process(image, values, StageRun(3, 0.0, 0, budget_s=60.0))
    assert roomy == offline


def test_bad_layer_and_unknown_option_name_their_key(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"show\.toml:4.*'layers'.*'inception4k'.*did you mean"):
        build(neural_config(tmp_path, 'network = "googlenet"\nlayers = ["conv2", "inception4k"]\n'))
    with pytest.raises(ConfigError, match=r"show\.toml:3.*'octave_scael'.*octave_scale"):
        build(neural_config(tmp_path, "octave_scael = 1.5\n"))
    with pytest.raises(ConfigError, match=r"'network'.*googlnet.*did you mean 'googlenet'"):
        build(neural_config(tmp_path, 'network = "googlnet"\n'))
    with pytest.raises(ConfigError, match=r"'octave_scale'.*1\.1\.\.2\.0"):
        build(neural_config(tmp_path, "octave_scale = 3\n"))
    with pytest.raises(ConfigError, match=r"vgg16.*no default layers"):
        build(neural_config(tmp_path, 'network = "vgg16"\n'))


def test_missing_weights_say_how_to_pull(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LATENTSTAGE_MODELS", str(tmp_path / "empty-cache"))
    stage = build(neural_config(tmp_path))  # builds, so its targets exist
    assert stage.controls[0].name == "dream.strength"
    with pytest.raises(GeneratorError, match=r"run_show\.py models pull tv-googlenet"):
        stage.load(CPU)


def test_network_outside_the_catalogue_asks_for_a_path(tmp_path: Path):
    stage = build(neural_config(tmp_path, 'network = "resnet18"\nlayers = ["layer2", "layer3"]\n'))
    with pytest.raises(GeneratorError, match=r'weights = "PATH".*download\.pytorch\.org'):
        stage.load(CPU)


def test_bad_weight_files_are_named(tmp_path: Path):
    junk = tmp_path / "junk.pth"
    junk.write_text("not a state dict", encoding="utf-8")
    with pytest.raises(GeneratorError, match=r"junk\.pth"):
        build(neural_config(tmp_path, weights=junk)).load(CPU)
    other = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(2, 3, 1, 1)}, other)
    with pytest.raises(GeneratorError, match=r"other\.pth.*missing: conv1\.conv\.weight"):
        build(neural_config(tmp_path, weights=other)).load(CPU)
