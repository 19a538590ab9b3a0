"""StyleGAN2/3: upstream parity, latent tools, presets, fallbacks, fp16 and batching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from runtime.errors import ConfigError
from runtime.generators import build_generator, build_with_fallback
from runtime.generators.base import Params
from runtime.generators.cppn import CppnGenerator
from runtime.generators.stylegan import StyleGANGenerator
from runtime.generators.stylegan2_net import StyleGAN2, StyleGAN2Config
from runtime.generators.stylegan3_net import StyleGAN3, StyleGAN3Config
from runtime.generators.stylegan_latents import PresetStore
from runtime.generators.stylegan_load import export_safetensors, load_network
from runtime.show import load_show
from tests.conftest import need_fixture

MODELS = ("sg2-tiny", "sg3t-tiny")
WS_TOLERANCE = 1e-5  # the manifest's tolerances (max absolute difference)
IMAGE_TOLERANCE = 1e-4


@pytest.fixture(scope="module", params=MODELS)
def model(request: pytest.FixtureRequest, fixtures_dir: Path):
    """(name, checkpoint path, reference arrays, loaded network)."""
    path = need_fixture(fixtures_dir, f"stylegan/{request.param}.pkl")
    ref_path = need_fixture(fixtures_dir, f"stylegan/{request.param}.ref.npz")
    with np.load(ref_path) as ref:
        arrays = {k: ref[k] for k in ref.files}
    return request.param, path, arrays, load_network(path)


@pytest.fixture(scope="module", params=MODELS)
def checkpoint(request: pytest.FixtureRequest, fixtures_dir: Path, tmp_path_factory):
    """(name, checkpoint path, loaded network) for the latent tools: the upstream
    fixture when it is here, else a random-weight network of the same architecture
    (the latent tools need a StyleGAN, not upstream's numbers)."""
    path = _checkpoint(request.param, fixtures_dir, tmp_path_factory)
    return request.param, path, load_network(path)


def _checkpoint(name: str, fixtures_dir: Path, tmp_path_factory) -> Path:
    upstream = fixtures_dir / "stylegan" / f"{name}.pkl"
    if upstream.exists():
        return upstream
    # The fixtures' architecture (MANIFEST.md), with random weights.
    kwargs = {
        "z_dim": 64,
        "c_dim": 0,
        "w_dim": 64,
        "img_resolution": 32,
        "img_channels": 3,
        "mapping_kwargs": {"num_layers": 2},
        "channel_base": 1024,
        "channel_max": 64,
        "num_fp16_res": 0,
        "conv_clamp": 256,
    }
    torch.manual_seed(0)
    if name == "sg2-tiny":
        net = StyleGAN2(StyleGAN2Config.from_upstream_kwargs(kwargs, ada=False))
    else:
        kwargs.update(conv_kernel=3, use_radial_filters=False, magnitude_ema_beta=0.999)
        net = StyleGAN3(StyleGAN3Config.from_upstream_kwargs(kwargs))
    with torch.no_grad():
        for name_, tensor in net.named_parameters():
            if name_.endswith("bias"):
                tensor.add_(0.1 * torch.randn_like(tensor))
        net.mapping.w_avg.copy_(0.5 * torch.randn_like(net.mapping.w_avg))
    path = tmp_path_factory.mktemp("random") / f"{name}.safetensors"
    export_safetensors(net.eval(), path)
    return path


def _max_diff(a: torch.Tensor, b: np.ndarray) -> float:
    return float(np.abs(a.detach().cpu().numpy() - b).max())


def _show(tmp_path: Path, weights: Path, options: str = "", size: int = 32) -> Path:
    path = tmp_path / "show.toml"
    path.write_text(
        "[generator]\n"
        'kind = "stylegan"\n'
        f'weights = "{weights}"\n'
        f"size = {size}\n"
        'device = "cpu"\n'
        "directions = 2\n"
        "direction_samples = 500\n" + options
    )
    return path


def _gen(tmp_path: Path, weights: Path, options: str = "", size: int = 32) -> StyleGANGenerator:
    gen = build_generator(load_show(_show(tmp_path, weights, options, size)).generator)
    assert isinstance(gen, StyleGANGenerator)
    return gen


# ---- upstream parity ---------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("psi", [1.0, 0.7])
def test_mapping_and_synthesis_match_upstream(model, seed: int, psi: float) -> None:
    _, _, ref, net = model
    z = torch.from_numpy(ref[f"z_seed{seed}"])
    with torch.no_grad():
        w = net.mapping(z)  # (1, D)
        ws = w[:, None].repeat(1, net.num_ws, 1)
        if psi != 1.0:
            ws = net.mapping.w_avg.lerp(ws, psi)
        assert _max_diff(ws, ref[f"ws_seed{seed}_psi{psi}"]) <= WS_TOLERANCE
        ref_ws = torch.from_numpy(ref[f"ws_seed{seed}_psi{psi}"])
        img = net.synthesize(ref_ws, net.const_noise())
    assert img.shape == ref[f"img_seed{seed}_psi{psi}"].shape
    assert _max_diff(img, ref[f"img_seed{seed}_psi{psi}"]) <= IMAGE_TOLERANCE


def test_lerp_fixture_and_w_avg_match_upstream(model) -> None:
    _, _, ref, net = model
    assert _max_diff(net.mapping.w_avg, ref["w_avg"]) == 0.0
    ws = 0.5 * (torch.from_numpy(ref["ws_seed0_psi1.0"]) + torch.from_numpy(ref["ws_seed1_psi1.0"]))
    with torch.no_grad():
        img = net.synthesize(ws, net.const_noise())
    assert _max_diff(img, ref["img_lerp_seed0_seed1_psi1.0_half"]) <= IMAGE_TOLERANCE


@pytest.mark.parametrize("psi", [1.0, 0.7])
def test_generator_frames_match_upstream(model, tmp_path: Path, psi: float) -> None:
    # The whole path: seed keyframe -> z -> w -> truncation -> synthesis -> [0, 1].
    _, path, ref, _ = model
    gen = _gen(tmp_path, path, f"keyframes = [1, 2]\ntruncation = {psi}\n")
    params = Params(0, 0.0, {"latent.speed": 0.0})
    assert _max_diff(gen.latent(params)[None], ref[f"ws_seed1_psi{psi}"]) <= WS_TOLERANCE
    expected = np.clip(ref[f"img_seed1_psi{psi}"][0] * 0.5 + 0.5, 0, 1)
    assert _max_diff(gen.render(params), expected) <= IMAGE_TOLERANCE / 2


def test_w_walk_halfway_matches_upstream_lerp(model, tmp_path: Path) -> None:
    _, path, ref, _ = model
    gen = _gen(tmp_path, path, "keyframes = [0, 1]\ntruncation = 1.0\n")
    frame = gen.render(Params(0, 0.0, {"latent.phase": 0.5}))
    expected = np.clip(ref["img_lerp_seed0_seed1_psi1.0_half"][0] * 0.5 + 0.5, 0, 1)
    assert _max_diff(frame, expected) <= IMAGE_TOLERANCE / 2


def test_safetensors_export_loads_without_pickle(model, tmp_path: Path) -> None:
    _, _, ref, net = model
    out = tmp_path / "model.safetensors"
    export_safetensors(net, out)
    again = load_network(out)
    ws = torch.from_numpy(ref["ws_seed2_psi0.7"])
    with torch.no_grad():
        assert _max_diff(again.synthesize(ws, again.const_noise()), ref["img_seed2_psi0.7"]) <= (
            IMAGE_TOLERANCE
        )


# ---- fallback ----------------------------------------------------------------------


def test_missing_or_corrupt_weights_fall_back_to_cppn(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pkl"
    gen, problem = build_with_fallback(load_show(_show(tmp_path, missing)).generator)
    assert isinstance(gen, CppnGenerator)
    assert problem is not None and str(missing) in problem and "not found" in problem
    frame = gen.render(Params(0, 0.0, {}))
    assert frame.shape == (3, 32, 32)
    corrupt = tmp_path / "corrupt.pkl"
    corrupt.write_bytes(b"\x80\x04\x95 garbage")
    gen, problem = build_with_fallback(load_show(_show(tmp_path, corrupt)).generator)
    assert isinstance(gen, CppnGenerator)
    assert problem is not None and str(corrupt) in problem


def test_option_mistakes_are_config_errors(model, tmp_path: Path) -> None:
    _, path, _, _ = model
    with pytest.raises(ConfigError, match="walks"):
        _gen(tmp_path, path, "walks = 'z'\n")
    with pytest.raises(ConfigError, match="layer_groups"):
        _gen(tmp_path, path, "layer_groups = { coarse = [0, 99] }\n")
    with pytest.raises(ConfigError, match="not a seed"):
        _gen(tmp_path, path, "keyframes = [1, 'sunset']\n")
    with pytest.raises(ConfigError, match="needs every keyframe to be a seed"):
        np.save(tmp_path / "w.npy", np.zeros(64, dtype=np.float32))
        _gen(tmp_path, path, "keyframes = [1, 'w.npy']\nwalk = 'z'\n")
    np.save(tmp_path / "bad.npy", np.zeros((3, 64), dtype=np.float32))
    with pytest.raises(ConfigError, match="shape"):
        _gen(tmp_path, path, "direction_files = ['bad.npy']\n")


# ---- latent walks ------------------------------------------------------------------


def test_walks_are_continuous_and_deterministic(checkpoint, tmp_path: Path) -> None:
    _, path, _ = checkpoint
    for walk in ("w", "w_smooth", "z"):
        gen = _gen(tmp_path, path, f"keyframes = [0, 1, 2]\nwalk = '{walk}'\n")
        frames = [gen.render(Params(i, 0.0, {"latent.phase": 0.3 + i * 1e-3})) for i in range(3)]
        small = (frames[1] - frames[0]).abs().max().item()
        far = gen.render(Params(9, 0.0, {"latent.phase": 1.3}))
        large = (far - frames[0]).abs().max().item()
        assert small < 0.02, walk
        assert large > 20 * small, walk
        again = _gen(tmp_path, path, f"keyframes = [0, 1, 2]\nwalk = '{walk}'\n")
        assert torch.equal(again.render(Params(1, 0.0, {"latent.phase": 0.301})), frames[1])


def test_walk_passes_through_keyframes_and_loops(checkpoint, tmp_path: Path) -> None:
    _, path, _ = checkpoint
    for walk in ("w", "w_smooth", "z"):
        gen = _gen(tmp_path, path, f"keyframes = [4, 5, 6]\nwalk = '{walk}'\ntruncation = 1.0\n")
        keys = gen.latents.keys
        for i in range(3):
            ws = gen.latent(Params(0, 0.0, {"latent.phase": float(i)}))
            assert torch.allclose(ws, keys[i], atol=1e-5), walk
        position = gen.latent(Params(0, 0.0, {"latent.position": 2 / 3}))
        assert torch.allclose(position, keys[2], atol=1e-5)
        loop = gen.latent(Params(0, 0.0, {"latent.phase": 3.0}))
        assert torch.allclose(loop, keys[0], atol=1e-5)


def test_plane_spans_keyframes(checkpoint, tmp_path: Path) -> None:
    _, path, _ = checkpoint
    gen = _gen(tmp_path, path, "keyframes = [0, 1, 2, 3]\ntruncation = 1.0\n")
    keys = gen.latents.keys
    for axis, index in (("x", 1), ("y", 2), ("z", 3)):
        ws = gen.latent(Params(0, 0.0, {f"latent.plane.{axis}": 1.0}))
        assert torch.allclose(ws, keys[index], atol=1e-5)
    ws = gen.latent(Params(0, 0.0, {"latent.plane.x": 0.5, "latent.plane.y": 0.5}))
    assert torch.allclose(ws, keys[0] + 0.5 * (keys[1] - keys[0]) + 0.5 * (keys[2] - keys[0]))


# ---- per-layer controls ------------------------------------------------------------


def _changed_rows(a: torch.Tensor, b: torch.Tensor) -> list[int]:
    return [i for i in range(a.shape[0]) if not torch.equal(a[i], b[i])]


def test_per_layer_targets_change_only_their_layers(checkpoint, tmp_path: Path) -> None:
    _, path, net = checkpoint
    gen = _gen(tmp_path, path, "keyframes = [0, 1, 2]\n")
    groups = gen.latents.groups
    assert groups["coarse"][0] == 0 and groups["fine"][1] == net.num_ws
    base = gen.latent(Params(0, 0.0, {}))
    for group, (lo, hi) in groups.items():
        expected = list(range(lo, hi))
        for target, value in (
            (f"latent.{group}.position", 0.3),
            (f"latent.mix.{group}", 1.0),
            (f"latent.direction.0.{group}", 2.0),
        ):
            moved = gen.latent(Params(0, 0.0, {target: value}))
            assert _changed_rows(base, moved) == expected, target
    everywhere = gen.latent(Params(0, 0.0, {"latent.direction.1": 1.0}))
    assert _changed_rows(base, everywhere) == list(range(net.num_ws))


def test_style_mixing_takes_layers_from_the_mix_source(checkpoint, tmp_path: Path) -> None:
    _, path, _ = checkpoint
    gen = _gen(tmp_path, path, "keyframes = [0, 1]\ntruncation = 1.0\n")
    lo, hi = gen.latents.groups["fine"]
    mixed = gen.latent(Params(0, 0.0, {"latent.mix.fine": 1.0, "latent.mix.position": 0.5}))
    keys = gen.latents.keys
    assert torch.equal(mixed[lo:hi], keys[1][lo:hi])
    assert torch.equal(mixed[:lo], keys[0][:lo])


def test_custom_layer_groups(checkpoint, tmp_path: Path) -> None:
    _, path, _ = checkpoint
    gen = _gen(tmp_path, path, "layer_groups = { coarse = [0, 0], middle = [1, 2] }\n")
    assert gen.latents.groups["coarse"] == (0, 1)
    assert gen.latents.groups["middle"] == (1, 3)


def test_directions(checkpoint, tmp_path: Path) -> None:
    _, path, net = checkpoint
    direction = np.random.default_rng(0).standard_normal(net.w_dim).astype(np.float32)
    np.save(tmp_path / "Smile v2.npy", direction)
    gen = _gen(tmp_path, path, "direction_files = ['Smile v2.npy']\n")
    names = [c.name for c in gen.controls]
    assert "latent.direction.0" in names and "latent.direction.1" in names
    assert "latent.direction.smile_v2" in names and "latent.direction.smile_v2.fine" in names
    base = gen.latent(Params(0, 0.0, {}))
    moved = gen.latent(Params(0, 0.0, {"latent.direction.smile_v2": 2.0}))
    assert torch.allclose(
        moved - base, 2.0 * torch.from_numpy(direction).expand_as(base), atol=1e-5
    )
    pca = gen.latents.directions[:2, 0]  # (2, D): principal directions, one std each
    cos = torch.nn.functional.cosine_similarity(pca[0], pca[1], dim=0)
    assert abs(cos.item()) < 1e-4
    assert pca[0].norm() >= pca[1].norm()
    again = _gen(tmp_path, path, "direction_files = ['Smile v2.npy']\n")
    assert torch.equal(again.latents.directions, gen.latents.directions)


# ---- presets -----------------------------------------------------------------------


def test_presets_round_trip(checkpoint, tmp_path: Path) -> None:
    _, path, net = checkpoint
    gen = _gen(tmp_path, path, "keyframes = [0, 1, 2]\npresets = 'looks.npz'\n")
    params = Params(0, 0.0, {"latent.phase": 1.37, "latent.direction.0": 1.5})
    snapshot = gen.latent(params)
    gen.save_preset("dawn", params)
    store = PresetStore(tmp_path / "looks.npz", net.num_ws, net.w_dim)
    assert store.names() == ["dawn"]
    assert torch.equal(store.presets["dawn"], snapshot)
    # Recall in a new generator, and use the preset as a keyframe.
    again = _gen(tmp_path, path, "keyframes = [5, 'dawn']\npresets = 'looks.npz'\n")
    recalled = again.latent(Params(0, 0.0, {"latent.preset.amount": 1.0}))
    assert torch.equal(recalled, snapshot)
    assert torch.equal(again.latents.keys[1], snapshot)
    frame = again.render(Params(0, 0.0, {"latent.preset.amount": 1.0}))
    assert torch.allclose(frame, gen.render(params), atol=1e-6)


def test_preset_save_trigger_and_foreign_entries_kept(checkpoint, tmp_path: Path) -> None:
    _, path, _ = checkpoint
    np.savez(tmp_path / "looks.npz", other=np.zeros((3, 5), dtype=np.float32))
    gen = _gen(tmp_path, path, "presets = 'looks.npz'\n")
    assert gen.latents.presets.names() == []
    gen.render(Params(0, 0.0, {"latent.preset.saves": 0.0}))
    gen.render(Params(1, 0.0, {"latent.preset.saves": 1.0, "latent.phase": 0.5}))
    gen.render(Params(2, 0.0, {"latent.preset.saves": 1.0}))
    gen.render(Params(3, 0.0, {"latent.preset.saves": 2.0}))
    with np.load(tmp_path / "looks.npz") as saved:
        assert saved.files == ["other", "take-1", "take-2"]
        assert saved["other"].shape == (3, 5)
        take1 = saved["take-1"]
    expected = gen.latent(Params(1, 0.0, {"latent.phase": 0.5}))
    assert np.array_equal(take1, expected.numpy())
    assert gen.latents.presets.names() == ["take-1", "take-2"]


def test_preset_save_failure_keeps_playing(checkpoint, tmp_path: Path) -> None:
    _, path, _ = checkpoint
    (tmp_path / "blocker").write_text("a file where the preset folder should be")
    gen = _gen(tmp_path, path, "presets = 'blocker/looks.npz'\n")
    frame = gen.render(Params(0, 0.0, {"latent.preset.saves": 1.0}))
    assert frame.shape == (3, 32, 32)
    assert gen.preset_save_errors == 1
    gen.render(Params(1, 0.0, {"latent.preset.saves": 2.0}))
    assert gen.preset_save_errors == 2
    assert (tmp_path / "blocker").read_text().startswith("a file")


# ---- noise, transforms, batches, precision -----------------------------------------


def test_noise_modes(tmp_path_factory, fixtures_dir: Path, tmp_path: Path) -> None:
    path = _checkpoint("sg2-tiny", fixtures_dir, tmp_path_factory)

    def gen(mode: str) -> StyleGANGenerator:
        # The fixture's learned noise strengths are 0 (upstream's init): give the
        # noise inputs some weight so noise shows.
        g = _gen(tmp_path, path, f"noise = '{mode}'\n")
        for layer in g.network.synthesis.noise_layers():
            layer.noise_strength.data.fill_(0.3)
        return g

    const = gen("const")
    none = gen("none")
    off = const.render(Params(0, 0.0, {"gen.noise.strength": 0.0}))
    assert torch.allclose(off, none.render(Params(0, 0.0, {})), atol=1e-6)
    assert not torch.allclose(off, const.render(Params(0, 0.0, {})), atol=1e-3)
    rand = gen("random")
    a, b = rand.render(Params(5, 0.0, {})), rand.render(Params(6, 0.0, {}))
    assert not torch.equal(a, b)
    assert torch.equal(a, rand.render(Params(5, 0.0, {})))
    animated = gen("animated")
    names = [c.name for c in animated.controls]
    assert "gen.noise.speed" in names
    start = animated.render(Params(0, 0.0, {"gen.noise.phase": 0.0}))
    assert torch.allclose(start, const.render(Params(0, 0.0, {})), atol=1e-6)
    step = animated.render(Params(1, 0.0, {"gen.noise.phase": 0.001}))
    quarter = animated.render(Params(2, 0.0, {"gen.noise.phase": 0.25}))
    assert (step - start).abs().max() < 0.1 * (quarter - start).abs().max()


def test_stylegan3_shift_moves_the_image(
    tmp_path_factory, fixtures_dir: Path, tmp_path: Path
) -> None:
    path = _checkpoint("sg3t-tiny", fixtures_dir, tmp_path_factory)
    gen = _gen(tmp_path, path)
    assert "gen.noise.strength" not in [c.name for c in gen.controls]
    base = gen.render(Params(0, 0.0, {}))
    moved = gen.render(Params(0, 0.0, {"gen.shift.x": 4 / 32, "gen.shift.y": 2 / 32}))
    # Alias-free: a shift by whole pixels moves the picture by those pixels.
    inner = (moved[:, 10:26, 12:28] - base[:, 8:24, 8:24]).abs().max().item()
    assert inner < 1e-3 < (moved - base).abs().max().item()
    turned = gen.render(Params(0, 0.0, {"gen.rotate": 0.5}))
    assert (turned - base).abs().max().item() > 1e-3


def test_batched_rendering_matches_single_frames(checkpoint, tmp_path: Path) -> None:
    _, path, _ = checkpoint
    gen = _gen(tmp_path, path, "noise = 'random'\n" if checkpoint[0] == "sg2-tiny" else "")
    params = [
        Params(i, i / 30, {"latent.phase": 0.2 * i, "gen.truncation": 0.5 + 0.1 * i})
        for i in range(5)
    ]
    batch = gen.render_batch(params, max_batch=3)
    assert batch.shape == (5, 3, 32, 32)
    for i, p in enumerate(params):
        assert torch.allclose(batch[i], gen.render(p), atol=1e-5)


def test_frames_fit_the_show_size(checkpoint, tmp_path: Path) -> None:
    _, path, _ = checkpoint
    wide = _gen(tmp_path, path, size=16).render(Params(0, 0.0, {}))
    assert wide.shape == (3, 16, 16)
    gen = build_generator(load_show(_write_size(tmp_path, path, "[48, 24]")).generator)
    frame = gen.render(Params(0, 0.0, {}))
    assert frame.shape == (3, 24, 48)
    assert frame.min() >= 0.0 and frame.max() <= 1.0


def _write_size(tmp_path: Path, weights: Path, size: str) -> Path:
    path = tmp_path / "wide.toml"
    path.write_text(
        f'[generator]\nkind = "stylegan"\nweights = "{weights}"\nsize = {size}\n'
        'device = "cpu"\ndirections = 0\n'
    )
    return path


def _random_sg2(num_fp16_res: int) -> StyleGAN2:
    torch.manual_seed(0)
    config = StyleGAN2Config.from_upstream_kwargs(
        {
            "z_dim": 32,
            "c_dim": 0,
            "w_dim": 32,
            "img_resolution": 32,
            "img_channels": 3,
            "mapping_kwargs": {"num_layers": 2},
            "channel_base": 512,
            "channel_max": 32,
            "num_fp16_res": num_fp16_res,
        },
        ada=False,
    )
    return StyleGAN2(config).eval()


def _random_sg3(radial: bool) -> StyleGAN3:
    torch.manual_seed(0)
    config = StyleGAN3Config.from_upstream_kwargs(
        {
            "z_dim": 32,
            "c_dim": 0,
            "w_dim": 32,
            "img_resolution": 16,
            "img_channels": 3,
            "mapping_kwargs": {"num_layers": 2},
            "channel_base": 512,
            "channel_max": 32,
            "num_fp16_res": 2,
            "conv_kernel": 1 if radial else 3,
            "use_radial_filters": radial,
        }
    )
    return StyleGAN3(config).eval()


@pytest.mark.parametrize(
    "make", [lambda: _random_sg2(2), lambda: _random_sg3(False), lambda: _random_sg3(True)]
)
def test_fp16_path_stays_close_to_fp32(make) -> None:
    # Upstream runs float16 only on CUDA; the same code path runs on the CPU here.
    net = make()
    ws = net.mapping(torch.randn(2, net.z_dim))[:, None].repeat(1, net.num_ws, 1)
    with torch.no_grad():
        full = net.synthesize(ws, net.const_noise())
        net.prepare(fp16=True, channels_last=True)
        half = net.synthesize(ws, net.const_noise())
    assert half.dtype == torch.float32
    scale = full.abs().max().item()
    error = (half - full).abs().max().item()
    assert 0 < error < 0.02 * scale
