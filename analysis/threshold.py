"""Threshold effects: re-run the same weights under other graph thresholds T and measure how the graphs
and the output change, on one face (`sweep`) or over a set of faces (`sweep_faces`), where the graph off
is the reference that says whether T matters at all.

Over a folder of faces from the command line: `python -m analysis.studies.sweep` (analysis/studies/sweep.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
from matplotlib.figure import Figure
from PIL import Image
from plotly.subplots import make_subplots

from gvtnet.capture import capture
from gvtnet.data import FacePairs
from gvtnet.inference import to_image, to_uint8
from gvtnet.metrics import psnr

from .graphs import edge_density


@dataclass
class Sweep:
    """thresholds (k,); density (k, groups) edge density (distinct nodes, mean over heads); mad (k,) mean
    absolute difference of the SR output from the model's own setting (`own`, values in [0, 1]);
    psnr_own (k,) PSNR (Y channel, dB, as everywhere in the project) against that output (inf where
    identical); psnr_hr (k,) against the HR face, or None; outputs (k, 3, sH, sW) clamped SR images;
    reference the model's own SR."""

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
    return float("inf") if np.array_equal(a, b) else psnr(a, b, y_channel=True)


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
    panels = ["edge density", "change from own output"] + (["PSNR-Y vs HR (dB)"] if s.psnr_hr is not None else [])
    fig = make_subplots(1, len(panels), subplot_titles=panels, specs=[[{"secondary_y": i == 1} for i in range(len(panels))]])
    t = s.thresholds
    for g in range(s.density.shape[1]):
        fig.add_trace(go.Scatter(x=t, y=s.density[:, g], mode="lines+markers", name=f"group {g}"), 1, 1)
    fig.add_trace(go.Scatter(x=t, y=s.mad, mode="lines+markers", name="mean abs diff"), 1, 2)
    finite = np.where(np.isfinite(s.psnr_own), s.psnr_own, np.nan)  # identical outputs have infinite PSNR
    fig.add_trace(go.Scatter(x=t, y=finite, mode="lines+markers", name="PSNR-Y vs own (dB)", line=dict(dash="dot")),
                  1, 2, secondary_y=True)
    if s.psnr_hr is not None:
        fig.add_trace(go.Scatter(x=t, y=s.psnr_hr, mode="lines+markers", name="PSNR-Y vs HR"), 1, 3)
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
        axes[2].set(title="PSNR-Y vs HR (dB)", xlabel="threshold T")
    for ax in axes:
        ax.axvline(s.own, color="gray", ls="--", lw=0.8)
    return fig


# ----------------------------------------------------------------------------------------------------
# Over a set of faces: does T matter for this model at all?


@dataclass
class FacesSweep:
    """thresholds (k,); psnr_change (k, faces): PSNR (Y, dB) against the HR face at T minus the PSNR at the
    model's own setting; density (k, faces): edge density (distinct nodes, mean over every graph, head
    and window); off_change (faces,): the PSNR change with the graph off (every edge kept), the reference;
    own the model's own T."""

    thresholds: np.ndarray
    psnr_change: np.ndarray
    density: np.ndarray
    off_change: np.ndarray
    own: float
    minkowski_p: float
    neighbour_rule: str

    @property
    def faces(self) -> int:
        return self.psnr_change.shape[1]

    def rows(self) -> list[list]:
        """[T, mean PSNR change, its std, mean edge density, its std] per threshold, then the graph off."""
        rows = [[float(t), *_mean_std(c), *_mean_std(d)] for t, c, d in zip(self.thresholds, self.psnr_change, self.density)]
        return rows + [["graph off", *_mean_std(self.off_change), 1.0, 0.0]]


def _mean_std(x: np.ndarray) -> tuple[float, float]:
    return float(np.mean(x)), float(np.std(x))


@torch.no_grad()
def _restore(model, lr: torch.Tensor, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """((N, H, W, 3) uint8 restorations, (N,) edge density of each face's graphs) of lr (N, 3, h, w)."""
    outs, density = [], []
    for i in range(0, len(lr), batch):
        with capture(model) as cap:
            outs.append(to_uint8(model(lr[i : i + batch])))
        adj = [rec["adjacency"].flatten(1, -3).cpu().numpy() for recs in cap.groups for rec in recs]
        density.append(np.concatenate([edge_density(a) for a in adj], axis=1).mean(axis=1) if adj else
                       np.full(len(outs[-1]), np.nan))
    return np.concatenate(outs), np.concatenate(density)


def sweep_faces(model, pairs: FacePairs, thresholds, minkowski_p: float | None = None,
                neighbour_rule: str | None = None, batch: int = 16, progress=None) -> FacesSweep:
    """Restore every face of `pairs` at each threshold (optionally under another Minkowski order or
    neighbour rule) and with the graph off; PSNR changes are against the model's own setting.
    progress(done, total) is called after each setting."""
    model.eval()
    changes = {k: v for k, v in (("minkowski_p", minkowski_p), ("neighbour_rule", neighbour_rule)) if v is not None}
    lr = pairs.lr.float().div(255)
    hr = pairs.hr.permute(0, 2, 3, 1).numpy()

    def face_psnr(sr: np.ndarray) -> np.ndarray:
        return np.array([psnr(a, b) for a, b in zip(sr, hr)])

    settings = [model] + [model.variant(threshold=float(t), **changes) for t in thresholds] + \
        [model.variant(use_graph=False)]
    results = []
    for i, m in enumerate(settings):
        sr, density = _restore(m, lr, batch)
        results.append((face_psnr(sr), density))
        if progress is not None:
            progress(i + 1, len(settings))
    own = results[0][0]
    return FacesSweep(thresholds=np.asarray(thresholds, float),
                      psnr_change=np.stack([p - own for p, _ in results[1:-1]]),
                      density=np.stack([d for _, d in results[1:-1]]),
                      off_change=results[-1][0] - own, own=model.cfg.threshold,
                      minkowski_p=changes.get("minkowski_p", model.cfg.minkowski_p),
                      neighbour_rule=changes.get("neighbour_rule", model.cfg.neighbour_rule))


def _band(fig, t, y, name: str, colour: str, row: int, col: int):
    """Mean line with a +-1 std band over faces (axis 1 of y)."""
    mean, std = y.mean(axis=1), y.std(axis=1)
    fig.add_trace(go.Scatter(x=np.r_[t, t[::-1]], y=np.r_[mean + std, (mean - std)[::-1]], fill="toself",
                             fillcolor=colour.replace("rgb", "rgba").replace(")", ",0.2)"), line=dict(width=0),
                             hoverinfo="skip", showlegend=False), row, col)
    fig.add_trace(go.Scatter(x=t, y=mean, mode="lines+markers", name=name, line=dict(color=colour)), row, col)


def faces_figure(s: FacesSweep) -> go.Figure:
    """Plotly: PSNR change against the model's own setting and edge density against T, mean over the faces
    with a +-1 std band, and the graph-off change as a dashed reference line."""
    fig = make_subplots(1, 2, subplot_titles=[f"PSNR change (dB, Y) over {s.faces} faces", "edge density"])
    t = s.thresholds
    _band(fig, t, s.psnr_change, "PSNR change at T", "rgb(31,119,180)", 1, 1)
    off, off_std = _mean_std(s.off_change)
    fig.add_trace(go.Scatter(x=[t.min(), t.max()], y=[off, off], mode="lines", line=dict(color="gray", dash="dash"),
                             name=f"graph off: {off:+.3f} ± {off_std:.3f} dB"), 1, 1)
    _band(fig, t, s.density, "edge density at T", "rgb(214,39,40)", 1, 2)
    for col in (1, 2):
        fig.add_vline(x=s.own, line=dict(color="gray", dash="dot"), row=1, col=col)
    fig.update_xaxes(title_text="threshold T")
    fig.update_layout(title=f"threshold sweep over {s.faces} faces (p = {s.minkowski_p}, rule '{s.neighbour_rule}'; "
                            f"own T = {s.own}, dotted)", margin=dict(l=10, r=10, t=60, b=10))
    return fig


def faces_png(s: FacesSweep) -> Figure:
    """Static matplotlib version of `faces_figure`."""
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    ax_psnr, ax_density = fig.subplots(1, 2)
    for ax, y, title in ((ax_psnr, s.psnr_change, f"PSNR change (dB, Y) over {s.faces} faces"),
                         (ax_density, s.density, "edge density")):
        mean, std = y.mean(axis=1), y.std(axis=1)
        ax.fill_between(s.thresholds, mean - std, mean + std, alpha=0.2)
        ax.plot(s.thresholds, mean, ".-")
        ax.axvline(s.own, color="gray", ls=":", lw=0.8)
        ax.set(title=title, xlabel="threshold T")
    ax_psnr.axhline(s.off_change.mean(), color="gray", ls="--", lw=1, label="graph off")
    ax_psnr.legend(fontsize=8)
    return fig
