"""Weights I/O: our safetensors files (config inside) and checkpoints of the released code.

Never unpickles: safetensors, or `torch.load(weights_only=True)` for `.pth` files.
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .model import GVTNet, GVTNetConfig
from .presets import preset_config

CONFIG_KEY = "gvtnet_config"

# Released (BasicSR) key -> ours. Applied in order.
_RENAMES = [
    (r"^module\.", ""),
    (r"\.residual_group\.blocks\.", ".blocks."),
    (r"^patch_embed\.norm\.", "embed_norm."),
    (r"\.depth_conv\.", ".depthwise."),
    (r"\.point_conv\.", ".pointwise."),
    (r"^(conv_before_upsample|upsample|conv_last)\.", r"upsampler.\1."),
]
# Fixed buffers of the released code that we recompute.
_DROPPED = re.compile(r"(relative_position_index|attn_mask)$|^mean$")


class CheckpointError(ValueError):
    """A weights file that cannot be used, with the reason."""


def save_model(model: GVTNet, path: str | Path) -> None:
    """Write the model's weights and its config to a safetensors file, atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, tmp, metadata={CONFIG_KEY: json.dumps(model.cfg.to_dict())})
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # an ordinary readable file, not the private mode of a temp file
    tmp.replace(path)


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict | None]:
    """Tensors and our config (None for files that do not carry one)."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        if path.suffix == ".safetensors" or _is_safetensors(path):
            with safe_open(path, "pt") as f:
                meta = f.metadata() or {}
            state = load_file(path)
            return state, json.loads(meta[CONFIG_KEY]) if CONFIG_KEY in meta else None
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (SafetensorError, RuntimeError, EOFError, ValueError, OSError) as e:
        raise CheckpointError(f"{path}: not a readable weights file (truncated or wrong format?): {e}") from e
    except Exception as e:  # weights_only refuses pickled objects it does not know
        raise CheckpointError(f"{path}: refused to load (only plain tensors are accepted): {e}") from e
    if isinstance(obj, dict):
        for key in ("params_ema", "params", "state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: holds no state dict of tensors")
    return obj, None


def _is_safetensors(path: Path) -> bool:
    """A safetensors file starts with the length of its JSON header, then the header."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return 0 < n < 100_000_000 and head[8:9] == b"{"


def released_to_ours(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a released-code (or SwinIR-style) state dict to this package's keys, dropping fixed buffers."""
    out = {}
    for key, value in state.items():
        for pattern, repl in _RENAMES:
            key = re.sub(pattern, repl, key)
        if not _DROPPED.search(key):
            out[key] = value
    return out


def infer_config(state: dict[str, torch.Tensor], preset: str | None = None) -> GVTNetConfig:
    """Architecture of a released checkpoint from its tensor shapes; other fields from `preset` (default:
    the official preset of the inferred scale)."""
    try:
        embed_dim = state["conv_first.weight"].shape[0]
        groups = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"layers\.(\d+)\.", k)))
        depths = tuple(
            1 + max(int(m.group(1)) for k in state if (m := re.match(rf"layers\.{g}\.blocks\.(\d+)\.", k)))
            for g in range(groups)
        )
        table = state["layers.0.blocks.0.attn.relative_position_bias_table"]
        upsamples = sum(1 for k in state if re.match(r"upsampler\.upsample\.\d+\.weight", k))
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"not a GVTNet/SwinIR state dict (missing {e})") from e
    window = (math.isqrt(table.shape[0]) + 1) // 2
    dwconv = "layers.0.blocks.0.attn.qkv.depthwise.weight" in state
    scale = 2**upsamples
    base = preset or (f"official-x{scale}" if dwconv else f"swinir-x{scale}")
    mlp_ratio = state["layers.0.blocks.0.mlp.fc1.weight"].shape[0] / embed_dim
    return preset_config(base, upscale=scale, embed_dim=embed_dim, depths=depths, num_heads=table.shape[1],
                         window_size=window, mlp_ratio=mlp_ratio)


def load_model(path: str | Path, preset: str | None = None) -> GVTNet:
    """A model in eval mode from our safetensors file, or from a released-code checkpoint (BasicSR layout:
    `params_ema`, else `params`, else a bare state dict; .pth or .safetensors). Every learnable weight must
    match; a wrong, truncated or mismatched file raises CheckpointError naming the problem."""
    path = Path(path)
    state, config = _read(path)
    if config is not None:
        cfg = GVTNetConfig.from_dict(config) if preset is None else preset_config(preset)
    else:
        state = released_to_ours(state)
        cfg = infer_config(state, preset)
    model = GVTNet(cfg)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
             if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        parts = [f"{len(missing)} missing (e.g. {missing[:3]})" if missing else "",
                 f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})" if unexpected else "",
                 f"{len(wrong)} of the wrong shape (e.g. {wrong[:2]})" if wrong else ""]
        raise CheckpointError(f"{path}: weights do not fit a {describe(cfg)}: " + "; ".join(p for p in parts if p))
    model.load_state_dict(state)
    return model.eval()


def describe(cfg: GVTNetConfig) -> str:
    kinds = "GVTNet" if "G" in cfg.block_pattern else "SwinIR"
    return f"{kinds} x{cfg.upscale} (embed {cfg.embed_dim}, depths {list(cfg.depths)})"
