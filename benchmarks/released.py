"""Load the authors' released GVTNet architecture from YOUR checkout of github.com/continueyang/GVTNet,
for side-by-side benchmarks. Nothing of it is part of this project.

The released file imports BasicSR's registry and helpers, torchvision and einops, and builds an identity
matrix on "cuda"; here those are satisfied by small stand-ins so that it runs unmodified on a CPU.
"""
from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import torch
from torch import nn


class _Registry:
    def register(self):
        return lambda cls: cls


def _stub(name: str, **attrs) -> None:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module


def load_released(arch_file: str | Path):
    """The released `GVTNet` class from basicsr/archs/GVTNet_arch.py of a checkout."""
    _stub("basicsr")
    _stub("basicsr.utils")
    _stub("basicsr.utils.registry", ARCH_REGISTRY=_Registry())
    _stub("basicsr.archs", __path__=[])
    _stub("basicsr.archs.arch_util", to_2tuple=lambda x: x if isinstance(x, tuple) else (x, x),
          trunc_normal_=nn.init.trunc_normal_)
    if "torchvision" not in sys.modules:
        _stub("torchvision")
        _stub("torchvision.transforms")
        sys.modules["torchvision"].transforms = sys.modules["torchvision.transforms"]
    spec = importlib.util.spec_from_file_location("basicsr.archs.GVTNet_arch", arch_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    eye = torch.eye
    # the released code asks for device="cuda" and prints edge counts in eval mode
    module.torch = types.SimpleNamespace(**{k: getattr(torch, k) for k in dir(torch) if not k.startswith("__")})
    module.torch.eye = lambda n, device=None, **kw: eye(n, **kw)
    module.print = lambda *a, **k: None
    return module.GVTNet


def build_released(arch_file, upscale: int, **overrides):
    """The released network at its published configuration for `upscale` (4 or 8), in eval mode."""
    cfg = dict(upscale=upscale, img_size=32 if upscale == 4 else 16, window_size=8, img_range=1.0,
               depths=[6] * 6, embed_dim=180, num_heads=[6] * 6, mlp_ratio=2, upsampler="pixelshuffle",
               resi_connection="1conv", gkk=0.85, p=2 if upscale == 4 else float("inf"))
    cfg.update(overrides)
    return load_released(arch_file)(**cfg).eval()
