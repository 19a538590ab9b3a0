"""BigGAN: upstream parity, classes and blends, the noise walk, broken weights."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from runtime.config import Table
from runtime.errors import ConfigError, GeneratorError
from runtime.generators import build_with_fallback
from runtime.generators.base import Params
from runtime.generators.biggan import (
    BigGanConfig,
    build,
    class_index,
    imagenet_classes,
    load_folder,
    random_state_dict,
    truncated_noise,
)
from runtime.show import GeneratorConfig
from tests.conftest import need_fixture

CPU = torch.device("cpu")


def small_config(width: int = 8) -> BigGanConfig:
    """A BigGAN-deep of 32 px (attention at 16 px): fast tests."""
    layers = (
        (False, 16, 8),
        (True, 8, 4),
        (False, 4, 2),
        (True, 2, 2),
        (False, 2, 1),
        (True, 1, 1),
    )
    return BigGanConfig(
        output_dim=32, channel_width=width, layers=layers, attention_layer_position=4
    )


def write_folder(folder: Path, width: int = 8, seed: int = 1) -> Path:
    """A random-weight pytorch-pretrained-biggan folder of a small network."""
    folder.mkdir(parents=True, exist_ok=True)
    config = small_config(width)
    (folder / "config.json").write_text(json.dumps(config.to_json()))
    torch.save(random_state_dict(config, seed=seed), folder / "pytorch_model.bin")
    return folder


def generator_config(weights: Path | None, **options) -> GeneratorConfig:
    table = Table(options, file=Path("show.toml"), text="", name="generator", header="generator")
    return GeneratorConfig("biggan", 7, (128, 128), weights, "cpu", table)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_folder(tmp_path_factory.mktemp("biggan") / "tiny")


@pytest.fixture(scope="module")
def gen(folder):
    return build(generator_config(folder, classes=["goldfinch", 207], seeds=[1, 2, 3]), CPU)


# Parity ---------------------------------------------------------------------------


def test_fixture_parity(fixtures_dir):
    """The upstream-made reference images, within the manifest's 1e-4."""
    ref_path = need_fixture(fixtures_dir, "biggan-tiny/ref.npz")
    need_fixture(fixtures_dir, "biggan-tiny/config.json")
    need_fixture(fixtures_dir, "biggan-tiny/pytorch_model.bin")
    ref = np.load(ref_path)
    net = load_folder(ref_path.parent)
    with torch.no_grad():
        img = net(
            torch.from_numpy(ref["z"]),
            torch.from_numpy(ref["class_vectors"]),
            float(ref["truncation"]),
        )
    assert img.shape == ref["img"].shape
    assert np.abs(img.numpy() - ref["img"]).max() < 1e-4


def test_seed_noise_matches_upstream_sampler(fixtures_dir):
    """Seed 3 gives the z of upstream's truncated_noise_sample(seed=3) (its first row)."""
    ref = np.load(need_fixture(fixtures_dir, "biggan-tiny/ref.npz"))
    z = truncated_noise(3) * float(ref["truncation"])
    assert np.abs(z.numpy() - ref["z"][0]).max() < 1e-6
    assert truncated_noise(3).abs().max() <= 2.0


def test_upstream_statistics_blend_is_reproduced(folder):
    """For t / step = k + f upstream weights entry k by f and entry k + 1 by 1 - f
    (entry k alone when f is 0); the linear blend weights them the other way."""
    net = load_folder(folder)
    w = net.stats_weights([0.4, 0.373, 1.0])
    assert w[0, 20] == 1.0 and w[2, 50] == 1.0 and w.sum(1).allclose(torch.ones(3))
    assert w[1, 18] == pytest.approx(0.65) and w[1, 19] == pytest.approx(0.35)
    linear = net.stats_weights([0.373, 1.0], "linear")
    assert linear[0, 18] == pytest.approx(0.35) and linear[0, 19] == pytest.approx(0.65)
    assert linear[1, 50] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        net.stats_weights([1.2])


def test_linear_statistics_are_continuous_in_truncation(folder):
    net = load_folder(folder)
    z = truncated_noise(0).unsqueeze(0)
    onehot = torch.nn.functional.one_hot(torch.tensor([5]), 1000).float()

    def image(t: float, stats: str) -> torch.Tensor:
        with torch.no_grad():
            return net(z * t, onehot, t, stats=stats)

    # Across the grid point 0.42 the upstream blend jumps by a whole statistics step;
    # the linear blend moves by about as much as the noise scaling alone.
    jump_up = (image(0.42 - 1e-6, "upstream") - image(0.42, "upstream")).abs().max()
    jump_lin = (image(0.42 - 1e-6, "linear") - image(0.42, "linear")).abs().max()
    assert jump_lin < 1e-4 < jump_up


# Classes --------------------------------------------------------------------------


def test_class_by_name_and_by_index_give_the_same_vector(folder):
    by_name = build(generator_config(folder, classes=["Goldfinch"], seeds=[1, 2]), CPU)
    by_index = build(generator_config(folder, classes=[11], seeds=[1, 2]), CPU)
    a = by_name.inputs(Params(0, 0.0))[1]
    b = by_index.inputs(Params(0, 0.0))[1]
    assert torch.equal(a, b) and a[11] == 1.0 and a.sum() == 1.0
    assert torch.equal(by_name.render(Params(0, 0.0)), by_index.render(Params(0, 0.0)))


def test_class_names_errors():
    names = imagenet_classes()
    assert len(names) == 1000 and names[11] == "goldfinch"
    assert class_index("great  white SHARK", names) == 2
    assert class_index("Cardigan", names) == 264  # the corgi
    assert class_index("cardigan", names) == 474  # the sweater
    with pytest.raises(ValueError, match=r"'Cardigan' \(264\), 'cardigan' \(474\)"):
        class_index("CARDIGAN", names)
    with pytest.raises(ValueError, match=r"did you mean 'goldfinch'"):
        class_index("goldfnch", names)
    with pytest.raises(ValueError, match=r"outside 0\.\.999"):
        class_index(1000, names)


def test_bad_class_in_show_names_the_key(folder):
    with pytest.raises(ConfigError, match=r"\[generator\] 'classes'.*goldfnch"):
        build(generator_config(folder, classes=["goldfnch"]), CPU)


def test_unknown_option_is_an_error(folder):
    with pytest.raises(ConfigError, match=r"'clases': unknown key \(did you mean 'classes'\?\)"):
        build(generator_config(folder, clases=["goldfinch"]), CPU)


def test_class_weights_are_targets_and_blend(gen):
    names = {c.name: c for c in gen.controls}
    assert "goldfinch" in names["class.0.weight"].doc
    assert "golden retriever" in names["class.1.weight"].doc
    half = gen.inputs(Params(0, 0.0, {"class.0.weight": 0.5, "class.1.weight": 0.5}))[1]
    assert half[11] == 0.5 and half[207] == 0.5 and half.sum() == 1.0
    # Two full weights blend half and half: a blend never leaves the trained range.
    full = gen.inputs(Params(0, 0.0, {"class.0.weight": 1.0, "class.1.weight": 1.0}))[1]
    assert torch.equal(full, half)
    faded = gen.inputs(Params(0, 0.0, {"class.0.weight": 0.25}))[1]
    assert faded[11] == 0.25 and faded.sum() == 0.25
    only_a = gen.render(Params(0, 0.0))
    only_b = gen.render(Params(0, 0.0, {"class.0.weight": 0.0, "class.1.weight": 1.0}))
    mixed = gen.render(Params(0, 0.0, {"class.0.weight": 0.5, "class.1.weight": 0.5}))
    assert (only_a - only_b).abs().max() > 0.01
    assert (mixed - only_a).abs().max() > 0.001 and (mixed - only_b).abs().max() > 0.001


# The noise walk ---------------------------------------------------------------------


def test_walk_passes_through_the_seed_keyframes(gen):
    for k, seed in enumerate([1, 2, 3]):
        z, _, t = gen.inputs(Params(0, 0.0, {"latent.phase": float(k), "gen.truncation": 0.5}))
        assert t == 0.5
        assert torch.allclose(z, truncated_noise(seed) * 0.5, atol=1e-5)
    loop = gen.inputs(Params(0, 0.0, {"latent.phase": 3.0}))[0]
    assert torch.allclose(loop, gen.inputs(Params(0, 0.0))[0], atol=1e-6)  # a closed loop


def test_walk_is_continuous_and_deterministic(gen, folder):
    def frame(phase: float) -> torch.Tensor:
        return gen.render(Params(0, 0.0, {"latent.phase": phase}))

    base = frame(0.9)
    assert torch.equal(base, frame(0.9))
    again = build(generator_config(folder, classes=["goldfinch", 207], seeds=[1, 2, 3]), CPU)
    assert torch.equal(base, again.render(Params(0, 0.0, {"latent.phase": 0.9})))
    # Through a keyframe (phase 1.0): small steps make small changes, shrinking with
    # the step.
    steps = [(frame(p + 1e-3) - frame(p)).abs().max().item() for p in (0.9995, 1.0)]
    far = (frame(2.0) - frame(1.0)).abs().max().item()
    small = (frame(0.9995 + 1e-4) - frame(0.9995)).abs().max().item()
    assert max(steps) < far / 20
    assert small < max(steps)


def test_walk_controls_integrate_and_step(gen):
    names = {c.name: c for c in gen.controls}
    assert names["latent.speed"].integrates == "latent.phase"
    assert names["latent.hop"].steps == "latent.phase"
    assert names["gen.truncation"].lo > 0 and names["gen.truncation"].hi == 1.0
    low = gen.inputs(Params(0, 0.0, {"gen.truncation": -3.0}))[2]
    assert low == names["gen.truncation"].lo  # clamped: upstream needs 0 < t <= 1


def test_directions_move_the_noise(gen):
    z0 = gen.inputs(Params(0, 0.0))[0]
    z1 = gen.inputs(Params(0, 0.0, {"latent.direction.2": 1.0}))[0]
    z2 = gen.inputs(Params(0, 0.0, {"latent.direction.2": 2.0}))[0]
    along = torch.nn.functional.cosine_similarity(z1 - z0, gen.directions[2], dim=0)
    assert along > 0.9  # along the direction, but for the few clamped entries
    assert 0.5 < (z1 - z0).norm() < (z2 - z0).norm()
    assert z2.abs().max() <= 2.0 * 0.4 + 1e-6  # stays in the truncated range


def test_render_batch_matches_single_frames(gen):
    params = [
        Params(0, 0.0, {"latent.phase": 0.3, "gen.truncation": 0.3}),
        Params(1, 0.0, {"latent.phase": 1.7, "gen.truncation": 0.9, "class.1.weight": 0.6}),
    ]
    batch = gen.render_batch(params)
    assert batch.shape == (2, 3, 32, 32) and batch.dtype == torch.float32
    assert batch.min() >= 0.0 and batch.max() <= 1.0 and batch.std() > 0.01
    for i, p in enumerate(params):
        assert torch.allclose(batch[i], gen.render(p), atol=1e-5)


def test_half_precision_path_stays_close_to_float32(folder):
    """The CUDA path's float16 and channels-last layout, run on the CPU."""
    net = load_folder(folder)
    z = torch.stack([truncated_noise(1), truncated_noise(2)]) * 0.5
    classes = torch.nn.functional.one_hot(torch.tensor([11, 207]), 1000).float()
    with torch.no_grad():
        expected = net(z, classes, 0.5)
        net.set_precision(half=True, channels_last=True)
        assert net.rgb_w.dtype == torch.float16 and net.mod_w.dtype == torch.float32
        half = net(z, classes, [0.5, 0.5])
        net.set_precision(half=False, channels_last=False)
        back = net(z, classes, 0.5)
    assert half.dtype == torch.float32 and (half - expected).abs().max() < 1e-2
    assert torch.equal(back, expected)  # the float32 weights come back exactly


def test_non_finite_half_frame_falls_back_to_float32(folder, caplog):
    gen = build(generator_config(folder, classes=["goldfinch"], seeds=[1, 2]), CPU)
    # Weights beyond float16's range: inf in half precision, fine in float32.
    gen.net.block0_conv3_w *= 1e6
    expected = gen.render(Params(0, 0.0))
    gen._half = True  # as on CUDA
    gen.net.set_precision(half=True, channels_last=False)
    frame = gen.render(Params(0, 0.0))
    assert torch.isfinite(frame).all() and torch.equal(frame, expected)
    assert not gen._half and gen.net.rgb_w.dtype == torch.float32
    assert "float32 from now on" in caplog.text


# Broken weights -----------------------------------------------------------------------


def test_missing_folder_names_the_layout(tmp_path):
    with pytest.raises(GeneratorError, match=r"nothere: folder not found.*config.json"):
        load_folder(tmp_path / "nothere")
    file = tmp_path / "model.bin"
    file.write_bytes(b"x")
    with pytest.raises(GeneratorError, match="not a single file"):
        load_folder(file)


def test_missing_and_corrupt_files_name_the_file(tmp_path, folder):
    broken = tmp_path / "broken"
    broken.mkdir()
    with pytest.raises(GeneratorError, match=r"broken/config.json: file not found"):
        load_folder(broken)
    (broken / "config.json").write_text((folder / "config.json").read_text())
    with pytest.raises(GeneratorError, match=r"broken/pytorch_model.bin: file not found"):
        load_folder(broken)
    data = (folder / "pytorch_model.bin").read_bytes()
    (broken / "pytorch_model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(GeneratorError, match=r"pytorch_model.bin: not a readable PyTorch"):
        load_folder(broken)
    (broken / "config.json").write_text("{not json")
    with pytest.raises(GeneratorError, match=r"config.json: not a readable JSON"):
        load_folder(broken)
    config = json.loads((folder / "config.json").read_text())
    del config["z_dim"]
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(GeneratorError, match=r"config.json: missing 'z_dim'"):
        load_folder(broken)


def test_wrong_tensor_shape_names_the_tensor(tmp_path, folder):
    other = write_folder(tmp_path / "wide", width=16)
    (other / "config.json").write_text((folder / "config.json").read_text())
    with pytest.raises(GeneratorError, match=r"'embeddings.weight'|'generator.gen_z"):
        load_folder(other)


class _RunsCode:
    """Unpickling this would call os.system: a checkpoint trying to run code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_that_runs_code_is_refused(tmp_path, folder):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text((folder / "config.json").read_text())
    marker = tmp_path / "ran"
    with open(bad / "pytorch_model.bin", "wb") as f:
        pickle.dump({"embeddings.weight": _RunsCode(marker)}, f, protocol=2)
    with pytest.raises(GeneratorError, match="not a readable PyTorch state dict"):
        load_folder(bad)
    assert not marker.exists()


def test_broken_weights_fall_back_to_the_default_generator(tmp_path):
    generator, problem = build_with_fallback(generator_config(tmp_path / "absent"))
    assert generator.kind == "cppn"
    assert "absent: folder not found" in problem and "cppn" in problem
    frame = generator.render(Params(0, 0.0))
    assert frame.shape == (3, 128, 128)  # the show's size


@pytest.mark.gpu
def test_cuda_fp16_channels_last_matches_cpu(folder):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    options = {"classes": ["goldfinch", 207], "seeds": [1, 2, 3]}
    cpu = build(generator_config(folder, **options), CPU)
    cuda = build(generator_config(folder, **options), torch.device("cuda"))
    assert cuda.net.rgb_w.dtype == torch.float16
    assert cuda.net.rgb_w.is_contiguous(memory_format=torch.channels_last)
    params = [Params(i, 0.0, {"latent.phase": 0.4 * i, "class.1.weight": 0.3}) for i in range(3)]
    expected = cpu.render_batch(params)
    got = cuda.render_batch(params)
    assert got.device.type == "cuda" and got.dtype == torch.float32
    assert (got.cpu() - expected).abs().max() < 2e-2
    assert (cuda.render(params[1]).cpu() - expected[1]).abs().max() < 2e-2
