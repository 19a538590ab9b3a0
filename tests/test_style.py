"""The AdaIN style stage on random-weight networks (no downloads): the formula, the
blend of styles, the frame's shape, and every way its setup can fail."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from runtime.errors import ConfigError, GeneratorError
from runtime.neural import style
from runtime.neural.base import StageRun
from runtime.show import load_show

CPU = torch.device("cpu")
RUN = StageRun(frame=0, t_s=0.0, seed=0)
STYLE_SIZE_PX = 64


def random_net(net: nn.Sequential, seed: int) -> nn.Sequential:
    # Kaiming init: torch's default init shrinks activations about sixfold per
    # layer, leaving relu4_1 features with a variance far below AdaIN's EPS.
    torch.manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.uniform_(m.bias, -0.05, 0.05)
    return net.eval()


def write_weights(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    encoder = random_net(style.make_encoder(), 1)
    # Trained relu4_1 features spread over tens; make the random ones spread well
    # beyond AdaIN's EPS too, so the statistics can be checked to 1e-5.
    with torch.no_grad():
        encoder[29].weight.mul_(10.0)
        encoder[29].bias.mul_(10.0)
    state = encoder.state_dict()
    # The published file runs on to relu5_4: deeper keys the stage must drop.
    state.update({"32.weight": torch.zeros(4, 4, 3, 3), "51.bias": torch.zeros(4)})
    torch.save(state, folder / style.ENCODER_FILE)
    torch.save(random_net(style.make_decoder(), 2).state_dict(), folder / style.DECODER_FILE)
    return folder


def write_style(path: Path, seed: int, size: tuple[int, int] = (80, STYLE_SIZE_PX)) -> Path:
    """A textured image whose shorter side is already STYLE_SIZE_PX (no resampling)."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w] / max(w, h)
    colour = rng.uniform(0, 1, 3)
    waves = np.sin(2 * np.pi * (rng.uniform(2, 6) * x + rng.uniform(2, 6) * y))
    pixels = colour * (0.5 + 0.4 * waves[..., None]) + 0.1 * rng.standard_normal((h, w, 3))
    Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8)).save(path)
    return path


def make_stage(
    folder: Path,
    styles: list[str],
    *,
    weights: Path | None = None,
    extra: str = "",
) -> style.StyleStage:
    lines = ["[[neural]]", 'kind = "style"']
    if weights is not None:
        lines.append(f"weights = '{weights}'")
    lines.append("styles = [" + ", ".join(f'"{s}"' for s in styles) + "]")
    lines.append(f"style_size = {STYLE_SIZE_PX}")
    show = folder / "show.toml"
    show.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return style.build(load_show(show).neural[0])


def image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))  # (1, 3, H, W)


def decoder_input(stage: style.StyleStage, frame: torch.Tensor, values: dict) -> torch.Tensor:
    """Run the stage and return what its decoder was given."""
    seen: list[torch.Tensor] = []
    hook = stage.decoder.register_forward_pre_hook(lambda _m, args: seen.append(args[0].clone()))
    try:
        stage.process(frame, values, RUN)
    finally:
        hook.remove()
    (features,) = seen
    return features  # (1, 512, h, w)


def stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased std, computed here apart from the module's."""
    flat = features.flatten(2)  # (N, C, h*w)
    mean = flat.mean(dim=2)  # (N, C)
    return mean, ((flat - mean[..., None]) ** 2).mean(dim=2).sqrt()


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    return write_weights(tmp_path_factory.mktemp("adain") / "weights")


@pytest.fixture(scope="module")
def stage(weights_dir: Path) -> style.StyleStage:
    folder = weights_dir.parent
    write_style(folder / "a.png", 1)
    write_style(folder / "b.png", 2, size=(STYLE_SIZE_PX, 72))
    s = make_stage(folder, ["a.png", "b.png"], weights=weights_dir)
    s.load(CPU)
    return s


def test_adain_gives_the_content_the_style_statistics():
    gen = torch.Generator().manual_seed(3)
    f = 3.0 * torch.randn(1, 16, 8, 8, generator=gen, dtype=torch.float64) + 1.0
    mean = torch.randn(1, 16, 1, 1, generator=gen, dtype=torch.float64)
    std = torch.rand(1, 16, 1, 1, generator=gen, dtype=torch.float64) * 2 + 0.2
    t_mean, t_std = stats(style.adain(f, mean, std, alpha=1.0))
    torch.testing.assert_close(t_mean, mean.flatten(1), rtol=0, atol=1e-5)
    torch.testing.assert_close(t_std, std.flatten(1), rtol=0, atol=1e-5)


def test_alpha_interpolates_the_features_linearly():
    gen = torch.Generator().manual_seed(4)
    f = torch.randn(1, 8, 6, 5, generator=gen)  # (1, 8, 6, 5)
    mean, std = torch.randn(1, 8, 1, 1, generator=gen), torch.rand(1, 8, 1, 1, generator=gen)
    full = style.adain(f, mean, std, alpha=1.0)
    torch.testing.assert_close(style.adain(f, mean, std, alpha=0.3), 0.7 * f + 0.3 * full)
    torch.testing.assert_close(style.adain(f, mean, std, alpha=0.0), f)


def test_blend_weights_glide_and_normalise():
    assert style.blend_weights([0.0, 0.0, 0.0], 0.0) == [1.0, 0.0, 0.0]
    assert style.blend_weights([0.0, 0.0, 0.0], 1.5) == [0.0, 0.5, 0.5]
    assert style.blend_weights([0.5, 0.5, 0.0], -1.0) == [0.5, 0.5, 0.0]
    assert style.blend_weights([1.0, 0.0], 1.0) == [0.5, 0.5]
    assert style.blend_weights([0.0, 0.0], -1.0) is None


def test_styles_are_encoded_once_into_their_statistics(stage, weights_dir):
    encoder = style.make_encoder()
    state = torch.load(weights_dir / style.ENCODER_FILE, weights_only=True)
    encoder.load_state_dict({k: v for k, v in state.items() if int(k.split(".")[0]) < 31})
    folder = weights_dir.parent
    for i, name in enumerate(["a.png", "b.png"]):
        pixels = np.asarray(Image.open(folder / name).convert("RGB"), dtype=np.float32) / 255
        with torch.no_grad():
            f = encoder(torch.from_numpy(pixels).permute(2, 0, 1)[None])  # (1, 512, h, w)
        mean, std = stats(f)
        torch.testing.assert_close(stage.style_means[i], mean[0], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(stage.style_stds[i], (std[0] ** 2 + style.EPS).sqrt())


def test_decoder_features_carry_the_style_statistics(stage):
    frame = image(64, 48)
    t = decoder_input(stage, frame, {"style.select": 1.0})
    mean, std = stats(t)
    torch.testing.assert_close(mean[0], stage.style_means[1], rtol=1e-5, atol=1e-5)
    # The spread comes out as the style's std times sqrt(var / (var + EPS)): exact
    # to 1e-5 where the frame's own variance is above 1. A random encoder leaves some
    # channels flat (ReLU off everywhere), and a flat channel cannot take on a spread.
    with torch.no_grad():
        _, f_std = stats(stage.encoder(frame))  # (1, 512)
    live = f_std[0] ** 2 > 1.0
    assert live.sum() > 100
    torch.testing.assert_close(std[0][live], stage.style_stds[1][live], rtol=1e-5, atol=1e-5)


def test_decoder_receives_what_the_formula_says(stage, weights_dir):
    frame = image(48, 64, seed=5)  # whole pooling cells: no padding
    values = {"style.strength": 0.6, "style.select": -1.0, "style.0.weight": 0.25}
    values["style.1.weight"] = 0.75
    got = decoder_input(stage, frame, values)

    with torch.no_grad():
        f = stage.encoder(frame)  # (1, 512, 6, 8)
    f_mean, f_std = stats(f)
    f_mean, f_std = f_mean[..., None, None], (f_std**2 + style.EPS).sqrt()[..., None, None]
    mean = (0.25 * stage.style_means[0] + 0.75 * stage.style_means[1]).view(1, -1, 1, 1)
    std = (0.25 * stage.style_stds[0] + 0.75 * stage.style_stds[1]).view(1, -1, 1, 1)
    expected = 0.6 * (std * (f - f_mean) / f_std + mean) + 0.4 * f
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_weights_blend_the_statistics_and_select_glides(stage):
    frame = image(40, 40, seed=6)
    halves = {"style.select": -1.0, "style.0.weight": 0.5, "style.1.weight": 0.5}
    t = decoder_input(stage, frame, halves)
    blend = 0.5 * stage.style_means[0] + 0.5 * stage.style_means[1]
    torch.testing.assert_close(stats(t)[0][0], blend, rtol=1e-5, atol=1e-5)

    glide = decoder_input(stage, frame, {"style.select": 0.5})
    torch.testing.assert_close(glide, t)
    out_halves, _ = stage.process(frame, halves, RUN)
    out_glide, _ = stage.process(frame, {"style.select": 0.5}, RUN)
    torch.testing.assert_close(out_glide, out_halves)
    out_0, _ = stage.process(frame, {"style.select": 0.0}, RUN)
    assert (out_0 - out_halves).abs().mean() > 1e-3


def test_strength_zero_or_no_style_returns_the_frame_itself(stage):
    frame = image(32, 32)
    assert stage.process(frame, {"style.strength": 0.0}, RUN)[0] is frame
    assert stage.process(frame, {"style.select": -1.0}, RUN)[0] is frame
    assert torch.equal(frame, image(32, 32))


def test_output_has_the_frame_shape_for_any_size(stage):
    frame = image(37, 45, seed=7)
    out, steps = stage.process(frame, {}, RUN)
    assert out.shape == (1, 3, 37, 45) and out.dtype == torch.float32
    assert out.device == frame.device and steps == 0
    assert out.min() >= 0 and out.max() <= 1
    assert (out - frame).abs().mean() > 1e-3


def test_controls_are_named_after_the_stage_and_its_styles(stage):
    by_name = {c.name: c for c in stage.controls}
    assert set(by_name) == {"style.strength", "style.0.weight", "style.1.weight", "style.select"}
    assert (by_name["style.select"].lo, by_name["style.select"].hi) == (-1.0, 1.0)
    assert "b.png" in by_name["style.1.weight"].doc
    assert by_name["style.strength"].default == 1.0


def test_missing_style_image_is_a_config_error_naming_styles(tmp_path):
    write_style(tmp_path / "a.png", 1)
    with pytest.raises(ConfigError, match=r"'styles'.*nope\.png"):
        make_stage(tmp_path, ["a.png", "nope.png"])


def test_unknown_option_is_a_config_error(tmp_path):
    write_style(tmp_path / "a.png", 1)
    with pytest.raises(ConfigError, match="stlye_size"):
        make_stage(tmp_path, ["a.png"], extra="stlye_size = 128\n")


def test_missing_weights_say_how_to_pull_them(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTSTAGE_MODELS", str(tmp_path / "empty_cache"))
    write_style(tmp_path / "a.png", 1)
    stage = make_stage(tmp_path, ["a.png"])  # builds without weights
    with pytest.raises(GeneratorError, match=r"run_show\.py models pull adain"):
        stage.load(CPU)


def test_decoder_of_the_wrong_shape_names_the_file(tmp_path, weights_dir):
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / style.ENCODER_FILE).symlink_to(weights_dir / style.ENCODER_FILE)
    state = torch.load(weights_dir / style.DECODER_FILE, weights_only=True)
    state["1.weight"] = torch.zeros(128, 512, 3, 3)
    torch.save(state, folder / style.DECODER_FILE)
    write_style(tmp_path / "a.png", 1)
    stage = make_stage(tmp_path, ["a.png"], weights=folder)
    with pytest.raises(GeneratorError, match=r"decoder\.pth.*1\.weight"):
        stage.load(CPU)
