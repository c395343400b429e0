"""Inference: `upscale(model, image)` for any image, `super_resolve` for batches of tensors, and the
conversions between the two. The command line is `gvtnet.infer` (kept apart so that `python -m
gvtnet.infer` does not run a module the package has already imported)."""
from __future__ import annotations

import argparse
import contextlib
import copy
import weakref

import numpy as np
import torch
from PIL import Image

from .images import open_image
from .model import GVTNet

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


def native_bf16(device: torch.device | str = "cpu") -> bool:
    """Whether the device computes bfloat16 natively: a CUDA GPU that supports it, or a CPU with AMX or
    AVX512-BF16 (elsewhere bf16 is emulated and slower than fp32)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and (torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


def resolve_precision(precision: str, device: torch.device | str = "cpu") -> str:
    """'fp32' or 'bf16' for a `precision` of PRECISIONS: 'auto' is bf16 where the device has native bf16."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def autocast(precision: str, device: torch.device | str = "cpu") -> contextlib.AbstractContextManager:
    """bf16 autocast (matrix products and convolutions in bfloat16, reductions and norms in fp32) when
    `precision` resolves to bf16 on the device, else nothing."""
    device = torch.device(device)
    if resolve_precision(precision, device) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


_BF16_TWINS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def bf16_twin(model: GVTNet) -> GVTNet:
    """A copy of `model` with its Linear and Conv2d weights stored in bfloat16. Under bf16 autocast it
    computes exactly what `model` does (autocast rounds those weights to bf16 anyway), without rounding
    them again on every call (about 8% of official-x8's forward pass on one 16x16 face, docs/PERFORMANCE.md).
    Cached per model, and made anew when its mode changes or any of its parameters is replaced, moved or
    changed in place (a submodule swapped for another is not seen: build a new model instead)."""
    cached = _BF16_TWINS.get(model)
    if cached is None or not _unchanged(model, cached[0]):
        with torch.inference_mode(False):  # ordinary tensors, whose versions the twin's caches can watch
            twin = copy.deepcopy(model)
            for m in twin.modules():
                if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
                    m.to(torch.bfloat16)
        _BF16_TWINS[model] = cached = (_fingerprint(model), twin)
    return cached[1]


def _fingerprint(model: torch.nn.Module) -> tuple:
    """Where every parameter sits and what it holds: (mode, [(owner's parameters, name, parameter, place,
    version)]). It holds the modules' parameter dicts, not the modules, so that the model can be freed."""
    return model.training, [(m._parameters, n, p, p.data_ptr(), p._version) for m in model.modules()
                            for n, p in m._parameters.items() if p is not None]


def _unchanged(model: torch.nn.Module, fingerprint: tuple) -> bool:
    # Checked on every call: a walk of model.modules() alone costs about 1% of a small face's forward pass.
    training, entries = fingerprint
    return model.training == training and all(
        d.get(n) is p and p.data_ptr() == ptr and p._version == v for d, n, p, ptr, v in entries)


def _runner(model: torch.nn.Module, precision: str) -> torch.nn.Module:
    """The module that runs `model` at `precision` (resolved): its bf16 twin for a GVTNet that is not
    being captured (a capture records on the model's own modules), else the model itself."""
    if precision != "bf16" or not isinstance(model, GVTNet) or any(g.record is not None for g in model.layers):
        return model
    return bf16_twin(model)


@torch.no_grad()
def super_resolve(model: torch.nn.Module, lr: torch.Tensor, ensemble: str | None = None,
                  precision: str = "fp32") -> torch.Tensor:
    """(N, 3, h, w) in [0, 1] -> (N, 3, s*h, s*w) float32 clamped to [0, 1]. With an `ensemble` of
    ENSEMBLES, the mean of the restorations of its flipped/transposed inputs, each transformed back.
    `precision`: 'fp32', 'bf16' (autocast) or 'auto' (bf16 where the device has it natively)."""
    if ensemble and ensemble not in ENSEMBLES:
        raise ValueError(f"unknown self-ensemble {ensemble!r}; choose one of {', '.join(ENSEMBLES)}")
    precision = resolve_precision(precision, lr.device)
    model = _runner(model, precision)
    with autocast(precision, lr.device):
        if not ensemble:
            return model(lr).float().clamp(0, 1)
        outs = [_undo(model(_apply(lr, *g)).float(), *g) for g in ENSEMBLES[ensemble]]
    return torch.stack(outs).mean(0).clamp(0, 1)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB or L -> (1, 3, h, w) float in [0, 1]."""
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [0, 1] -> (N, H, W, 3) uint8, rounded as a saved PNG would be."""
    return (x.detach().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)


def to_image(x: torch.Tensor, mode: str = "RGB") -> Image.Image:
    """(1, 3, H, W) in [0, 1] -> PIL image of `mode` ('RGB', or 'L' to keep a gray face gray)."""
    return Image.fromarray(to_uint8(x)[0]).convert(mode)


def upscale(model: torch.nn.Module, image, ensemble: str | None = None, precision: str = "fp32") -> Image.Image:
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
