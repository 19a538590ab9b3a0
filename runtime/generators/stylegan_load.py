"""Checkpoint file -> native StyleGAN2/StyleGAN3 network, without running its code.

Accepted files:
- NVlabs pickles (.pkl): training snapshots or network pickles from
  stylegan2-ada-pytorch and stylegan3 (and models trained with them). The
  generator ("G_ema", else "G") is rebuilt from its constructor arguments and
  tensors, which `checkpoints.read_nvlabs_pickle` extracts as plain data.
- State dicts with upstream tensor names (`G_ema.state_dict()`), in .pt/.pth
  (read with weights_only=True) or .safetensors. The architecture comes from stored
  constructor arguments when present ("init_kwargs"), else from tensor shapes.

`export_safetensors` writes a loaded network back out as a .safetensors file with
its configuration, which then loads without any unpickling.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from runtime.errors import GeneratorError
from runtime.generators.checkpoints import (
    EXPECTED,
    PICKLE_SUFFIXES,
    NetworkRecord,
    check_file,
    read_nvlabs_pickle,
    read_state_dict,
    save_safetensors,
)
from runtime.generators.stylegan2_net import StyleGAN2, StyleGAN2Config
from runtime.generators.stylegan3_net import StyleGAN3, StyleGAN3Config

log = logging.getLogger(__name__)

StyleGANNetwork = StyleGAN2 | StyleGAN3


def load_network(path: Path) -> StyleGANNetwork:
    """Read a StyleGAN checkpoint into a native network on the CPU, in eval mode.

    Args:
        path: a .pkl, .pt/.pth/.ckpt or .safetensors file.
    Returns:
        The generator network (float32, CPU, no gradients).
    Raises:
        GeneratorError: the file is missing or corrupt, refuses to load safely, or
            does not hold a StyleGAN2/StyleGAN3 generator; the message names the
            file and what was expected.
    Thread: any (loading takes a while: not the frame loop).
    """
    path = Path(path)
    check_file(path)
    with open(path, "rb") as f:
        head = f.read(2)
    try:
        if path.suffix.lower() in PICKLE_SUFFIXES or (
            head[:1] == b"\x80" and path.suffix.lower() not in (".pt", ".pth", ".ckpt", ".bin")
        ):
            network = _from_pickle(path)
        else:
            network = _from_state_dict(path)
    except GeneratorError as exc:
        message = str(exc)
        raise GeneratorError(
            message if message.startswith(str(path)) else f"{path}: {message}"
        ) from None
    network.eval().requires_grad_(False)
    network.prepare(fp16=False)
    log.info(
        "%s: %s, %dpx, %d ws, z %d, w %d",
        path.name,
        network.family,
        network.img_resolution,
        network.num_ws,
        network.z_dim,
        network.w_dim,
    )
    return network


def export_safetensors(network: StyleGANNetwork, path: Path) -> None:
    """Write the network's tensors and configuration to a .safetensors file.

    Raises:
        GeneratorError: the file cannot be written.
    Thread: any.
    """
    save_safetensors(Path(path), network.state_dict(), network.config.to_kwargs())


def _from_pickle(path: Path) -> StyleGANNetwork:
    data = read_nvlabs_pickle(path)
    record = _pick_generator(data)
    synthesis = record.children.get("synthesis")
    if record.class_name != "Generator" or synthesis is None:
        raise GeneratorError(
            f"holds a '{record.class_name}', expected an NVlabs StyleGAN Generator"
        )
    kwargs = record.init_kwargs
    if record.init_args:
        raise GeneratorError("the Generator was built with positional arguments; unsupported")
    if "input" in synthesis.children:
        config = StyleGAN3Config.from_upstream_kwargs(kwargs)
        names = synthesis.attrs.get("layer_names")
        derived = [spec.name for spec in config.layers()]
        if names is not None and list(names) != derived:
            raise GeneratorError(
                f"StyleGAN3 layer schedule {names} differs from the one its settings give "
                f"({derived}); a modified architecture is not supported"
            )
        network: StyleGANNetwork = StyleGAN3(config)
    elif "b4" in synthesis.children:
        config2 = StyleGAN2Config.from_upstream_kwargs(kwargs, ada="synthesis_kwargs" in kwargs)
        _check_sg2_record(config2, synthesis)
        network = StyleGAN2(config2)
    else:
        raise GeneratorError("the Generator is neither StyleGAN2 (b4 block) nor StyleGAN3 (input)")
    _load_tensors(network, record.state_dict())
    return network


def _pick_generator(data: Any) -> NetworkRecord:
    if isinstance(data, NetworkRecord):
        return data
    if isinstance(data, Mapping):
        for key in ("G_ema", "G"):
            if isinstance(data.get(key), NetworkRecord):
                return data[key]
        keys = ", ".join(map(str, data))
        raise GeneratorError(f"no generator in the pickle (keys: {keys}); expected 'G_ema' or 'G'")
    raise GeneratorError(f"holds a {type(data).__name__}; expected {EXPECTED}")


def _check_sg2_record(config: StyleGAN2Config, synthesis: NetworkRecord) -> None:
    """Compare what the settings imply with what the pickled layers recorded."""
    recorded_ws = synthesis.attrs.get("num_ws")
    if recorded_ws is not None and recorded_ws != config.num_ws:
        raise GeneratorError(f"num_ws {recorded_ws} differs from the settings' {config.num_ws}")
    try:
        clamp = synthesis.find("b4.conv1").attrs.get("conv_clamp", config.conv_clamp)
    except KeyError:
        return
    if (clamp is None) != (config.conv_clamp is None) or (
        clamp is not None and float(clamp) != config.conv_clamp
    ):
        raise GeneratorError(f"conv_clamp {clamp} differs from the settings' {config.conv_clamp}")


def _from_state_dict(path: Path) -> StyleGANNetwork:
    sd = read_state_dict(path)
    tensors, kwargs = sd.tensors, sd.init_kwargs
    if "synthesis.input.weight" in tensors:
        family = "stylegan3"
    elif "synthesis.b4.const" in tensors:
        family = "stylegan2"
    else:
        sample = ", ".join(list(tensors)[:4])
        raise GeneratorError(
            f"not a StyleGAN generator state dict (tensors {sample}, ...); expected upstream "
            "names such as 'mapping.fc0.weight' and 'synthesis.b4.const' "
            "or 'synthesis.input.weight'"
        )
    network: StyleGANNetwork
    if family == "stylegan3":
        if kwargs.get("family") == "stylegan3":
            config3 = StyleGAN3Config.from_plain(kwargs)
        elif "z_dim" in kwargs:
            config3 = StyleGAN3Config.from_upstream_kwargs(kwargs)
        else:
            config3 = StyleGAN3Config.from_state_dict(tensors, kwargs)
        network = StyleGAN3(config3)
    else:
        if kwargs.get("family") == "stylegan2":
            config2 = StyleGAN2Config.from_plain(kwargs)
        elif "z_dim" in kwargs:
            config2 = StyleGAN2Config.from_upstream_kwargs(kwargs, ada="synthesis_kwargs" in kwargs)
        else:
            config2 = StyleGAN2Config.from_state_dict(tensors, kwargs)
        network = StyleGAN2(config2)
    _load_tensors(network, tensors)
    return network


def _load_tensors(network: StyleGANNetwork, tensors: Mapping[str, torch.Tensor]) -> None:
    """Copy the checkpoint's tensors in; every expected tensor must be there, shaped right."""
    own = network.state_dict()
    missing = [k for k in own if k not in tensors]
    unexpected = [k for k in tensors if k not in own]
    wrong = [
        f"{k} {tuple(tensors[k].shape)} (expected {tuple(v.shape)})"
        for k, v in own.items()
        if k in tensors and tensors[k].shape != v.shape
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            extra = f"{' ...' if len(unexpected) > 5 else ''}"
            parts.append(f"unexpected {', '.join(unexpected[:5])}{extra}")
        if wrong:
            parts.append(f"wrong shape {', '.join(wrong[:3])}")
        raise GeneratorError(
            f"tensors do not fit a {network.family} generator of this configuration: "
            + "; ".join(parts)
        )
    with torch.no_grad():
        for key, value in own.items():
            value.copy_(tensors[key].to(value.dtype))
