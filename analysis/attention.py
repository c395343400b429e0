"""Attention maps: where one query pixel looks, for a chosen group, block and head, drawn over the face.

A query LR pixel sits in one attention window; its softmax row spreads over that window's 64 tokens, i.e.
64 LR pixels. In the strided (GVT) layout those are one pixel per patch node, spread over the whole face;
in the contiguous (Swin) layout they are the query's 8 x 8 neighbourhood. Graph blocks are shown before
and after the adjacency is applied (post-softmax, unrenormalised: cut neighbours drop to 0).
"""
from __future__ import annotations

import matplotlib
import numpy as np
import plotly.graph_objects as go
from matplotlib.figure import Figure
from PIL import Image
from plotly.subplots import make_subplots

from .graphs import face_array
from .inspection import Inspection


def window_token_maps(padded: tuple[int, int], shift: int, ws: int, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) int maps: the attention window and the token within it of every pixel of the padded LR map,
    for a block that rolls by (-shift, -shift) before partitioning."""
    hgt, wid = padded
    r = ((np.arange(hgt) - shift) % hgt)[:, None]  # rolled coordinates of each original pixel
    c = ((np.arange(wid) - shift) % wid)[None, :]
    if layout == "strided":
        bh, bw = hgt // ws, wid // ws
        return (r % bh) * bw + c % bw, (r // bh) * ws + c // bw
    return (r // ws) * (wid // ws) + c // ws, (r % ws) * ws + c % ws


def attention_map(inspection: Inspection, group: int, block: int, head: int, query: tuple[int, int],
                  after_graph: bool = True) -> np.ndarray:
    """(h, w) attention of LR pixel query = (row, col) over the LR face, for one head of block `block` of
    group `group`; zero outside the query's window. after_graph: graph blocks after the adjacency (ignored
    for Swin-type blocks, which have none)."""
    blk = inspection.block(group, block)
    attn = blk.attention_graph if after_graph and blk.attention_graph is not None else blk.attention
    win, tok = window_token_maps(inspection.padded_size, blk.shift, inspection.window_size, inspection.layout)
    k, t = win[tuple(query)], tok[tuple(query)]
    m = np.zeros(inspection.padded_size, np.float32)
    inside = win == k
    m[inside] = attn[k, head, t][tok[inside]]
    h, w = inspection.lr_size
    return m[:h, :w]


def attention_maps(inspection: Inspection, group: int, block: int, head: int, query: tuple[int, int]) -> dict:
    """{'attention': map} for Swin-type blocks; {'before graph': ..., 'after graph': ...} for graph blocks."""
    if inspection.block(group, block).kind == "G":
        return {"before graph": attention_map(inspection, group, block, head, query, after_graph=False),
                "after graph": attention_map(inspection, group, block, head, query, after_graph=True)}
    return {"attention": attention_map(inspection, group, block, head, query)}


def attention_overlay(face, amap: np.ndarray, vmax: float | None = None, cmap: str = "inferno") -> Image.Image:
    """An LR-size map nearest-upscaled to the face, coloured and blended over it (60% map where it is
    non-zero, the face elsewhere)."""
    img = face_array(face)
    scale = img.shape[0] // amap.shape[0]
    big = np.kron(amap, np.ones((scale, scale)))
    norm = big / (vmax or big.max() or 1)
    colour = matplotlib.colormaps[cmap](norm)[..., :3] * 255
    alpha = np.where(big > 0, 0.6, 0.0)[..., None]
    return Image.fromarray((img * (1 - alpha) + colour * alpha).astype(np.uint8))


def attention_figure(inspection: Inspection, face, group: int, block: int, head: int,
                     query: tuple[int, int]) -> go.Figure:
    """Plotly overlay of `attention_maps` on the HR face (before and after the graph side by side for graph
    blocks, on one colour scale); the query pixel is marked, hovering shows the weights."""
    maps = attention_maps(inspection, group, block, head, query)
    s = inspection.scale
    face_arr = face_array(face, tuple(inspection.sr.shape[-2:]))
    vmax = max(float(m.max()) for m in maps.values()) or 1.0
    fig = make_subplots(1, len(maps), subplot_titles=list(maps), horizontal_spacing=0.03)
    qy, qx = (query[0] + 0.5) * s - 0.5, (query[1] + 0.5) * s - 0.5
    for col, m in enumerate(maps.values(), start=1):
        big = np.kron(m, np.ones((s, s)))
        fig.add_trace(go.Image(z=face_arr, hoverinfo="skip"), 1, col)
        fig.add_trace(go.Heatmap(z=np.where(big > 0, big, np.nan), zmin=0, zmax=vmax, colorscale="Inferno",
                                 opacity=0.65, showscale=col == len(maps),
                                 hovertemplate="HR (%{y}, %{x}): %{z:.4f}<extra></extra>"),
                      1, col)
        fig.add_trace(go.Scatter(x=[qx], y=[qy], mode="markers", hoverinfo="skip",
                                 marker=dict(symbol="x", size=12, color="#00ff66", line=dict(width=2))), 1, col)
    kind = "graph" if len(maps) == 2 else "Swin-type"
    fig.update_layout(title=f"group {group}, block {block} ({kind}), head {head}, query LR {tuple(query)}",
                      showlegend=False, margin=dict(l=10, r=10, t=60, b=10))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed")
    return fig


def attention_png(inspection: Inspection, face, group: int, block: int, head: int, query: tuple[int, int]) -> Figure:
    """Static matplotlib version of `attention_figure`."""
    maps = attention_maps(inspection, group, block, head, query)
    face_img = Image.fromarray(face_array(face, tuple(inspection.sr.shape[-2:])))
    vmax = max(float(m.max()) for m in maps.values()) or 1.0
    fig = Figure(figsize=(4 * len(maps), 4.3), layout="constrained")
    s = inspection.scale
    for ax, (title, m) in zip(fig.subplots(1, len(maps), squeeze=False)[0], maps.items()):
        ax.imshow(attention_overlay(face_img, m, vmax))
        ax.plot((query[1] + 0.5) * s - 0.5, (query[0] + 0.5) * s - 0.5, "x", color="#00ff66", ms=10, mew=2)
        ax.set_title(f"group {group}, block {block}, head {head}: {title}", fontsize=9)
        ax.axis("off")
    return fig
