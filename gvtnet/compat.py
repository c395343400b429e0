"""Workarounds of our dependencies, each kept here with the reason for it. tests/test_compat.py shows
that each is still needed (or that the private API it uses still exists) and fails once that changes, so
that it can be removed or adapted then."""
from __future__ import annotations

import sys

import torch

_torchvision_ops: torch.library.Library | None = None  # kept alive: dropping it would unregister the ops


def import_spandrel():
    """spandrel, imported on first use. It imports torchvision for two non-SR architectures (LaMa,
    RestoreFormer); PyPI's torchvision wheel is built for CUDA torch and, beside a CPU build of torch, fails
    while registering shapes for two of its C++ operators it could not load. Declaring those two operators
    (no kernels: calling them still fails) lets its Python half, and so spandrel, import."""
    global _torchvision_ops
    try:
        import spandrel
    except RuntimeError as e:
        if "torchvision::" not in str(e):
            raise
        for name in [m for m in sys.modules if m.split(".")[0] in ("torchvision", "spandrel")]:
            del sys.modules[name]  # the half-imported modules
        _torchvision_ops = torch.library.Library("torchvision", "FRAGMENT")
        for op in ("nms", "qnms"):
            _torchvision_ops.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        import spandrel
    return spandrel


def spandrel_call(descriptor):
    """How a spandrel descriptor runs its network, as fn(model, image) (a few architectures take extra
    arguments). Private (`_call_fn`) because spandrel's public call runs in inference mode, which LAM's
    gradients cannot pass: we call the network through this instead."""
    return descriptor._call_fn


def pack_linear(weight: torch.Tensor) -> torch.Tensor | None:
    """A bf16 (out, in) Linear weight reordered once into oneDNN's own layout, for `packed_linear`; None where
    that does not apply (another dtype or device, or no oneDNN). F.linear reorders a bf16 weight on every
    call: at one 16x16 face (256 rows) that was 15-35% of each linear layer's time (docs/PERFORMANCE.md).
    Private (`torch.ops.mkldnn`, as torch.compile's CPU backend uses it): PyTorch has no public prepacked
    linear. An opaque tensor: it cannot be copied or saved, only shared."""
    if weight.dtype != torch.bfloat16 or weight.device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return None
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach(), None)


def packed_linear(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """F.linear(x, weight, bias) with the weight as `pack_linear` made it: the same bits. x (..., in) bf16,
    or fp32 under autocast, which F.linear would cast to bf16 first (as is done here); no gradient."""
    return torch.ops.mkldnn._linear_pointwise(x.to(packed.dtype), packed, bias, "none", [], "")
