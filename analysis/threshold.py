"""Threshold effects on one face: re-run the same weights under other graph thresholds T and measure how
the graphs and the output change.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image
from matplotlib.figure import Figure
from plotly.subplots import make_subplots

from gvtnet.capture import capture
from gvtnet.inference import to_image
from gvtnet.metrics import psnr

from .graphs import edge_density


@dataclass
class Sweep:
    """thresholds (k,); density (k, groups) edge density (distinct nodes, mean over heads); mad (k,) mean
    absolute difference of the SR output from the model's own setting (`own`, values in [0, 1]);
    psnr_own (k,) PSNR (RGB, dB) against that output (inf where identical); psnr_hr (k,) against the HR
    face, or None; outputs (k, 3, sH, sW) clamped SR images; reference the model's own SR."""

    thresholds: np.ndarray
    density: np.ndarray
    mad: np.ndarray
    psnr_own: np.ndarray
    psnr_hr: np.ndarray | None
    outputs: torch.Tensor
    reference: torch.Tensor
    own: float
    minkowski_p: float
    neighbour_rule: str


def _uint8(x: torch.Tensor) -> np.ndarray:
    return np.asarray(to_image(x))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float("inf") if np.array_equal(a, b) else psnr(a, b, y_channel=False)


@torch.no_grad()
def sweep(model, lr: torch.Tensor, thresholds, hr: Image.Image | None = None, minkowski_p: float | None = None,
          neighbour_rule: str | None = None) -> Sweep:
    """Run `model` on lr (1, 3, h, w) at each threshold (optionally under another Minkowski order or
    neighbour rule); compare each output with the model's own (its own settings) and with `hr` if given."""
    model.eval()
    reference = model(lr).clamp(0, 1)
    changes = {k: v for k, v in (("minkowski_p", minkowski_p), ("neighbour_rule", neighbour_rule)) if v is not None}
    ref8 = _uint8(reference)
    hr8 = np.asarray(hr.convert("RGB")) if hr is not None else None
    density, outputs = [], []
    for t in thresholds:
        variant = model.variant(threshold=float(t), **changes)
        with capture(variant) as cap:
            outputs.append(variant(lr).clamp(0, 1))
        density.append([edge_density(recs[0]["adjacency"][0].cpu().numpy()).mean() for recs in cap.groups if recs])
    outputs = torch.cat(outputs)
    mad = (outputs - reference).abs().mean(dim=(1, 2, 3)).numpy()
    psnr_own = np.array([_psnr(_uint8(o[None]), ref8) for o in outputs])
    psnr_hr = np.array([_psnr(_uint8(o[None]), hr8) for o in outputs]) if hr8 is not None else None
    return Sweep(thresholds=np.asarray(thresholds, float), density=np.array(density), mad=mad, psnr_own=psnr_own,
                 psnr_hr=psnr_hr, outputs=outputs, reference=reference, own=model.cfg.threshold,
                 minkowski_p=changes.get("minkowski_p", model.cfg.minkowski_p),
                 neighbour_rule=changes.get("neighbour_rule", model.cfg.neighbour_rule))


def sweep_figure(s: Sweep) -> go.Figure:
    """Plotly curves against T: edge density per group; change from the model's own output; PSNR vs HR."""
    panels = ["edge density", "change from own output"] + (["PSNR vs HR (dB)"] if s.psnr_hr is not None else [])
    fig = make_subplots(1, len(panels), subplot_titles=panels, specs=[[{"secondary_y": i == 1} for i in range(len(panels))]])
    t = s.thresholds
    for g in range(s.density.shape[1]):
        fig.add_trace(go.Scatter(x=t, y=s.density[:, g], mode="lines+markers", name=f"group {g}"), 1, 1)
    fig.add_trace(go.Scatter(x=t, y=s.mad, mode="lines+markers", name="mean abs diff"), 1, 2)
    finite = np.where(np.isfinite(s.psnr_own), s.psnr_own, np.nan)  # identical outputs have infinite PSNR
    fig.add_trace(go.Scatter(x=t, y=finite, mode="lines+markers", name="PSNR vs own (dB)", line=dict(dash="dot")),
                  1, 2, secondary_y=True)
    if s.psnr_hr is not None:
        fig.add_trace(go.Scatter(x=t, y=s.psnr_hr, mode="lines+markers", name="PSNR vs HR"), 1, 3)
    for col in range(1, len(panels) + 1):
        fig.add_vline(x=s.own, line=dict(color="gray", dash="dash"), row=1, col=col)
    fig.update_xaxes(title_text="threshold T")
    fig.update_layout(title=f"threshold sweep (p = {s.minkowski_p}, rule '{s.neighbour_rule}'; own T = {s.own})",
                      margin=dict(l=10, r=10, t=60, b=10))
    return fig


def thumbnails(s: Sweep, at) -> list[tuple[float, Image.Image]]:
    """SR outputs at the swept thresholds nearest to each value of `at`, as (T, image) pairs."""
    picks = [int(np.abs(s.thresholds - a).argmin()) for a in at]
    return [(float(s.thresholds[i]), to_image(s.outputs[i : i + 1])) for i in picks]


def sweep_png(s: Sweep) -> Figure:
    """Static matplotlib version of `sweep_figure`."""
    panels = 3 if s.psnr_hr is not None else 2
    fig = Figure(figsize=(4.2 * panels, 3.4), layout="constrained")
    axes = fig.subplots(1, panels)
    for g in range(s.density.shape[1]):
        axes[0].plot(s.thresholds, s.density[:, g], ".-", label=f"group {g}")
    axes[0].set(title="edge density", xlabel="threshold T")
    axes[0].legend(fontsize=7)
    axes[1].plot(s.thresholds, s.mad, ".-")
    axes[1].set(title="mean abs diff from own output", xlabel="threshold T")
    if s.psnr_hr is not None:
        axes[2].plot(s.thresholds, s.psnr_hr, ".-")
        axes[2].set(title="PSNR vs HR (dB)", xlabel="threshold T")
    for ax in axes:
        ax.axvline(s.own, color="gray", ls="--", lw=0.8)
    return fig
