"""Any super-resolution network as a torch module: GVTNet and its SwinIR baseline through `load_model`,
and every other architecture that spandrel (the model-loading library behind chaiNNer) detects from its
state dict: SwinIR, HAT, RRDB/ESRGAN, Real-ESRGAN compact, OmniSR, SPAN and others.

Files are read by our own safe loaders (`weights.read_state_dict`: safetensors, or
`torch.load(weights_only=True)`); spandrel only sees the tensors, so nothing is ever unpickled.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .compat import import_spandrel, spandrel_call
from .model import GVTNet
from .weights import CheckpointError, describe, load_model, read_state_dict


class SpandrelSR(nn.Module):
    """A network spandrel detected, as (N, 3, h, w) in [0, 1] -> (N, 3, s*h, s*w): the input padded to the
    architecture's size requirements (reflect, then replicate beyond the reflectable) and the output cropped
    back, as spandrel's own call does, but differentiable (spandrel's call runs in inference mode, which
    LAM's gradients cannot pass)."""

    def __init__(self, descriptor):
        super().__init__()
        self.net = descriptor.model
        self.architecture = descriptor.architecture.name
        self.scale = descriptor.scale
        self.size_requirements = descriptor.size_requirements
        self._call = spandrel_call(descriptor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_w, pad_h = self.size_requirements.get_padding(w, h)
        if pad_w or pad_h:
            rw, rh = min(pad_w, w - 1), min(pad_h, h - 1)
            x = F.pad(F.pad(x, (0, rw, 0, rh), mode="reflect"), (0, pad_w - rw, 0, pad_h - rh), mode="replicate")
        return self._call(self.net, x)[..., : h * self.scale, : w * self.scale]


def load_sr_model(path: str | Path) -> nn.Module:
    """A super-resolution model in eval mode from any weights file: ours and released GVTNet checkpoints
    as `load_model` reads them, else any SR architecture spandrel detects (a BasicSR `params_ema` /
    `params` wrapper is unwrapped). The result takes (N, 3, h, w) in [0, 1] and returns (N, 3, s*h, s*w).
    A file that no loader can place raises CheckpointError naming what it holds."""
    path = Path(path)
    state, config = read_state_dict(path)
    if config is not None or any(".depth_conv." in k for k in state):  # ours, or the released GVTNet
        return load_model(path)
    spandrel = import_spandrel()
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(state)
    except spandrel.UnsupportedModelError:
        raise CheckpointError(f"{path}: no known super-resolution architecture fits its {len(state)} tensors "
                              f"(e.g. {', '.join(list(state)[:4])})") from None
    except Exception as e:  # noqa: BLE001 - spandrel parsing an untrusted file: any failure means it does not fit
        raise CheckpointError(f"{path}: looks like a spandrel architecture, but its tensors do not fit it ({e!r})") from e
    if not isinstance(descriptor, spandrel.ImageModelDescriptor) or descriptor.purpose != "SR" or \
            (descriptor.input_channels, descriptor.output_channels) != (3, 3):
        raise CheckpointError(f"{path}: a {descriptor.architecture.name} model for "
                              f"{getattr(descriptor, 'purpose', 'another task')}, not RGB super-resolution")
    return SpandrelSR(descriptor).eval()


def scale_of(model: nn.Module) -> int:
    """The upscaling factor of a model from load_sr_model (or any GVTNet)."""
    return model.cfg.upscale if isinstance(model, GVTNet) else model.scale


def has_graph(model: nn.Module) -> bool:
    """Whether the model builds patch graphs (a GVTNet with graph blocks) that the graph views can show."""
    return isinstance(model, GVTNet) and model.cfg.has_graph


def model_name(model: nn.Module) -> str:
    """A short name: 'GVTNet' or 'SwinIR' for ours, else the spandrel architecture's name."""
    if isinstance(model, GVTNet):
        return "GVTNet" if has_graph(model) else "SwinIR"
    return model.architecture


def describe_model(model: nn.Module) -> str:
    """One line: the architecture, scale and size."""
    if isinstance(model, GVTNet):
        return describe(model.cfg)
    params = sum(p.numel() for p in model.parameters())
    return f"{model.architecture} x{model.scale} ({params / 1e6:.2f} M parameters, loaded by spandrel)"
