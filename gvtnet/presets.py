"""Named configurations. `build_model('official-x8', threshold=0.75)` builds one with overrides."""
from __future__ import annotations

from .model import SWINIR_MEAN, GVTNet, GVTNetConfig

# The paper's SwinIR baseline: the same network with plain Swin attention.
_SWIN = dict(block_pattern="S", window_layout="contiguous", shift_rule="alternate", dwconv=False,
             rgb_mean=SWINIR_MEAN)
# Small enough to train in about an hour on a 2-core CPU and to run interactively (see docs/LIGHT.md).
_LIGHT = dict(embed_dim=48, depths=(2, 2, 2, 2), num_heads=4, upsampler="pixelshuffledirect",
              bicubic_skip=True, drop_path_rate=0.0)

PRESETS: dict[str, dict] = {
    "official-x4": dict(upscale=4, minkowski_p=2.0),
    "official-x8": dict(upscale=8, minkowski_p=float("inf")),
    "swinir-x4": dict(upscale=4, **_SWIN),
    "swinir-x8": dict(upscale=8, **_SWIN),
    "light-x4": dict(upscale=4, minkowski_p=2.0, **_LIGHT),
    "light-x8": dict(upscale=8, minkowski_p=float("inf"), **_LIGHT),
    "swinir-light-x4": dict(upscale=4, **_LIGHT, **_SWIN),
    "swinir-light-x8": dict(upscale=8, **_LIGHT, **_SWIN),
}


def preset_config(preset: str, **overrides) -> GVTNetConfig:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return GVTNetConfig(**{**PRESETS[preset], **overrides})


def build_model(preset: str, **overrides) -> GVTNet:
    """A freshly initialised model of a named preset, with any config field overridden."""
    return GVTNet(preset_config(preset, **overrides))
