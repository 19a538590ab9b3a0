"""Safe checkpoint reading: NVlabs pickles as plain data, code never runs."""

from __future__ import annotations

import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from runtime.errors import GeneratorError
from runtime.generators.checkpoints import (
    NetworkRecord,
    read_nvlabs_pickle,
    read_state_dict,
    save_safetensors,
)
from runtime.generators.stylegan_load import load_network
from tests.conftest import need_fixture


class _RunsCode:
    """Unpickling this calls os.system, which writes a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _fake_persistence(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A stand-in torch_utils.persistence so a test can write the NVlabs call."""
    package = types.ModuleType("torch_utils")
    module = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):  # never called: only its name is pickled
        raise AssertionError("not to be called")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    module._reconstruct_persistent_obj = _reconstruct_persistent_obj
    package.persistence = module
    monkeypatch.setitem(sys.modules, "torch_utils", package)
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", module)
    return module


class _Persistent:
    """Pickles the way an NVlabs persistent network does: module source + state."""

    def __init__(self, fn, class_name: str, source: str, state: dict) -> None:
        self.fn, self.class_name, self.source, self.state = fn, class_name, source, state

    def __reduce__(self):
        meta = {
            "type": "class",
            "version": 6,
            "module_src": self.source,
            "class_name": self.class_name,
            "state": self.state,
        }
        return (self.fn, (meta,))


def test_nvlabs_pickle_reads_as_plain_data(fixtures_dir: Path) -> None:
    path = need_fixture(fixtures_dir, "stylegan/sg2-tiny.pkl")
    data = read_nvlabs_pickle(path)
    assert set(data) == {"G", "D", "G_ema", "augment_pipe", "training_set_kwargs"}
    g = data["G_ema"]
    assert isinstance(g, NetworkRecord)
    assert g.class_name == "Generator"
    assert g.init_kwargs["img_resolution"] == 32
    assert g.find("synthesis.b32.conv1").class_name == "SynthesisLayer"
    assert len(g.source_sha256) == 64
    tensors = g.state_dict()
    assert tensors["mapping.w_avg"].shape == (64,)
    assert tensors["synthesis.b4.const"].shape == (64, 4, 4)
    # Nothing of upstream was imported or executed to read it.
    assert "torch_utils" not in sys.modules
    assert not any(name.startswith("_imported_module_") for name in sys.modules)


def test_refuses_a_pickle_that_runs_code(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _RunsCode(marker)}))
    with pytest.raises(GeneratorError) as err:
        read_nvlabs_pickle(path)
    assert str(path) in str(err.value)
    assert "system" in str(err.value)  # names the refused global (posix.system)
    assert not marker.exists()
    with pytest.raises(GeneratorError):
        load_network(path)
    assert not marker.exists()


def test_persistent_source_is_never_executed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The NVlabs format carries module source meant to be exec'd on load: here that
    # source would write the marker. The reader keeps it as a digest only.
    marker = tmp_path / "marker"
    module = _fake_persistence(monkeypatch)
    source = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
    state = {
        "_parameters": {"weight": torch.ones(2, 2)},
        "_buffers": {},
        "_modules": {},
        "_init_kwargs": {"size": 2},
        "training": False,
    }
    obj = _Persistent(module._reconstruct_persistent_obj, "Evil", source, state)
    path = tmp_path / "persistent.pkl"
    path.write_bytes(pickle.dumps({"G_ema": obj}))
    monkeypatch.delitem(sys.modules, "torch_utils.persistence")
    monkeypatch.delitem(sys.modules, "torch_utils")
    record = read_nvlabs_pickle(path)["G_ema"]
    assert record.class_name == "Evil"
    assert record.init_kwargs == {"size": 2}
    assert torch.equal(record.tensors["weight"], torch.ones(2, 2))
    assert not marker.exists()
    with pytest.raises(GeneratorError, match="expected an NVlabs StyleGAN Generator"):
        load_network(path)
    assert not marker.exists()


def test_refuses_code_inside_persistent_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "marker"
    module = _fake_persistence(monkeypatch)
    state = {"_parameters": {}, "_buffers": {}, "_modules": {}, "hook": _RunsCode(marker)}
    obj = _Persistent(module._reconstruct_persistent_obj, "Generator", "", state)
    path = tmp_path / "nested.pkl"
    path.write_bytes(pickle.dumps(obj))
    with pytest.raises(GeneratorError, match="refused"):
        read_nvlabs_pickle(path)
    assert not marker.exists()


def test_refuses_numpy_object_arrays(tmp_path: Path) -> None:
    path = tmp_path / "objects.pkl"
    path.write_bytes(pickle.dumps({"a": np.array([{"x": 1}], dtype=object)}))
    with pytest.raises(GeneratorError, match="not a plain numeric dtype"):
        read_nvlabs_pickle(path)


def test_plain_numpy_and_dicts_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "plain.pkl"
    value = {"a": np.arange(4, dtype=np.float32), "b": np.float64(0.5), "c": [1, "x", None]}
    path.write_bytes(pickle.dumps(value))
    data = read_nvlabs_pickle(path)
    assert np.array_equal(data["a"], np.arange(4, dtype=np.float32))
    assert data["b"] == 0.5
    assert data["c"] == [1, "x", None]


def test_missing_and_corrupt_files(tmp_path: Path, fixtures_dir: Path) -> None:
    missing = tmp_path / "nope.pkl"
    with pytest.raises(GeneratorError, match="not found") as err:
        load_network(missing)
    assert str(missing) in str(err.value)
    empty = tmp_path / "empty.pkl"
    empty.write_bytes(b"")
    with pytest.raises(GeneratorError, match="corrupt or truncated"):
        load_network(empty)
    noise = tmp_path / "noise.pkl"
    noise.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(GeneratorError):
        load_network(noise)
    source = need_fixture(fixtures_dir, "stylegan/sg2-tiny.pkl")
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    with pytest.raises(GeneratorError, match="corrupt or truncated") as err:
        load_network(truncated)
    assert "expected an NVlabs StyleGAN pickle" in str(err.value)
    bad_pt = tmp_path / "bad.pt"
    bad_pt.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(GeneratorError, match="corrupt or not a torch checkpoint"):
        load_network(bad_pt)


def test_torch_file_with_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    torch.save({"weight": torch.ones(1), "x": _RunsCode(marker)}, path)
    with pytest.raises(GeneratorError, match="refused") as err:
        read_state_dict(path)
    assert str(path) in str(err.value)
    assert not marker.exists()


def test_state_dict_files_round_trip(tmp_path: Path) -> None:
    tensors = {"a.weight": torch.randn(3, 4), "b": torch.arange(5)}
    pt = tmp_path / "sd.pt"
    torch.save({"state_dict": tensors, "init_kwargs": {"z_dim": 4}}, pt)
    read = read_state_dict(pt)
    assert read.init_kwargs == {"z_dim": 4}
    assert torch.equal(read.tensors["a.weight"], tensors["a.weight"])
    st = tmp_path / "sd.safetensors"
    save_safetensors(st, tensors, {"z_dim": 4, "names": ["x"]})
    read = read_state_dict(st)
    assert read.init_kwargs == {"z_dim": 4, "names": ["x"]}
    assert torch.equal(read.tensors["b"], tensors["b"])
    corrupt = tmp_path / "bad.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
    with pytest.raises(GeneratorError, match="corrupt safetensors"):
        read_state_dict(corrupt)


def test_models_convert_writes_a_safetensors_file_that_loads_alike(tmp_path, fixtures_dir):
    import subprocess
    import sys

    import torch
    from conftest import need_fixture

    from runtime import PROJECT_ROOT
    from runtime.generators.stylegan_load import load_network

    pickle_path = need_fixture(fixtures_dir, "stylegan/sg2-tiny.pkl")
    out = tmp_path / "sg2.safetensors"
    done = subprocess.run(
        [sys.executable, "run_show.py", "models", "convert", str(pickle_path), str(out)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert f'weights = "{out}"' in done.stdout
    a, b = load_network(pickle_path), load_network(out)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name
