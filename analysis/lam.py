"""Local Attribution Maps (LAM, Gu and Dong, CVPR 2021) and the diffusion index, for any SR nn.Module.

As the reference code (X-Lowlevel-Vision/LAM_Demo) computes it: path integrated gradients of the window's gradient magnitude
D(F(x)) along a progressive Gaussian blur of the input, from K(sigma) * I to I. The reference runs its
`fold` path points one at a time; they are independent, so here they run in batches (same map to float
error, several times faster on a CPU), optionally under bf16 autocast, and several models' maps of one
window run side by side on one shared path (`attribution_maps`). A process that runs LAMs should call
gvtnet.compat.keep_freed_memory() at its start, as the app and the commands do: each batch frees its
activations, which glibc would otherwise fault in again on the next (the app's x4 LAM 0.82-0.84x the time with it).
"""
from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import matplotlib
import matplotlib.patches
import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import Saliency
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from PIL import Image, ImageDraw
from scipy.stats import gaussian_kde

from gvtnet.images import bicubic_upscale
from gvtnet.inference import autocast, freeze, resolve_precision, to_image
from gvtnet.model import GVTNet


@dataclass
class LAMResult:
    """map: (h, w) in [0, 1]; attribution: (3, h, w); di: diffusion index; sr: (1, 3, sH, sW) model(lr)
    (float32, computed at `precision`, 'fp32' or 'bf16'); the window is rows [row, row + window) x cols
    [col, col + window) of the SR image."""

    map: np.ndarray
    attribution: np.ndarray
    di: float
    lr: torch.Tensor
    sr: torch.Tensor
    row: int
    col: int
    window: int
    precision: str = "fp32"


def window_gradient(y: torch.Tensor, row: int, col: int, window: int) -> torch.Tensor:
    """D: (B, C, H, W) SR images -> (B,) the forward-difference gradient magnitude summed over channels
    and over the window rows [row, row + window) x cols [col, col + window), truncated at the image edges
    (a negative row or col starts the window at 0). A window wholly outside the (H-1, W-1) gradient grid
    raises ValueError: its map would be all zero."""
    r0, r1 = max(row, 0), min(row + window, y.shape[-2] - 1)  # on the (H-1, W-1) gradient grid
    c0, c1 = max(col, 0), min(col + window, y.shape[-1] - 1)
    if r0 >= r1 or c0 >= c1:
        raise ValueError(f"the {window} px window at ({row}, {col}) lies outside the {y.shape[-2]}x{y.shape[-1]} "
                         "SR image")
    # Only the window and its next row and column: the same values, and LAM's backward pass then
    # fills and adds window-sized gradients, not image-sized ones.
    y = y[:, :, r0 : r1 + 1, c0 : c1 + 1]
    dh = (y[:, :, :-1, :] - y[:, :, 1:, :]) ** 2
    dw = (y[:, :, :, :-1] - y[:, :, :, 1:]) ** 2
    return torch.sqrt(dh[:, :, :, :-1] + dw[:, :, :-1, :]).sum(dim=(1, 2, 3))


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


# Memory a path point holds for the backward pass, per LR pixel x channel x block of a GVTNet: official-x4
# on a 32x32 face took about 13 GB at 25 points a batch (0.52 GB a point; 32 * 32 * 180 * 36 units).
BYTES_PER_UNIT = 80


def available_memory() -> int:
    """Bytes of memory this machine can still give (Linux: MemAvailable), or 4 GB where it cannot say."""
    try:
        with open("/proc/meminfo") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable"))
    except (OSError, StopIteration, ValueError):
        return 4 << 30


def max_batch(model: torch.nn.Module, lr: torch.Tensor, parallel_models: int = 1) -> int:
    """The most path points a batch whose activations fit in half the available memory, shared by
    `parallel_models` maps computed at once: modelled for a GVTNet (BYTES_PER_UNIT), 50 for other models."""
    cfg = getattr(model, "cfg", None)
    if cfg is None or not hasattr(model, "padded_size"):
        return 50
    h, w = model.padded_size(*lr.shape[-2:])
    per_point = BYTES_PER_UNIT * h * w * cfg.embed_dim * sum(cfg.depths)
    return max(1, available_memory() // 2 // parallel_models // per_point)


def next_batch_size(timings: list[tuple[int, float]], remaining: int, cap: int, first: int = 4) -> int:
    """Path points for the next batch, from (points, seconds) of the batches so far: `first` for the first
    two, then twice the last size while that keeps lowering the time per point (by 5% or more), else the
    size that was fastest per point; never more than `cap` or the `remaining` points. The first batch is
    a warm-up and is not compared: its one-time costs (fresh memory's page faults, kernel set-up) made
    official-x4 run 10-30% slower a point, enough to make a doubling look better than it was. Larger
    batches amortise each operator's fixed cost, until their activations fall out of the caches or grow
    past what the allocator keeps (fresh pages on every batch): where that happens differs by CPU and
    model, so it is measured on the batches the map needs anyway, not chosen in advance."""
    warm = timings[1:]
    if not warm:
        size = first
    else:
        per_point = [t / n for n, t in warm]
        grew = len(warm) == 1 or per_point[-1] < 0.95 * per_point[-2] and warm[-1][0] > warm[-2][0]
        size = 2 * warm[-1][0] if grew else warm[min(range(len(warm)), key=per_point.__getitem__)][0]
    return max(1, min(size, cap, remaining))


def local_attribution_map(
    model: torch.nn.Module,
    lr: torch.Tensor,
    row: int,
    col: int,
    window: int = 16,
    sigma: float = 1.2,
    fold: int = 50,
    kernel_size: int = 9,
    batch_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    precision: str = "fp32",
) -> LAMResult:
    """LAM of the SR window at (row, col) (SR pixels, top-left) of side `window`, for lr (1, 3, h, w) in
    [0, 1]. The `fold` path points run `batch_size` at a time (1 = the reference's schedule; None: the
    size that runs fastest on this machine, found while the map is computed, see `next_batch_size`);
    progress(done, total) is called after each batch. `precision`: 'fp32', 'bf16' (autocast of the
    forward and backward passes; the path, the window's D and the sums stay fp32) or 'auto' (bf16 where
    it measures faster on the device, see gvtnet.inference.resolve_precision)."""
    return attribution_maps({"model": model}, lr, row, col, window, sigma, fold, kernel_size, batch_size, progress,
                            precision, parallel=False)["model"]


def attribution_maps(
    models: dict[str, torch.nn.Module],
    lr: torch.Tensor,
    row: int,
    col: int,
    window: int = 16,
    sigma: float = 1.2,
    fold: int = 50,
    kernel_size: int = 9,
    batch_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    precision: str = "fp32",
    parallel: bool = True,
) -> dict[str, LAMResult]:
    """local_attribution_map of every model for the same window, on one shared blur path: {name: result}.
    With `parallel`, each model runs in a thread of its own (torch releases the GIL, so with
    torch.set_num_threads(1) each model has a core); progress(done, total) counts the path points of all."""
    x, dx = blur_path(lr, sigma, fold, kernel_size)
    precision = resolve_precision(precision, lr.device)
    done, lock = dict.fromkeys(models, 0), threading.Lock()

    def one(name):
        def step(d, _):
            with lock:  # the threads' counts, added up
                done[name] = d
                if progress:
                    progress(sum(done.values()), fold * len(models))
        return _lam(models[name], lr, x, dx, row, col, window, batch_size, step, precision,
                    len(models) if parallel else 1)

    if parallel and len(models) > 1:
        with ThreadPoolExecutor(len(models)) as pool:  # each in a copy of the caller's context (progress bars)
            futures = {name: pool.submit(contextvars.copy_context().run, one, name) for name in models}
            return {name: f.result() for name, f in futures.items()}
    return {name: one(name) for name in models}


def _lam(model, lr, x, dx, row, col, window, batch_size, progress, precision, parallel_models=1) -> LAMResult:
    """LAM on a given blur path (x, dx of blur_path); precision is 'fp32' or 'bf16'; parallel_models: how
    many maps run at once (they share the memory `max_batch` budgets)."""
    model.eval()  # the path points must not interact (no dropout, per-sample everything)
    if isinstance(model, GVTNet):
        # A snapshot (the model itself if it is one already): its weights take no gradient, so none of their
        # backward work is recorded, and in bf16 they are rounded once, not on every batch (the same map).
        model = freeze(model, precision)
    fold = dx.shape[0]
    last = {}

    def window_d(inp):
        out = model(inp).float()
        last["sr"] = out[-1:].detach()  # the final batch ends at x[fold] = lr: its output is model(lr), not recomputed
        return window_gradient(out, row, col, window)

    saliency = Saliency(window_d)
    attr = torch.zeros_like(lr[0], dtype=torch.float64)
    cap = max_batch(model, lr, parallel_models)
    timings: list[tuple[int, float]] = []
    start = 1
    while start <= fold:
        size = batch_size or next_batch_size(timings, fold + 1 - start, cap)
        stop = min(start + size, fold + 1)
        t0 = time.perf_counter()
        with autocast(precision, lr.device):
            grad = saliency.attribute(x[start:stop].clone().requires_grad_(), abs=False)
        grad = torch.where(grad.isnan(), 0.0, grad.float())  # sqrt'(0) = inf: a flat SR region gives no attribution
        attr += (grad.double() * dx[start - 1 : stop - 1].double()).sum(0)
        timings.append((stop - start, time.perf_counter() - t0))
        if progress:
            progress(stop - 1, fold)
        start = stop
    attr = (attr / fold).float()
    m = attr.sum(0).abs().numpy()
    m = m / m.max() if m.max() > 0 else m
    return LAMResult(map=m, attribution=attr.numpy(), di=diffusion_index(m), lr=lr, sr=last["sr"], row=row,
                     col=col, window=window, precision=precision)


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


MASS_FRACTIONS = (0.5, 0.9, 0.99)
SPREAD_CAPTION = ("How far each window reaches: the attribution on a log scale (bright: strong, dark: a "
                  "thousandth of the peak or less) with contours around the smallest areas holding 50%, 90% and "
                  "99% of it; wider contours mean a larger DI.")


def mass_levels(m: np.ndarray, fractions=MASS_FRACTIONS) -> tuple[np.ndarray, np.ndarray]:
    """(levels, areas), each (len(fractions),): the pixels of m >= levels[i] are the smallest set holding
    fractions[i] of the map's total, and areas[i] is that set's size as a fraction of the pixels (0 for an
    all-zero map)."""
    a = np.sort(np.asarray(m, np.float64).ravel())[::-1]
    total = np.cumsum(a)
    if total[-1] <= 0:
        return np.zeros(len(fractions)), np.zeros(len(fractions))
    k = np.minimum(np.searchsorted(total, np.asarray(fractions) * total[-1] * (1 - 1e-12)), a.size - 1)
    return a[k], (k + 1) / a.size


def spread_figure(results: dict[str, LAMResult], fractions=MASS_FRACTIONS, floor: float = 1e-3) -> Figure:
    """One panel per model, side by side: the map on a log scale from `floor` to 1 over the grey face,
    contours of the smallest areas holding each fraction of the attribution, and the window; DI and the
    areas in the titles. The faint tail that DI measures, and the linear overlay hides, is visible here."""
    fig = Figure(figsize=(3.3 * len(results) + 0.8, 4.5), layout="constrained")
    axes = fig.subplots(1, len(results), squeeze=False)[0]
    colours = matplotlib.colormaps["cool"](np.linspace(0, 1, len(fractions)))
    for ax, (name, res) in zip(axes, results.items()):
        sh, sw = res.sr.shape[-2:]
        h, w = res.map.shape
        ax.imshow(_upscaled_lr(res).convert("L"), cmap="gray", extent=(0, sw, sh, 0))
        im = ax.imshow(np.clip(res.map, floor, 1), cmap="inferno", norm=LogNorm(floor, 1), alpha=0.7,
                       extent=(0, sw, sh, 0), interpolation="nearest")
        levels, areas = mass_levels(res.map, fractions)
        yy, xx = (np.arange(h) + 0.5) * sh / h, (np.arange(w) + 0.5) * sw / w
        for level, colour, f in sorted(zip(levels, colours, fractions), key=lambda t: t[0]):
            if 0 < level < res.map.max():  # a contour needs values on both sides
                ax.contour(xx, yy, res.map, levels=[level], colors=[colour], linewidths=1.3)
            ax.plot([], [], color=colour, label=f"{f:.0%}")
        ax.add_patch(matplotlib.patches.Rectangle((res.col, res.row), res.window, res.window, fill=False,
                                                  edgecolor="lime", linewidth=1.2))
        ax.set_title(f"{name}: DI {res.di:.2f}\n" + ", ".join(f"{f:.0%} in {a:.1%}" for f, a in zip(fractions, areas)),
                     fontsize=9)
        ax.axis("off")
    # The legend below the images, not on them; an empty band on top, where an app draws its image label.
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=len(fractions), fontsize=8,
               title="contours: the smallest area holding this share of the attribution", title_fontsize=8)
    fig.colorbar(im, ax=list(axes), shrink=0.8, label="attribution / peak (log)")
    fig.get_layout_engine().set(rect=(0, 0, 1, 0.92))
    return fig


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
