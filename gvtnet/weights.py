"""Weights I/O: our safetensors files (config inside) and checkpoints of the released code.

Never unpickles: safetensors, or `torch.load(weights_only=True)` for `.pth` files (torch.save's zip format).
Hostile files are refused before anything is allocated: files over MAX_CHECKPOINT_BYTES, safetensors headers
or zip directories that claim more than the file holds, and configs that would build a model of more than
MAX_PARAMETERS parameters.
"""
from __future__ import annotations

import json
import math
import os
import re
import zipfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .model import GVTNet, GVTNetConfig
from .presets import preset_config

CONFIG_KEY = "gvtnet_config"

# Caps for files from strangers (the app's uploads); load_model takes others. The paper-size presets have
# 12.2 M parameters (a BasicSR .pth with `params` and `params_ema`: about 100 MB); HAT-L, among the largest
# common SR models, 41 M.
MAX_CHECKPOINT_BYTES = 200_000_000
MAX_PARAMETERS = 50_000_000
_MAX_HEADER_BYTES = 16_000_000  # the paper-size model's safetensors header is about 70 kB
_DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
                "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8}

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


def _read(path: Path, max_bytes: int = MAX_CHECKPOINT_BYTES) -> tuple[dict[str, torch.Tensor], dict | None]:
    """Tensors and our config (None for files that do not carry one)."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    size = path.stat().st_size
    if size > max_bytes:
        raise CheckpointError(f"{path}: the file is {size / 1e6:.0f} MB, more than the {max_bytes / 1e6:.0f} MB accepted")
    try:
        if path.suffix == ".safetensors" or _is_safetensors(path):
            meta = _check_safetensors(path, size)
            state = load_file(path)
            return state, _config_json(path, meta)
        _check_torch_zip(path, size)
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
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


def _check_safetensors(path: Path, size: int) -> dict[str, str]:
    """The header's metadata, once the header is known to describe no more than the file holds: its length
    fits the file, and every tensor's (dtype, shape) fills exactly its byte range inside the data section."""
    with open(path, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little")
        if len(head) < 8 or n > size - 8:
            raise CheckpointError(f"{path}: its safetensors header claims {n:,} bytes but the file holds "
                                  f"{max(size - 8, 0):,} after the length (truncated or forged)")
        if n > _MAX_HEADER_BYTES:
            raise CheckpointError(f"{path}: a safetensors header of {n:,} bytes, more than the "
                                  f"{_MAX_HEADER_BYTES:,} accepted")
        try:
            header = json.loads(f.read(n))
        except ValueError as e:  # also bad UTF-8
            raise CheckpointError(f"{path}: the safetensors header is not valid JSON ({e})") from e
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the safetensors header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    data = size - 8 - n
    for name, t in header.items():
        try:
            dtype, shape, (begin, end) = t["dtype"], list(t["shape"]), t["data_offsets"]
            ints = all(isinstance(v, int) and v >= 0 for v in [*shape, begin, end])
            nbytes = math.prod(shape) * _DTYPE_BYTES[dtype] if ints else -1
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: the safetensors entry for {name!r} is malformed ({e!r})") from e
        if not (ints and begin <= end <= data and end - begin == nbytes):
            raise CheckpointError(f"{path}: the safetensors header puts {name!r} ({dtype} {shape}) at bytes "
                                  f"{begin}-{end} of a {data:,}-byte data section: it claims more than the file holds")
    return meta if isinstance(meta, dict) else {}


def _config_json(path: Path, meta: dict[str, str]) -> dict | None:
    if CONFIG_KEY not in meta:
        return None
    try:
        config = json.loads(meta[CONFIG_KEY])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: its {CONFIG_KEY} metadata is not valid JSON ({e})") from e
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: its {CONFIG_KEY} metadata is not a JSON object")
    return config


def _check_torch_zip(path: Path, size: int) -> None:
    """torch.save's zip format (a data.pkl beside the raw storages, stored uncompressed) and nothing that
    would unpack to more than the file holds. The legacy format is refused: it allocates every storage at
    the size its pickle declares."""
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: not a readable weights file: neither safetensors nor a PyTorch zip "
                              "checkpoint (truncated, or the wrong format?)")
    try:
        with zipfile.ZipFile(path) as z:
            entries = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable weights file: a damaged zip archive ({e})") from e
    if not any(e.filename == "data.pkl" or e.filename.endswith("/data.pkl") for e in entries):
        raise CheckpointError(f"{path}: a zip archive but not a PyTorch checkpoint (no data.pkl among its "
                              f"{len(entries)} entries)")
    claimed = sum(e.file_size for e in entries)
    if claimed > size:
        raise CheckpointError(f"{path}: the zip archive claims {claimed:,} bytes of contents, more than the "
                              f"{size:,}-byte file holds (torch.save does not compress)")


def _is_safetensors(path: Path) -> bool:
    """A safetensors file starts with the length of its JSON header, then the header."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return 0 < n < 100_000_000 and head[8:9] == b"{"


def read_state_dict(path: str | Path, max_bytes: int = MAX_CHECKPOINT_BYTES) -> tuple[dict[str, torch.Tensor], dict | None]:
    """The tensors of any weights file (a BasicSR `params_ema` / `params` wrapper unwrapped) and our config
    if it carries one, read as load_model reads them: never unpickling; CheckpointError names what is wrong."""
    return _read(Path(path), max_bytes)


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
    depths = _depths(state)
    try:
        embed_dim = state["conv_first.weight"].shape[0]
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


def _depths(state: dict[str, torch.Tensor]) -> tuple[int, ...]:
    """Blocks per residual group, from the keys layers.<g>.blocks.<b>.*; indices must run 0, 1, ... (a
    stray large index must not make a model of that many groups)."""
    def count(pattern: str, what: str) -> int:
        found = {int(m.group(1)) for k in state if (m := re.match(pattern, k))}
        if found != set(range(len(found))):
            raise CheckpointError(f"not a usable state dict: its {what} indices {sorted(found)[:6]} do not run 0, 1, ...")
        return len(found)

    groups = count(r"layers\.(\d+)\.", "group")
    if groups == 0:
        raise CheckpointError("not a GVTNet/SwinIR state dict: it has no residual groups (layers.<n>.*)")
    return tuple(count(rf"layers\.{g}\.blocks\.(\d+)\.", f"group {g} block") for g in range(groups))


def parameter_count(cfg: GVTNetConfig) -> int:
    """Parameters of the model `cfg` builds, counted on the meta device: nothing is allocated."""
    with torch.device("meta"):
        return sum(p.numel() for p in GVTNet(cfg).parameters())


def _checked_config(path: Path, state: dict[str, torch.Tensor], config: dict | None, preset: str | None,
                    max_parameters: int) -> GVTNetConfig:
    """The config to build, refused before any allocation if it is invalid, holds more blocks than the file
    has tensors, or would build more than `max_parameters` parameters."""
    try:
        if config is None:
            cfg = infer_config(state, preset)
        else:
            cfg = GVTNetConfig.from_dict(config) if preset is None else preset_config(preset)
        if sum(cfg.depths) > len(state):  # every block has a dozen tensors: this cannot fit
            raise CheckpointError(f"weights do not fit a {describe(cfg)}: {sum(cfg.depths)} blocks, "
                                  f"{len(state)} tensors in the file")
        n = parameter_count(cfg)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from e
    except (TypeError, ValueError, KeyError, IndexError, RuntimeError) as e:
        raise CheckpointError(f"{path}: its config does not describe a model this package builds ({e})") from e
    if n > max_parameters:
        raise CheckpointError(f"{path}: its config would build a {describe(cfg)} of {n:,} parameters, more than "
                              f"the {max_parameters:,} accepted")
    return cfg


def load_model(path: str | Path, preset: str | None = None, *, max_bytes: int = MAX_CHECKPOINT_BYTES,
               max_parameters: int = MAX_PARAMETERS) -> GVTNet:
    """A model in eval mode from our safetensors file, or from a released-code checkpoint (BasicSR layout:
    `params_ema`, else `params`, else a bare state dict; .pth or .safetensors). Every learnable weight must
    match; a wrong, truncated, oversized or mismatched file raises CheckpointError naming the problem, files
    over `max_bytes` and configs of more than `max_parameters` parameters before anything is allocated."""
    path = Path(path)
    state, config = _read(path, max_bytes)
    if config is None:
        state = released_to_ours(state)
    cfg = _checked_config(path, state, config, preset, max_parameters)
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
    kinds = "GVTNet" if cfg.has_graph else "SwinIR"
    return f"{kinds} x{cfg.upscale} (embed {cfg.embed_dim}, depths {list(cfg.depths)})"


def state_dict_sha256(model: torch.nn.Module | dict[str, torch.Tensor]) -> str:
    """Hex sha256 of a model's weights (or a state dict): every entry's name, dtype, shape and raw bytes, in
    sorted-name order. The same weights give the same digest however they were loaded (our safetensors, a
    released .pth, a spandrel model) or built in memory; any changed value changes it."""
    import hashlib

    state = model.state_dict() if isinstance(model, torch.nn.Module) else model
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().to("cpu").contiguous()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
