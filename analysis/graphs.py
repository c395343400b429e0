"""The GVT layer's neighbour graphs: a networkx DiGraph per group and head, statistics, and figures of the
graph drawn over the face (plotly for the app, matplotlib for reports).

Self-loops: under the released rule the captured adjacency already has A[p, p] = 1 (D[p, p] = 0 is below
T * rowmax), and the model adds the identity on top. They say nothing about which patches a node sees, so
graphs and statistics leave them out unless asked (`self_loops=True`): density is over the n (n - 1)
ordered pairs of distinct nodes.
"""
from __future__ import annotations

import networkx as nx
import numpy as np
import plotly.graph_objects as go
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from PIL import Image

from .inspection import Inspection


def face_array(face, size: tuple[int, int] | None = None) -> np.ndarray:
    """A face (PIL image or array) as (H, W, 3) uint8, resized to `size` (H, W) if given (the SR size the
    nodes and maps are drawn on)."""
    img = face if isinstance(face, Image.Image) else Image.fromarray(np.asarray(face))
    img = img.convert("RGB")
    if size is not None and img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), Image.BICUBIC)
    return np.asarray(img)


def _hr_size(inspection: Inspection) -> tuple[int, int]:
    return tuple(inspection.sr.shape[-2:])


def edge_density(adjacency: np.ndarray) -> np.ndarray:
    """(..., n, n) 0/1 adjacency -> (...) fraction of the n (n - 1) ordered pairs of distinct nodes linked."""
    a = np.asarray(adjacency, np.float64)
    n = a.shape[-1]
    return (a.sum(axis=(-2, -1)) - np.trace(a, axis1=-2, axis2=-1)) / (n * (n - 1))


def node_graph(adjacency: np.ndarray, self_loops: bool = False) -> nx.DiGraph:
    """(n, n) 0/1 directed adjacency (row p -> column q: p attends to q) -> DiGraph on nodes 0..n-1."""
    a = np.asarray(adjacency).astype(bool)
    if not self_loops:
        a = a & ~np.eye(len(a), dtype=bool)
    g = nx.DiGraph()
    g.add_nodes_from(range(len(a)))
    g.add_edges_from(zip(*np.nonzero(a)))
    return g


def digraph(inspection: Inspection, group: int, head: int, self_loops: bool = False) -> nx.DiGraph:
    """The graph of one group and head, its nodes carrying 'grid' (j, i), 'centre_lr' and 'centre_hr'."""
    gg = inspection.groups[group]
    g = node_graph(gg.adjacency[head], self_loops)
    grid = inspection.window_size
    for n in g.nodes:
        g.nodes[n].update(grid=divmod(n, grid), centre_lr=tuple(gg.centres_lr[n]), centre_hr=tuple(gg.centres_hr[n]))
    return g


def graph_stats(g: nx.DiGraph) -> dict:
    """Edge density, degrees, reciprocity, components and clustering of a directed graph."""
    n = g.number_of_nodes()
    out_deg = np.array([d for _, d in g.out_degree()])
    in_deg = np.array([d for _, d in g.in_degree()])
    strong = list(nx.strongly_connected_components(g))
    return {
        "nodes": n,
        "edges": g.number_of_edges(),
        "density": nx.density(g),  # edges / n (n - 1)
        "mean_degree": float(out_deg.mean()) if n else 0.0,  # mean out-degree = mean in-degree
        "out_degree_min": int(out_deg.min()) if n else 0,
        "out_degree_max": int(out_deg.max()) if n else 0,
        "in_degree_min": int(in_deg.min()) if n else 0,
        "in_degree_max": int(in_deg.max()) if n else 0,
        "reciprocity": float(nx.overall_reciprocity(g)) if g.number_of_edges() else 0.0,
        "weak_components": nx.number_weakly_connected_components(g),
        "strong_components": len(strong),
        "largest_strong_component": max(map(len, strong), default=0),
        "isolated": sum(1 for v in g if g.degree(v) == 0),
        "clustering": float(nx.average_clustering(g)) if n else 0.0,
    }


def group_stats(inspection: Inspection, group: int) -> list[dict]:
    """graph_stats of every head of one group."""
    return [graph_stats(digraph(inspection, group, h)) for h in range(inspection.num_heads)]


def _edge_lines(centres: np.ndarray, edges) -> tuple[np.ndarray, np.ndarray]:
    """Line segments as plotly x/y arrays, segments separated by NaN gaps (arrays, not lists: plotly
    validates a list of thousands of items one by one)."""
    e = np.asarray(list(edges), dtype=int).reshape(-1, 2)
    seg = np.full((len(e), 3, 2), np.nan)
    seg[:, 0], seg[:, 1] = centres[e[:, 0]], centres[e[:, 1]]
    seg = seg.reshape(-1, 2)
    return seg[:, 1], seg[:, 0]


def graph_figure(inspection: Inspection, face, group: int, head: int, selected: int | None = None) -> go.Figure:
    """Plotly figure of one group's and head's graph over the HR face: nodes at their patch centres, edges
    as faint lines; the `selected` node's out-neighbours (the patches it may attend to) highlighted."""
    g = digraph(inspection, group, head)
    centres = inspection.groups[group].centres_hr
    fig = go.Figure(go.Image(z=face_array(face, _hr_size(inspection)), hoverinfo="skip"))
    xs, ys = _edge_lines(centres, g.edges)
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color="rgba(0,200,255,0.12)", width=1),
                             hoverinfo="skip", name="edges"))
    hover = [
        f"node {n} (grid {g.nodes[n]['grid']})<br>LR centre ({c[0]:.1f}, {c[1]:.1f})<br>"
        f"out-degree {g.out_degree(n)}, in-degree {g.in_degree(n)}"
        for n, c in enumerate(inspection.groups[group].centres_lr)
    ]
    colour = ["#ffd400"] * len(centres)
    if selected is not None:
        neighbours = set(g.successors(selected))
        xs, ys = _edge_lines(centres, ((selected, v) for v in neighbours))
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color="#ff3030", width=2),
                                 hoverinfo="skip", name=f"node {selected}'s neighbours"))
        colour = ["#ff3030" if n in neighbours else "#7f7f7f" for n in range(len(centres))]
        colour[selected] = "#00ff66"
    fig.add_trace(go.Scatter(x=centres[:, 1], y=centres[:, 0], mode="markers", text=hover, hoverinfo="text",
                             customdata=np.arange(len(centres)), name="nodes",
                             marker=dict(size=9, color=colour, line=dict(color="black", width=1))))
    title = f"group {group}, head {head}: {g.number_of_edges()} edges"
    if selected is not None:
        title += f"; node {selected} attends to {g.out_degree(selected)} others"
    fig.update_layout(title=title, showlegend=False, margin=dict(l=10, r=10, t=40, b=10),
                      xaxis=dict(visible=False), yaxis=dict(visible=False))
    return fig


def adjacency_heatmap(inspection: Inspection, group: int, head: int) -> go.Figure:
    """Plotly heatmap of the (n, n) adjacency: row = query node, column = key node."""
    a = inspection.groups[group].adjacency[head].astype(int)
    fig = go.Figure(go.Heatmap(z=a, colorscale=[[0, "white"], [1, "black"]], showscale=False,
                               hovertemplate="query %{y} -> key %{x}: %{z}<extra></extra>"))
    fig.update_layout(title=f"adjacency, group {group}, head {head} (edge density {edge_density(a):.2f})",
                      xaxis_title="key node", yaxis_title="query node", yaxis_autorange="reversed",
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig


def graph_png(inspection: Inspection, face, group: int, head: int, selected: int | None = None) -> Figure:
    """Static matplotlib version of `graph_figure`."""
    g = digraph(inspection, group, head)
    centres = inspection.groups[group].centres_hr
    fig = Figure(figsize=(5, 5), layout="constrained")
    ax = fig.subplots()
    ax.imshow(face_array(face, _hr_size(inspection)))
    xy = centres[:, ::-1]  # (x, y) = (col, row)
    ax.add_collection(LineCollection([xy[[u, v]] for u, v in g.edges], colors=[(0, 0.8, 1, 0.08)], linewidths=0.6))
    colour = ["#ffd400"] * len(centres)
    if selected is not None:
        neighbours = list(g.successors(selected))
        ax.add_collection(LineCollection([xy[[selected, v]] for v in neighbours], colors="#ff3030", linewidths=1.2))
        for v in neighbours:
            colour[v] = "#ff3030"
        colour[selected] = "#00ff66"
    ax.scatter(centres[:, 1], centres[:, 0], s=18, c=colour, edgecolors="black", linewidths=0.5, zorder=3)
    ax.set_title(f"group {group}, head {head}: {g.number_of_edges()} edges")
    ax.axis("off")
    return fig


def adjacency_png(inspection: Inspection, group: int) -> Figure:
    """Static adjacency matrices of every head of one group, side by side."""
    heads = inspection.num_heads
    fig = Figure(figsize=(2.6 * heads, 2.9), layout="constrained")
    for h, ax in enumerate(fig.subplots(1, heads, squeeze=False)[0]):
        a = inspection.groups[group].adjacency[h]
        ax.imshow(a, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"group {group}, head {h}\nedge density {edge_density(a):.2f}", fontsize=9)
        ax.set_xlabel("key node")
        ax.set_ylabel("query node")
    return fig
