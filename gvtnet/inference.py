"""Inference: `upscale(model, image)` for any image, `super_resolve` for batches of tensors, and the
conversions between the two. The command line is `gvtnet.upscale_files` (kept apart so that `python -m
gvtnet.upscale_files` does not run a module the package has already imported)."""
from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import statistics
import time

import numpy as np
import torch
from PIL import Image

from .compat import packing_works
from .images import opaque, open_image
from .model import GVTNet, WindowAttention, packed_caches

# Self-ensembles as lists of (transpose, flip_h, flip_w). "d8": the eight flips/transposes of the dihedral
# group (the paper's GVTNet+), for models trained on rotated faces. "flip": the face and its mirror image,
# for models trained upright with left-right flips only (the shipped weights), to which a transposed face
# is out of distribution.
ENSEMBLES = {
    "flip": [(False, False, False), (False, False, True)],
    "d8": [(t, fh, fw) for t in (False, True) for fh in (False, True) for fw in (False, True)],
}


def _apply(x: torch.Tensor, t: bool, fh: bool, fw: bool) -> torch.Tensor:
    x = x.transpose(-2, -1) if t else x
    x = x.flip(-2) if fh else x
    return x.flip(-1) if fw else x


def _undo(x: torch.Tensor, t: bool, fh: bool, fw: bool) -> torch.Tensor:
    x = x.flip(-1) if fw else x
    x = x.flip(-2) if fh else x
    return x.transpose(-2, -1) if t else x


PRECISIONS = ("fp32", "bf16", "auto")


# bf16 is chosen by 'auto' only where it measures at least this much faster than fp32.
BF16_MIN_SPEEDUP = 1.2


def matmul_seconds(dtype: torch.dtype, device: torch.device | str = "cpu", n: int = 256, repeats: int = 3) -> float:
    """Median seconds of an (n*16, n) @ (n, n) matrix product in `dtype`, after two warm-ups: about the
    shape of a paper-size block's projections on one face (16 windows of 64 tokens, width 180 to 540)."""
    a = torch.randn(16 * n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    times = []
    for _ in range(repeats + 2):  # two warm-ups
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        a @ b
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[2:])


@functools.cache
def bf16_speedup(device_type: str = "cpu") -> float:
    """How many times faster bf16 matrix products run than fp32 on this device, measured once per process
    (0.1-0.2 s): above 1 where the device computes bf16 natively (AMX, AVX512-BF16, a GPU), below 1
    where it is emulated. Turns measured in alternation, so that a drift in the machine's speed cancels."""
    fp32, bf16 = [], []
    with torch.inference_mode():
        for _ in range(2):
            fp32.append(matmul_seconds(torch.float32, device_type))
            bf16.append(matmul_seconds(torch.bfloat16, device_type))
    return min(fp32) / min(bf16)


def resolve_precision(precision: str, device: torch.device | str = "cpu") -> str:
    """'fp32' or 'bf16' for a `precision` of PRECISIONS: 'auto' is bf16 where it measures faster (by
    BF16_MIN_SPEEDUP; see bf16_speedup), on a CUDA device that supports it or a CPU, else fp32."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return "fp32"
    return "bf16" if bf16_speedup(device.type) >= BF16_MIN_SPEEDUP else "fp32"


def autocast(precision: str, device: torch.device | str = "cpu") -> contextlib.AbstractContextManager:
    """bf16 autocast (matrix products and convolutions in bfloat16, reductions and norms in fp32) when
    `precision` resolves to bf16 on the device, else nothing."""
    device = torch.device(device)
    if resolve_precision(precision, device) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def freeze(model: GVTNet, precision: str = "fp32") -> GVTNet:
    """An inference snapshot of `model`, safe for any number of threads at once: a copy of its weights as
    they are now, in eval mode, without gradients, that nothing changes after it is made. It is as fast as
    the model can run: each block keeps its relative-position bias per input size and its q/k/v rows
    grouped by head (WindowAttention.group_heads: the same output; its state_dict is the model's), and at a `precision`
    resolving to bf16 its Linear and Conv2d weights are stored in bf16, and packed for oneDNN as they are
    first used (under autocast the same output as `model`'s, bit for bit, without rounding or reordering
    the weights again on every call: docs/PERFORMANCE.md); in fp32 its convolutions are packed likewise,
    at each input size where F.conv2d runs oneDNN (the same bits).
    Later changes to `model` are not seen: freeze it again after changing its weights. A snapshot asked
    for its own precision is returned as it is."""
    precision = resolve_precision(precision, next(model.parameters()).device)
    if getattr(model, "frozen_precision", None) == precision:
        return model
    # Packed weights cannot be copied (opaque oneDNN tensors): a new snapshot packs its own.
    unpacked = {id(packs): None for packs in packed_caches(model)}
    with torch.inference_mode(False):  # ordinary tensors, usable with autograd (LAM) as well
        snapshot = copy.deepcopy(model, unpacked).eval().requires_grad_(False)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    # Convolutions are packed in either precision; linear layers in bf16 only, as an fp32 one runs
    # through MKL without a reorder (packed, it measured no faster: docs/PERFORMANCE.md).
    pack_convs = packing_works(dtype)
    pack_linears = pack_convs and precision == "bf16"
    for m in snapshot.modules():
        if precision == "bf16" and isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
            m.to(dtype)
        if hasattr(m, "packed"):
            m.packed = {} if (pack_convs if isinstance(m, torch.nn.Conv2d) else pack_linears) else None
        if isinstance(m, WindowAttention):
            m.record, m.frozen_biases = None, {}
            m.group_heads()
    snapshot.frozen_precision = precision
    return snapshot


@torch.no_grad()
def super_resolve(model: torch.nn.Module, lr: torch.Tensor, ensemble: str | None = None,
                  precision: str | None = None) -> torch.Tensor:
    """(N, 3, h, w) in [0, 1] -> (N, 3, s*h, s*w) float32 clamped to [0, 1]. With an `ensemble` of
    ENSEMBLES, the mean of the restorations of its flipped/transposed inputs, each transformed back.
    `precision`: 'fp32', 'bf16' (autocast) or 'auto' (bf16 where it measures faster, see resolve_precision); by default
    a snapshot's own (`freeze`), else fp32. For repeated calls, pass a snapshot: it is faster."""
    if ensemble and ensemble not in ENSEMBLES:
        raise ValueError(f"unknown self-ensemble {ensemble!r}; choose one of {', '.join(ENSEMBLES)}")
    frozen = getattr(model, "frozen_precision", None)
    precision = resolve_precision(precision or frozen or "fp32", lr.device)
    if frozen == "bf16" and precision != "bf16":
        raise ValueError("this snapshot holds bf16 weights; freeze the model again for fp32")
    with autocast(precision, lr.device):
        if not ensemble:
            return model(lr).float().clamp(0, 1)
        outs = [_undo(model(_apply(lr, *g)).float(), *g) for g in ENSEMBLES[ensemble]]
    return torch.stack(outs).mean(0).clamp(0, 1)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL image of any mode -> (1, 3, h, w) float in [0, 1]; alpha is composited on white, not dropped
    (which would turn transparent pixels black, as their colour often is)."""
    arr = np.asarray(opaque(img).convert("RGB"), dtype=np.float32) / 255
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [0, 1] -> (N, H, W, 3) uint8, rounded as a saved PNG would be."""
    return (x.detach().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)


def to_image(x: torch.Tensor, mode: str = "RGB") -> Image.Image:
    """(1, 3, H, W) in [0, 1] -> PIL image of `mode` ('RGB', or 'L' to keep a gray face gray)."""
    return Image.fromarray(to_uint8(x)[0]).convert(mode)


def upscale(model: torch.nn.Module, image, ensemble: str | None = None, precision: str | None = None) -> Image.Image:
    """Super-resolve a PIL image or array of any mode (RGBA, grayscale, 16-bit, EXIF-rotated); returns
    a PIL image, grayscale if the input was. `ensemble`, `precision`: as in super_resolve."""
    img = open_image(image)
    device = next(model.parameters()).device
    out = super_resolve(model.eval(), to_tensor(img).to(device), ensemble, precision)
    return to_image(out, "L" if img.mode == "L" else "RGB")


def add_ensemble_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--self-ensemble", nargs="?", const="d8", choices=list(ENSEMBLES),
                   help="average over the face and its mirror image (flip), or over all 8 flips/transposes "
                        "(d8, the paper's GVTNet+; the default when the flag has no value)")
