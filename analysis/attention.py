"""Attention: where one query pixel looks, for a chosen group, block and head, drawn over the face; how far
each block looks and where its mass goes, over the network's depth; and where the whole network looks
(attention rollout). Everything works for GVTNet and its SwinIR baseline alike.

A query LR pixel sits in one attention window; its softmax row spreads over that window's 64 tokens, i.e.
64 LR pixels. In the strided (GVT) layout those are one pixel per patch node, spread over the whole face;
in the contiguous (Swin) layout they are the query's 8 x 8 neighbourhood. Graph blocks are shown before
and after the adjacency is applied (post-softmax, unrenormalised: cut neighbours drop to 0, the released
self-loop doubles the query's own weight). So a graph block's rows no longer sum to 1, and two things that
the graph does are measured apart: how far a query reaches among the keys it keeps (its row renormalised,
`attention_distance`) and how much softmax weight it loses to the cut (`mass_cut`). Inputs are
mirror-padded to the window grid, so some tokens are padding pixels: every measure here counts the weight
they receive.
"""
from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import matplotlib
import numpy as np
import plotly.graph_objects as go
from matplotlib.figure import Figure
from PIL import Image
from plotly.subplots import make_subplots

from .graphs import face_array
from .inspection import Geometry, Inspection, window_token


def window_token_maps(padded: tuple[int, int], shift: int, ws: int, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) int maps: the attention window and the token within it of every pixel of the padded LR map,
    for a block that rolls by (-shift, -shift) before partitioning."""
    rows, cols = np.indices(padded)
    return window_token(Geometry(padded, shift, ws, layout), rows, cols)


@functools.lru_cache(maxsize=64)
def token_pixels(padded: tuple[int, int], shift: int, ws: int, layout: str) -> np.ndarray:
    """(nW, ws*ws) int: the flat index r*W + c in the padded LR map of token t of window k (the inverse of
    `window_token_maps`; every pixel appears once). Cached and read-only."""
    win, tok = window_token_maps(padded, shift, ws, layout)
    pixels = np.empty((win.max() + 1, ws * ws), np.int64)
    pixels[win.ravel(), tok.ravel()] = np.arange(win.size)
    pixels.setflags(write=False)
    return pixels


@functools.lru_cache(maxsize=64)
def token_distances(padded: tuple[int, int], shift: int, ws: int, layout: str) -> np.ndarray:
    """(nW, n, n) float32: Euclidean distance in LR pixels between the pixels of every two tokens of each
    window (at their places in the padded map). Cached and read-only."""
    rows, cols = np.divmod(token_pixels(padded, shift, ws, layout), padded[1])
    dist = np.hypot(rows[:, :, None] - rows[:, None, :], cols[:, :, None] - cols[:, None, :]).astype(np.float32)
    dist.setflags(write=False)
    return dist


def _inside(inspection: Inspection, blk) -> np.ndarray:
    """(nW, n) bool: which tokens of a block's windows are pixels of the face, not of the mirror padding."""
    pixels = token_pixels(inspection.padded_size, blk.shift, inspection.window_size, inspection.layout)
    rows, cols = np.divmod(pixels, inspection.padded_size[1])
    h, w = inspection.lr_size
    return (rows < h) & (cols < w)


def applied(blk) -> np.ndarray:
    """(nW, heads, n, n) the weights a block applies to its values: after the graph for graph blocks."""
    return blk.attention_graph if blk.attention_graph is not None else blk.attention


def kept_reach(weights: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """(..., n, n) attention rows as applied (query -> key), distances between the tokens broadcastable to them ->
    (..., n) each query's reach among the keys it keeps: the distance averaged over its row renormalised to
    sum 1. Renormalised because a graph block's rows sum to less than 1 where the graph cut keys: weighting by
    them would count the mass lost as a shorter reach, however far the kept keys are. 0 for an all-zero row."""
    total = weights.sum(-1)
    return np.divide((weights * dist).sum(-1), total, out=np.zeros_like(total), where=total > 0)


def cut_weight(soft: np.ndarray, after: np.ndarray) -> np.ndarray:
    """(..., n, n) softmax rows and the same rows after the graph -> (..., n) the softmax weight on the keys
    the graph cut (zero after it), i.e. 1 minus the softmax weight on the keys it kept; 0 without a graph."""
    return (soft * (after == 0)).sum(-1)


def attention_distance(inspection: Inspection, group: int, block: int) -> np.ndarray:
    """(heads,) mean attention distance in LR pixels (the ViT paper's Fig. 7) among the keys kept: for each
    query token, `kept_reach` of its row as the network applies it (after the graph for graph blocks, with
    the doubled self-loop at distance 0), averaged over the queries of every window that are face pixels.
    A graph that cuts half of a row's mass but keeps keys just as far leaves it unchanged; the mass cut is
    `mass_cut`. Keys in the mirror padding count at their place in the padded map."""
    blk = inspection.block(group, block)
    inside = _inside(inspection, blk)
    dist = token_distances(inspection.padded_size, blk.shift, inspection.window_size, inspection.layout)
    per_query = kept_reach(applied(blk), dist[:, None])  # (nW, heads, n)
    return per_query.transpose(1, 0, 2)[:, inside].mean(-1)


def mass_cut(inspection: Inspection, group: int, block: int) -> np.ndarray:
    """(heads,) the softmax weight the graph cut from each query's row (`cut_weight`, the `AttentionMass`
    field removed), averaged over the queries of every window that are face pixels; 0 for Swin-type blocks."""
    return attention_mass(inspection, group, block).removed.mean(-1)


@dataclass
class AttentionMass:
    """Per head, one value per query token that is a face pixel (heads, queries): row_sum, the total weight
    of the query's row as applied (after the graph; 1 for Swin-type blocks); removed, the softmax mass on
    keys the graph cut (`cut_weight`); self_weight, the weight on the query itself as applied (doubled by
    the released self-loop); padding, the share of the applied row that falls on keys in the mirror padding."""

    row_sum: np.ndarray
    removed: np.ndarray
    self_weight: np.ndarray
    padding: np.ndarray


def attention_mass(inspection: Inspection, group: int, block: int) -> AttentionMass:
    """Where the mass of each query's attention row goes in one block (see `AttentionMass`)."""
    blk = inspection.block(group, block)
    inside = _inside(inspection, blk)
    soft, after = blk.attention, applied(blk)  # (nW, heads, n, n)
    row_sum = after.sum(-1)
    diag = np.arange(after.shape[-1])
    padding = (after * ~inside[:, None, None, :]).sum(-1) / row_sum
    per_query = {"row_sum": row_sum, "removed": cut_weight(soft, after),
                 "self_weight": after[..., diag, diag], "padding": padding}
    return AttentionMass(**{k: v.transpose(1, 0, 2)[:, inside] for k, v in per_query.items()})


HEAD_FUSIONS = {"mean": np.mean, "max": np.max, "min": np.min}


def rollout(inspection: Inspection, query: tuple[int, int], head_fusion: str = "mean", residual: bool = True,
            discard_ratio: float = 0.0, padded: bool = False) -> np.ndarray:
    """(h, w) attention rollout (Abnar and Zuidema 2020) of LR pixel query = (row, col): how much of the
    network's last representation of that pixel is drawn, through the attention of every block, from each
    input pixel. Each block's weights (after the graph) are fused over heads (`HEAD_FUSIONS`), the weakest
    `discard_ratio` share of each row's keys is dropped, the identity is added for the residual branch and
    rows are renormalised; the blocks' windows differ (layout, roll), so each is a (H*W, H*W) matrix over
    the padded LR pixels, block-diagonal over its windows, and the matrices are multiplied through the
    network. Convolutions (the depthwise q/k/v, each group's 3x3 conv) and MLPs are ignored.
    The full map over the padded grid sums to 1 (padded=True returns it, (H, W)); the face part returned by
    default sums to 1 minus the share drawn from the mirror padding."""
    if head_fusion not in HEAD_FUSIONS:
        raise ValueError(f"head_fusion must be one of {', '.join(HEAD_FUSIONS)}, got {head_fusion!r}")
    if not 0 <= discard_ratio < 1:
        raise ValueError(f"discard_ratio must be in [0, 1), got {discard_ratio}")
    h, w = inspection.lr_size
    if not (0 <= query[0] < h and 0 <= query[1] < w):
        raise ValueError(f"query {tuple(query)} is not an LR pixel of the {w}x{h} face")
    hgt, wid = inspection.padded_size
    row = np.zeros(hgt * wid)
    row[query[0] * wid + query[1]] = 1.0
    for blk in reversed(inspection.blocks):  # row @ M_L @ ... @ M_1, from the last block down
        a = HEAD_FUSIONS[head_fusion](applied(blk), axis=1).astype(np.float64)  # (nW, n, n)
        drop = int(discard_ratio * a.shape[-1])
        if drop:
            weakest = np.argpartition(a, drop, axis=-1)[..., :drop]
            np.put_along_axis(a, weakest, 0.0, axis=-1)
        if residual:
            a = a + np.eye(a.shape[-1])
        a /= a.sum(-1, keepdims=True)
        pixels = token_pixels(inspection.padded_size, blk.shift, inspection.window_size, inspection.layout)
        row[pixels] = np.einsum("kq,kqj->kj", row[pixels], a)  # pixels is a permutation: row is rewritten
    full = row.reshape(hgt, wid)
    return full if padded else full[:h, :w]


def attention_map(inspection: Inspection, group: int, block: int, head: int, query: tuple[int, int],
                  after_graph: bool = True, padded: bool = False) -> np.ndarray:
    """(h, w) attention of LR pixel query = (row, col) over the LR face, for one head of block `block` of
    group `group`; zero outside the query's window. after_graph: graph blocks after the adjacency (ignored
    for Swin-type blocks, which have none). padded=True: the (H, W) map over the padded grid the block saw,
    which also holds the weight on keys in the mirror padding."""
    blk = inspection.block(group, block)
    attn = applied(blk) if after_graph else blk.attention
    win, tok = window_token_maps(inspection.padded_size, blk.shift, inspection.window_size, inspection.layout)
    k, t = win[tuple(query)], tok[tuple(query)]
    m = np.zeros(inspection.padded_size, np.float32)
    inside = win == k
    m[inside] = attn[k, head, t][tok[inside]]
    h, w = inspection.lr_size
    return m if padded else m[:h, :w]


def attention_maps(inspection: Inspection, group: int, block: int, head: int, query: tuple[int, int],
                   padded: bool = False) -> dict:
    """{'attention': map} for Swin-type blocks; {'before graph': ..., 'after graph': ...} for graph blocks."""
    if inspection.block(group, block).kind == "G":
        return {f"{when} graph": attention_map(inspection, group, block, head, query, when == "after", padded)
                for when in ("before", "after")}
    return {"attention": attention_map(inspection, group, block, head, query, padded=padded)}


def _map_titles(inspection: Inspection, padded_maps: dict) -> dict:
    """{title with the row's total weight and, for padded inputs, its share in the mirror padding: LR map}."""
    h, w = inspection.lr_size
    out = {}
    for name, m in padded_maps.items():
        face, total = m[:h, :w], float(m.sum())
        pad = f", {1 - face.sum() / total:.0%} on the padding" if inspection.padded_size != (h, w) else ""
        out[f"{name} (sum {total:.2f}{pad})"] = face
    return out


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


def _fading_inferno(steps: int = 11) -> list:
    """Plotly colour scale: inferno, transparent at 0 and opaque from half the range, so that a map that is
    small but non-zero almost everywhere (a rollout) leaves the face visible."""
    return [[v, "rgba({:.0f},{:.0f},{:.0f},{:.2f})".format(*(255 * np.array(matplotlib.colormaps["inferno"](v)[:3])),
                                                         min(1.0, 2 * v))]
            for v in np.linspace(0, 1, steps)]


def _overlay_figure(inspection: Inspection, face, maps: dict, query: tuple[int, int], title: str,
                    fade: bool = False) -> go.Figure:
    """LR maps side by side over the HR face, on one colour scale, the query pixel marked; hovering shows
    the values (zero pixels are left clear; fade: small values fade out, see `_fading_inferno`)."""
    s = inspection.scale
    face_arr = face_array(face, tuple(inspection.sr.shape[-2:]))
    vmax = max(float(m.max()) for m in maps.values()) or 1.0
    fig = make_subplots(1, len(maps), subplot_titles=list(maps), horizontal_spacing=0.03)
    qy, qx = (query[0] + 0.5) * s - 0.5, (query[1] + 0.5) * s - 0.5
    for col, m in enumerate(maps.values(), start=1):
        big = np.kron(m, np.ones((s, s)))
        fig.add_trace(go.Image(z=face_arr, hoverinfo="skip"), 1, col)
        fig.add_trace(go.Heatmap(z=np.where(big > 0, big, np.nan), zmin=0, zmax=vmax,
                                 colorscale=_fading_inferno() if fade else "Inferno", opacity=0.9 if fade else 0.65,
                                 showscale=col == len(maps),
                                 hovertemplate="HR (%{y}, %{x}): %{z:.4f}<extra></extra>"),
                      1, col)
        fig.add_trace(go.Scatter(x=[qx], y=[qy], mode="markers", hoverinfo="skip",
                                 marker=dict(symbol="x", size=12, color="#00ff66", line=dict(width=2))), 1, col)
    # the faces hang from their titles (a square image in a wide panel is otherwise centred far below them)
    fig.update_layout(title=title, showlegend=False, height=320 + 20 * len(maps), margin=dict(l=10, r=10, t=70, b=10))
    fig.update_annotations(font_size=12)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed", constraintoward="top")
    return fig


def attention_figure(inspection: Inspection, face, group: int, block: int, head: int,
                     query: tuple[int, int]) -> go.Figure:
    """Plotly overlay of `attention_maps` on the HR face (before and after the graph side by side for graph
    blocks, on one colour scale); each title gives the row's total weight and, for inputs padded to the
    window grid, the share of it on keys in the mirror padding, which the map over the face cannot show."""
    maps = _map_titles(inspection, attention_maps(inspection, group, block, head, query, padded=True))
    kind = "graph" if len(maps) == 2 else "Swin-type"
    return _overlay_figure(inspection, face, maps, query,
                           f"group {group}, block {block} ({kind}), head {head}, query LR {tuple(query)}")


def attention_png(inspection: Inspection, face, group: int, block: int, head: int, query: tuple[int, int]) -> Figure:
    """Static matplotlib version of `attention_figure`."""
    maps = _map_titles(inspection, attention_maps(inspection, group, block, head, query, padded=True))
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


# ----------------------------------------------------------------------------------------------------
# Over the network's depth, for several models side by side (e.g. GVTNet, GVTNet with the graph off, SwinIR)

# Models take these colours in turn, unless a figure is given a colour for a name. Their lines take the dashes
# in turn, so that a line drawn over an equal one (the graph on and off often reach as far) leaves it in sight.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
DASHES = ("solid", "dash", "dot", "dashdot")

KIND_NAMES = {"S": "Swin-type", "G": "graph"}


def _line_styles(inspections: dict, colours: dict[str, str] | None) -> list[tuple[str, Inspection, dict]]:
    """(name, inspection, line style): the colour `colours` gives the name, else the next of PALETTE, and the
    next of DASHES."""
    colours, palette, dashes = colours or {}, itertools.cycle(PALETTE), itertools.cycle(DASHES)
    return [(name, ins, dict(color=colours.get(name) or next(palette), dash=next(dashes)))
            for name, ins in inspections.items()]


def block_label(blk) -> str:
    """'group.block': the x position over depth (models with the same depths line up block for block)."""
    return f"{blk.group}.{blk.block}"


def _depth_axis(fig: go.Figure, inspections: dict, title: str | None = "group.block") -> None:
    """Categorical x axes over depth, in the order of the deepest model's blocks."""
    longest = max(inspections.values(), key=lambda ins: len(ins.blocks))
    fig.update_xaxes(type="category", categoryorder="array", title_text=title,
                     categoryarray=[block_label(b) for b in longest.blocks])


def _per_head_traces(fig, name: str, line: dict, blocks: list, values: np.ndarray, fmt: str, first: bool,
                     **where) -> None:
    """values (blocks, heads): the mean over heads as a line, every head as a dot; hover names the kind."""
    heads = values.shape[1]
    labels, kinds = [block_label(b) for b in blocks], [KIND_NAMES[b.kind] for b in blocks]
    fig.add_trace(go.Scatter(x=labels, y=values.mean(1), text=kinds, mode="lines+markers", name=name,
                             legendgroup=name, showlegend=first, line=line,
                             hovertemplate=f"{name}, block %{{x}} (%{{text}}), mean over heads: "
                                           f"%{{y:{fmt}}}<extra></extra>"), **where)
    fig.add_trace(go.Scatter(x=np.repeat(labels, heads), y=values.ravel(), text=np.repeat(kinds, heads),
                             mode="markers", legendgroup=name, showlegend=False,
                             marker=dict(color=line["color"], size=5, opacity=0.5),
                             customdata=np.tile(np.arange(heads), len(blocks)),
                             hovertemplate=f"{name}, block %{{x}} (%{{text}}), head %{{customdata}}: "
                                           f"%{{y:{fmt}}}<extra></extra>"), **where)


def distance_figure(inspections: dict[str, Inspection], colours: dict[str, str] | None = None) -> go.Figure:
    """Reach among the kept keys (`attention_distance`) of every block and head, over the depth of each
    model in `inspections` ({name: Inspection}); the mass the graph cut is `mass_figure`'s second panel.
    colours: {name: colour} for some or all of the models (the others take PALETTE's in turn)."""
    fig = go.Figure()
    for name, ins, line in _line_styles(inspections, colours):
        dist = np.stack([attention_distance(ins, b.group, b.block) for b in ins.blocks])
        _per_head_traces(fig, name, line, ins.blocks, dist, ".2f", True)
    _depth_axis(fig, inspections)
    fig.update_layout(title="Reach among the kept keys: mean attention distance, rows renormalised (LR px)",
                      yaxis_title="LR pixels", yaxis_rangemode="tozero", margin=dict(l=10, r=10, t=50, b=10),
                      legend=dict(orientation="h", y=-0.25))
    return fig


def mass_figure(inspections: dict[str, Inspection], colours: dict[str, str] | None = None) -> go.Figure:
    """`attention_mass` of every block over the depth of each model in `inspections`, in four panels;
    colours as `distance_figure`'s."""
    panels = ("total weight of a row after the graph", "softmax weight cut by the graph",
              "weight on the query itself", "share on the mirror padding")
    fig = make_subplots(2, 2, subplot_titles=panels, vertical_spacing=0.22, horizontal_spacing=0.07)
    for name, ins, line in _line_styles(inspections, colours):
        labels = [block_label(b) for b in ins.blocks]
        masses = [attention_mass(ins, b.group, b.block) for b in ins.blocks]
        rows = [m.row_sum.ravel() for m in masses]
        q1, med, q3 = np.stack([np.percentile(r, (25, 50, 75)) for r in rows]).T
        fig.add_trace(go.Box(x=labels, q1=q1, median=med, q3=q3, lowerfence=[r.min() for r in rows],
                             upperfence=[r.max() for r in rows], name=name, legendgroup=name,
                             marker_color=line["color"], line_width=1), 1, 1)
        for (row, col), field in zip(((1, 2), (2, 1), (2, 2)), ("removed", "self_weight", "padding")):
            values = np.stack([getattr(m, field).mean(1) for m in masses])  # (blocks, heads)
            _per_head_traces(fig, name, line, ins.blocks, values, ".3f", False, row=row, col=col)
    _depth_axis(fig, inspections, title="block (group.block)")
    for (row, col), title in zip(((1, 1), (1, 2), (2, 1), (2, 2)), ("row sum", "softmax weight", "softmax weight",
                                                                  "share of the row")):
        fig.update_yaxes(title_text=title, row=row, col=col)
    fig.update_yaxes(rangemode="tozero")
    fig.update_layout(boxmode="group", height=660, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", y=-0.16))
    fig.update_annotations(font_size=12)
    if all(ins.padded_size == ins.lr_size for ins in inspections.values()):  # else an empty, unexplained panel
        fig.add_annotation(text="no padding: the face is a multiple of the window grid (8 px),<br>so no "
                                "attention falls on padding", xref="x4 domain", yref="y4 domain", x=0.5, y=0.5,
                           showarrow=False, font=dict(size=12, color="grey"))
    return fig


def rollout_figure(inspections: dict[str, Inspection], face, query: tuple[int, int], head_fusion: str = "mean",
                   discard_ratio: float = 0.0) -> go.Figure:
    """`rollout` of one query pixel for each model in `inspections`, side by side over the face, on one
    colour scale; each title gives the share drawn from the mirror padding."""
    first = next(iter(inspections.values()))
    maps = _map_titles(first, {name: rollout(ins, query, head_fusion, discard_ratio=discard_ratio, padded=True)
                               for name, ins in inspections.items()})
    return _overlay_figure(first, face, maps, query,
                           f"Attention rollout of LR pixel {tuple(query)}, heads fused by {head_fusion}", fade=True)

