"""Local Attribution Maps (LAM, Gu and Dong, CVPR 2021) and the diffusion index, for any SR nn.Module.

As the reference code (X-Lowlevel-Vision/LAM_Demo) computes it: path integrated gradients of the window's gradient magnitude
D(F(x)) along a progressive Gaussian blur of the input, from K(sigma) * I to I. The reference runs its
`fold` path points one at a time; they are independent, so here they run in batches (same map to float
error, several times faster on a CPU).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import Saliency
from matplotlib.figure import Figure
from PIL import Image, ImageDraw
from scipy.stats import gaussian_kde

from gvtnet.images import bicubic_upscale
from gvtnet.inference import to_image


@dataclass
class LAMResult:
    """map: (h, w) in [0, 1]; attribution: (3, h, w); di: diffusion index; sr: (1, 3, sH, sW) model(lr);
    the window is rows [row, row + window) x cols [col, col + window) of the SR image."""

    map: np.ndarray
    attribution: np.ndarray
    di: float
    lr: torch.Tensor
    sr: torch.Tensor
    row: int
    col: int
    window: int


def window_gradient(y: torch.Tensor, row: int, col: int, window: int) -> torch.Tensor:
    """D: (B, C, H, W) SR images -> (B,) the forward-difference gradient magnitude summed over channels
    and over the window (truncated at the image edge)."""
    dh = (y[:, :, :-1, :] - y[:, :, 1:, :]) ** 2
    dw = (y[:, :, :, :-1] - y[:, :, :, 1:]) ** 2
    g = torch.sqrt(dh[:, :, :, :-1] + dw[:, :, :-1, :])  # (B, C, H-1, W-1)
    return g[:, :, row : row + window, col : col + window].sum(dim=(1, 2, 3))


def gaussian_kernel(sigma: float, size: int) -> torch.Tensor:
    """(size, size) float64 isotropic Gaussian, normalised to sum 1; a delta at sigma = 0."""
    x = torch.arange(-size // 2 + 1, size // 2 + 1, dtype=torch.float64)
    k = torch.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * (sigma + 1e-5) ** 2))
    return k / k.sum()


def blur(img: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) filtered channel by channel with reflect padding (OpenCV's BORDER_REFLECT_101)."""
    c, pad = img.shape[1], kernel.shape[-1] // 2
    weight = kernel.to(img).expand(c, 1, *kernel.shape)
    return F.conv2d(F.pad(img, (pad,) * 4, mode="reflect"), weight, groups=c)


def blur_path(lr: torch.Tensor, sigma: float, fold: int, kernel_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, 3, h, w) -> x (fold+1, 3, h, w) the path K(sigma_k) * I, k = 0..fold (x[0] the blurred baseline,
    x[fold] = I), and dx (fold, 3, h, w) = fold * (K(sigma_k) - K(sigma_{k-1})) * I for k = 1..fold."""
    img = lr.double()
    sigmas = torch.linspace(sigma, 0, fold + 1, dtype=torch.float64).tolist()
    kernels = [gaussian_kernel(s, kernel_size) for s in sigmas]
    x = torch.cat([blur(img, k) for k in kernels])
    dx = torch.cat([blur(img, fold * (k1 - k0)) for k0, k1 in zip(kernels, kernels[1:])])
    return x.to(lr.dtype), dx.to(lr.dtype)


def diffusion_index(m: np.ndarray) -> float:
    """DI = (1 - Gini) * 100 of a map's values: 100 for a uniform map, about 100/n for one bright pixel."""
    a = np.sort(np.asarray(m, np.float64).ravel())
    a = a - min(0.0, a[0]) + 1e-7
    n = a.size
    i = np.arange(1, n + 1)
    gini = np.sum((2 * i - n - 1) * a) / (n * np.sum(a))
    return float((1 - gini) * 100)


def local_attribution_map(
    model: torch.nn.Module,
    lr: torch.Tensor,
    row: int,
    col: int,
    window: int = 16,
    sigma: float = 1.2,
    fold: int = 50,
    kernel_size: int = 9,
    batch_size: int = 25,
    progress: Callable[[int, int], None] | None = None,
) -> LAMResult:
    """LAM of the SR window at (row, col) (SR pixels, top-left) of side `window`, for lr (1, 3, h, w) in
    [0, 1]. The `fold` path points run `batch_size` at a time (1 = the reference's schedule);
    progress(done, total) is called after each batch."""
    model.eval()  # the path points must not interact (no dropout, per-sample everything)
    x, dx = blur_path(lr, sigma, fold, kernel_size)
    saliency = Saliency(lambda inp: window_gradient(model(inp), row, col, window))
    attr = torch.zeros_like(lr[0], dtype=torch.float64)
    for start in range(1, fold + 1, batch_size):
        stop = min(start + batch_size, fold + 1)
        grad = saliency.attribute(x[start:stop].clone().requires_grad_(), abs=False)
        grad = torch.where(grad.isnan(), 0.0, grad)  # sqrt'(0) = inf: a flat SR region gives no attribution
        attr += (grad.double() * dx[start - 1 : stop - 1].double()).sum(0)
        if progress:
            progress(stop - 1, fold)
    attr = (attr / fold).float()
    m = attr.sum(0).abs().numpy()
    m = m / m.max() if m.max() > 0 else m
    with torch.no_grad():
        sr = model(lr)
    return LAMResult(map=m, attribution=attr.numpy(), di=diffusion_index(m), lr=lr, sr=sr, row=row,
                     col=col, window=window)


# ----------------------------------------------------------------------------------------------------
# Renderings, as in the reference: a seismic overlay, a KDE view and the window on the SR image.


def _colour(values: np.ndarray, cmap: str) -> np.ndarray:
    """(h, w) in [0, 1] -> (h, w, 3) uint8 through a matplotlib colormap."""
    return (matplotlib.colormaps[cmap](values)[..., :3] * 255 + 0.5).astype(np.uint8)


def _upscaled_lr(result: LAMResult) -> Image.Image:
    return bicubic_upscale(to_image(result.lr), result.sr.shape[-1] // result.lr.shape[-1])


def lam_overlay(result: LAMResult) -> Image.Image:
    """seismic(m * 0.5 + 0.5) (0 white, 1 dark red), nearest-upscaled to the SR size, blended 50/50 with
    the bicubic-upscaled LR."""
    heat = Image.fromarray(_colour(result.map * 0.5 + 0.5, "seismic"))
    heat = heat.resize((result.sr.shape[-1], result.sr.shape[-2]), Image.NEAREST)
    return Image.blend(_upscaled_lr(result), heat, 0.5)


def lam_kde(result: LAMResult, bandwidth: float | None = None) -> Image.Image:
    """The map smoothed by a Gaussian KDE of LR pixel positions weighted by their attribution, evaluated
    on the SR grid, normalised to [0, 1], seismic-coloured and blended 50/50 with the upscaled LR."""
    sh, sw = result.sr.shape[-2:]
    h, w = result.map.shape
    rows, cols = np.nonzero(result.map > 0)
    if rows.size < 2:  # nothing (or one pixel) attributed: no density to estimate
        return lam_overlay(result)
    kde = gaussian_kde(np.stack([rows, cols]), bw_method=bandwidth, weights=result.map[rows, cols])
    gr, gc = np.mgrid[0:sh, 0:sw]
    dens = kde(np.stack([(gr.ravel() + 0.5) * h / sh - 0.5, (gc.ravel() + 0.5) * w / sw - 0.5]))
    dens = (dens / dens.max()).reshape(sh, sw)
    return Image.blend(_upscaled_lr(result), Image.fromarray(_colour(dens * 0.5 + 0.5, "seismic")), 0.5)


def window_box(result: LAMResult, width: int = 2) -> Image.Image:
    """The SR image with the LAM window drawn as a red rectangle."""
    img = to_image(result.sr.clamp(0, 1))
    r, c, s = result.row, result.col, result.window
    ImageDraw.Draw(img).rectangle((c, r, c + s - 1, r + s - 1), outline=(255, 0, 0), width=width)
    return img


def lam_figure(results: dict[str, LAMResult]) -> Figure:
    """Static comparison, one row per model: SR with window | LAM overlay (DI in the title) | KDE view.
    The paper's Fig. 4 when given GVTNet and SwinIR on the same face and window."""
    fig = Figure(figsize=(9, 3.2 * len(results)), layout="constrained")
    axes = fig.subplots(len(results), 3, squeeze=False)
    for (name, res), ax in zip(results.items(), axes):
        for a, img, title in zip(ax, (window_box(res), lam_overlay(res), lam_kde(res)),
                                 (f"{name}: SR", f"LAM, DI {res.di:.2f}", "LAM (KDE)")):
            a.imshow(img)
            a.set_title(title)
            a.axis("off")
    return fig
