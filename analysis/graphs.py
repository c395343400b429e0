"""The GVT layer's neighbour graphs: a networkx DiGraph per group, head (and window), statistics, and
figures of the graph drawn over the face: `graph_image`, the large window view that is also a click target
(PIL), `overview_figure`, every group and head at once, and plotly / matplotlib figures for reports.

Self-loops: under the released rule the captured adjacency already has A[p, p] = 1 (D[p, p] = 0 is below
T * rowmax), and the model adds the identity on top. They say nothing about which patches a node sees, so
graphs and statistics leave them out unless asked (`self_loops=True`): density is over the n (n - 1)
ordered pairs of distinct nodes.
"""
from __future__ import annotations

from dataclasses import dataclass

import matplotlib
import networkx as nx
import numpy as np
import plotly.graph_objects as go
from matplotlib.figure import Figure
from PIL import Image, ImageDraw
from scipy import ndimage

from .inspection import Inspection, lr_to_hr


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


def node_positions(inspection: Inspection, group: int, window: int = 0) -> np.ndarray:
    """(n, 2) float LR (row, col) where each node of `window`'s graph is drawn: at the window's token, i.e.
    the pixel of it that the window attends to (so a clicked pixel's node sits on the click). Where that
    pixel is padding: for 'group' scope, the centre of the visible part of the node's patch (grid block),
    else NaN (no pixel of it on the face)."""
    pixels = inspection.window_pixels(group, window).astype(float)
    hidden = ~inspection.visible(pixels)
    pixels[hidden] = inspection.graph(group).centres_lr[hidden] if inspection.scope == "group" else np.nan
    return pixels


def digraph(inspection: Inspection, group: int, head: int, self_loops: bool = False, window: int = 0) -> nx.DiGraph:
    """The graph one head of `group` uses in `window` (for 'group' scope the same in every window), its
    nodes carrying 'grid' (j, i), 'centre_lr' and 'centre_hr' (see `node_positions`; NaN off the face)."""
    g = node_graph(inspection.window_graph(group, window)[head], self_loops)
    grid = inspection.window_size
    lr = node_positions(inspection, group, window)
    hr = lr_to_hr(lr, inspection.scale)
    for n in g.nodes:
        g.nodes[n].update(grid=divmod(n, grid), centre_lr=tuple(lr[n]), centre_hr=tuple(hr[n]))
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
        "clustering": average_clustering(nx.to_numpy_array(g)) if n else 0.0,
    }


def average_clustering(adjacency: np.ndarray) -> float:
    """networkx's average_clustering of a directed graph (Fagiolo's: c_i = ((A + A^T)^3)_ii /
    (2 (d_i (d_i - 1) - 2 d_i^<->)), d total and d^<-> reciprocated degree), from its (n, n) adjacency, self
    loops ignored. The same numbers as a matrix product: networkx's Python triangle count takes a second at
    the ~4,000 edges of a released graph, too slow for a slider."""
    a = (np.asarray(adjacency) != 0).astype(np.float64)
    np.fill_diagonal(a, 0)
    sym = a + a.T
    triangles = np.einsum("ij,jk,ki->i", sym, sym, sym)
    total, mutual = a.sum(0) + a.sum(1), np.einsum("ij,ji->i", a, a)
    denom = 2 * (total * (total - 1) - 2 * mutual)
    return float(np.mean(np.where(triangles > 0, triangles / np.where(denom > 0, denom, 1), 0.0)))


# One line each: what a statistic of `graph_stats` means, for tables people read.
STAT_MEANINGS = {
    "nodes": "tokens of the window (patch nodes)",
    "edges": "ordered pairs (p, q), p != q, where p may attend to q",
    "density": "share of all ordered pairs kept; 1 - density is what the threshold cut",
    "mean_degree": "patches a node may attend to, on average (out of n - 1)",
    "out_degree_min": "fewest patches any node may attend to",
    "out_degree_max": "most patches any node may attend to",
    "in_degree_min": "fewest nodes that may attend to any one patch",
    "in_degree_max": "most nodes that may attend to any one patch",
    "reciprocity": "share of edges whose reverse is kept too (1: the graph is symmetric)",
    "weak_components": "pieces the graph falls into, ignoring direction",
    "strong_components": "pieces whose nodes all reach each other along edges",
    "largest_strong_component": "nodes in the largest such piece",
    "isolated": "nodes with no edge at all",
    "clustering": "how often two neighbours of a node are neighbours themselves",
}


def stats_table(stats: dict, digits: int = 3) -> list[list]:
    """`graph_stats` as [statistic, value, meaning] rows for people to read: names in words ("mean degree"),
    floats rounded."""
    return [[k.replace("_", " "), round(v, digits) if isinstance(v, float) else v, STAT_MEANINGS.get(k, "")]
            for k, v in stats.items()]


def group_stats(inspection: Inspection, group: int, window: int = 0) -> list[dict]:
    """graph_stats of every head of one group (in `window`, for 'window' scope)."""
    return [graph_stats(digraph(inspection, group, h, window=window)) for h in range(inspection.num_heads)]


def _edge_lines(centres: np.ndarray, edges) -> tuple[np.ndarray, np.ndarray]:
    """Line segments as plotly x/y arrays, segments separated by NaN gaps (arrays, not lists: plotly
    validates a list of thousands of items one by one). Segments with a NaN end are not drawn."""
    e = np.asarray(list(edges), dtype=int).reshape(-1, 2)
    seg = np.full((len(e), 3, 2), np.nan)
    seg[:, 0], seg[:, 1] = centres[e[:, 0]], centres[e[:, 1]]
    seg = seg.reshape(-1, 2)
    return seg[:, 1], seg[:, 0]


def _hidden_note(centres: np.ndarray) -> str:
    hidden = int(np.isnan(centres).any(axis=1).sum())
    return f"; {hidden} nodes lie wholly in the padding (not drawn)" if hidden else ""


def graph_figure(inspection: Inspection, face, group: int, head: int, selected: int | None = None,
                 window: int = 0) -> go.Figure:
    """Plotly figure of one group's and head's graph over the HR face: nodes at their places on the face
    (`node_positions`), edges as faint lines; the `selected` node's out-neighbours (the patches it may
    attend to) highlighted."""
    g = digraph(inspection, group, head, window=window)
    centres = lr_to_hr(node_positions(inspection, group, window), inspection.scale)
    fig = go.Figure(go.Image(z=face_array(face, _hr_size(inspection)), hoverinfo="skip"))
    xs, ys = _edge_lines(centres, g.edges)
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color="rgba(0,200,255,0.12)", width=1),
                             hoverinfo="skip", name="edges"))
    hover = [
        f"node {n} (grid {g.nodes[n]['grid']})<br>LR centre ({c[0]:.1f}, {c[1]:.1f})<br>"
        f"out-degree {g.out_degree(n)}, in-degree {g.in_degree(n)}"
        for n, c in enumerate(node_positions(inspection, group, window))
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
    fig.update_layout(title=title + _hidden_note(centres), showlegend=False, margin=dict(l=10, r=10, t=40, b=10),
                      xaxis=dict(visible=False), yaxis=dict(visible=False))
    return fig


# One grey scale for kept and cut pairs in every adjacency figure and state (graph on, graph off, any T):
# kept light, cut dark.
KEPT_GREY, CUT_GREY = 235, 40


def adjacency_heatmap(inspection: Inspection, group: int, head: int, window: int = 0,
                      selected: int | None = None) -> go.Figure:
    """Plotly heatmap of the (n, n) adjacency: row = query node, column = key node; light = kept, dark = cut
    (as in `overview_figure`). The `selected` node's row (the keys it may attend to) is outlined."""
    a = inspection.window_graph(group, window)[head].astype(int)
    # zmin / zmax fixed: plotly otherwise spans the colours over the values present, so an all-kept graph
    # (the graph off) would be drawn in the scale's middle grey
    scale = [[0, f"rgb({CUT_GREY},{CUT_GREY},{CUT_GREY})"], [1, f"rgb({KEPT_GREY},{KEPT_GREY},{KEPT_GREY})"]]
    fig = go.Figure(go.Heatmap(z=a, colorscale=scale, zmin=0, zmax=1, showscale=False,
                               hovertemplate="query %{y} -> key %{x}: %{z}<extra></extra>"))
    if selected is not None:
        fig.add_shape(type="rect", x0=-0.5, x1=len(a) - 0.5, y0=selected - 0.5, y1=selected + 0.5,
                      line=dict(color="#00c853", width=2))
    where = f", window {window}" if inspection.scope == "window" else ""
    fig.update_layout(title=dict(text=f"group {group}, head {head}{where}: density {edge_density(a):.2f} "
                                      "(light = kept, dark = cut)",
                                 font=dict(size=14)),
                      xaxis_title="key node", yaxis_title="query node", yaxis_autorange="reversed",
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig


def adjacency_png(inspection: Inspection, group: int, window: int = 0) -> Figure:
    """Static adjacency matrices of every head of one group, side by side."""
    heads = inspection.num_heads
    fig = Figure(figsize=(2.6 * heads, 2.9), layout="constrained")
    for h, ax in enumerate(fig.subplots(1, heads, squeeze=False)[0]):
        a = inspection.window_graph(group, window)[h]
        ax.imshow(a, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"group {group}, head {h}\nedge density {edge_density(a):.2f}", fontsize=9)
        ax.set_xlabel("key node")
        ax.set_ylabel("query node")
    return fig


# ----------------------------------------------------------------------------------------------------
# The window view: one large face that is both the figure and the click target

EDGE_CHOICES = ("auto", "cut", "kept")
MIN_DRAWN_SIDE = 384  # px: the face is drawn at least this large, each LR pixel a `cell` x `cell` square


def cell_size(lr_size: tuple[int, int], min_side: int = MIN_DRAWN_SIDE) -> int:
    """Screen pixels per LR pixel so that the face's shorter side is at least `min_side`."""
    return max(1, -(-min_side // min(lr_size)))


def face_canvas(face, lr_size: tuple[int, int], cell: int) -> Image.Image:
    """The face (any size) nearest-resized to (h*cell, w*cell), RGB: each LR pixel a cell x cell square."""
    img = face if isinstance(face, Image.Image) else Image.fromarray(np.asarray(face))
    return img.convert("RGB").resize((lr_size[1] * cell, lr_size[0] * cell), Image.NEAREST)


def shown_edges(adjacency: np.ndarray, edges: str = "auto") -> tuple[str, np.ndarray]:
    """('kept' | 'cut', (n, n) bool) the directed pairs of distinct nodes to draw: the kept ones, or the
    ones the threshold cut; 'auto' shows the cut ones whenever more than half of all pairs are kept."""
    if edges not in EDGE_CHOICES:
        raise ValueError(f"edges must be one of {EDGE_CHOICES}, got {edges!r}")
    a = np.asarray(adjacency, bool)
    off = ~np.eye(len(a), dtype=bool)
    if edges == "auto":
        edges = "cut" if edge_density(a) > 0.5 else "kept"
    return edges, (a if edges == "kept" else ~a) & off


def node_regions(inspection: Inspection, group: int, window: int = 0) -> np.ndarray:
    """(h, w) int: the node whose patch each visible LR pixel is, -1 for none. 'group' scope: node n's
    patch is grid block n; 'window' scope: token t's patch is its own pixel of the window."""
    if inspection.scope == "group":
        return inspection.graph(group).node_map
    h, w = inspection.lr_size
    regions = np.full((h, w), -1)
    pixels = inspection.window_pixels(group, window)
    on = inspection.visible(pixels)
    regions[pixels[on, 0], pixels[on, 1]] = np.nonzero(on)[0]
    return regions


@dataclass
class Selection:
    """What a click on LR pixel `pixel` selects in one group and head: its window and node (token), that
    window's adjacency row of the node, and the edges drawn (`shown_edges`)."""

    pixel: tuple[int, int]
    window: int
    node: int
    adjacency: np.ndarray  # (n, n) bool, the window's graph for this head
    edges: str  # 'kept' | 'cut'
    shown: np.ndarray  # (n, n) bool

    @property
    def neighbours(self) -> np.ndarray:
        """Other nodes the selected one may attend to."""
        return np.setdiff1d(np.nonzero(self.adjacency[self.node])[0], [self.node])

    @property
    def ignored(self) -> np.ndarray:
        """Nodes the selected one may not attend to (the threshold cut them; itself it always may, as the
        model adds the identity)."""
        return np.setdiff1d(np.nonzero(~self.adjacency[self.node])[0], [self.node])


def select(inspection: Inspection, group: int, head: int, pixel: tuple[int, int], edges: str = "auto") -> Selection:
    """The window, node and graph that LR pixel `pixel` = (row, col) selects in `group` and `head`."""
    row, col = (int(v) for v in pixel)
    window, node = inspection.window_at(group, row, col), inspection.token_at(group, row, col)
    a = inspection.window_graph(group, window)[head]
    mode, shown = shown_edges(a, edges)
    return Selection((row, col), window, node, a, mode, shown)


EDGE_COLOURS = {"cut": (255, 64, 64), "kept": (0, 210, 255)}


def _border(mask: np.ndarray, width: int) -> np.ndarray:
    """(H, W) bool: the pixels of `mask` within `width` of its edge (the image's edge does not count)."""
    return mask & ~ndimage.binary_erosion(mask, iterations=width, border_value=1)


def graph_image(inspection: Inspection, face, group: int, head: int, pixel: tuple[int, int], edges: str = "auto",
                cell: int | None = None) -> Image.Image:
    """The face drawn large (`cell_size`, nearest), with the graph of the window that LR pixel `pixel`
    falls in: the patches the selected node may NOT attend to darkened, the window's pixels outlined
    (yellow), the shown edges (`shown_edges`: red cut, cyan kept; the selected node's thick), nodes
    coloured by their degree in the shown edges (viridis: purple none, yellow the most any node has) and
    the selected node ringed green. Nodes with no pixel on the face are not drawn. A click at (x, y) on
    it is on LR pixel (y // cell, x // cell)."""
    sel = select(inspection, group, head, pixel, edges)
    cell = cell or cell_size(inspection.lr_size)
    img = np.asarray(face_canvas(face, inspection.lr_size, cell), np.float32)
    regions = node_regions(inspection, group, sel.window)
    ignored = np.isin(regions, sel.ignored).repeat(cell, 0).repeat(cell, 1)
    img[ignored] = img[ignored] * 0.3 + np.float32([60, 0, 0])  # darkened, reddish
    img[_border(ignored, max(1, cell // 6))] = (255, 64, 64)
    canvas = Image.fromarray(img.clip(0, 255).astype(np.uint8)).convert("RGBA")
    layer = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)

    def xy(rc):  # LR (row, col) -> canvas (x, y) of the pixel centre
        return ((rc[1] + 0.5) * cell, (rc[0] + 0.5) * cell)

    pixels = inspection.window_pixels(group, sel.window)
    for r, c in pixels[inspection.visible(pixels)]:
        draw.rectangle((c * cell, r * cell, (c + 1) * cell - 1, (r + 1) * cell - 1), outline=(255, 230, 0, 230),
                       width=max(1, cell // 8))
    pos = node_positions(inspection, group, sel.window)
    on = ~np.isnan(pos).any(axis=1)
    colour = EDGE_COLOURS[sel.edges]
    pairs = np.argwhere(np.triu(sel.shown | sel.shown.T, 1))
    for p, q in pairs:
        if on[p] and on[q]:
            draw.line((xy(pos[p]), xy(pos[q])), fill=colour + (70,), width=1)
    for q in np.nonzero(sel.shown[sel.node])[0]:
        if on[sel.node] and on[q]:
            draw.line((xy(pos[sel.node]), xy(pos[q])), fill=colour + (255,), width=2)
    canvas = Image.alpha_composite(canvas, layer)
    draw = ImageDraw.Draw(canvas)
    degree = sel.shown.sum(axis=1)
    fills = matplotlib.colormaps["viridis"](degree / max(degree.max(), 1))[:, :3] * 255
    radius = min(max(cell * 0.3, 3), 8)  # leaves a cell's darkening and outline visible around it
    for n in np.nonzero(on)[0]:
        x, y = xy(pos[n])
        if n == sel.node:
            draw.ellipse((x - radius - 4, y - radius - 4, x + radius + 4, y + radius + 4), outline=(0, 255, 102), width=4)
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=tuple(int(v) for v in fills[n]),
                     outline=(0, 0, 0), width=1)
    return canvas.convert("RGB")


def overview_figure(inspection: Inspection, window: int = 0, pixel: tuple[int, int] | None = None) -> go.Figure:
    """Small multiples: the adjacency of every group (row, each roll) and head (column) at once, kept pairs
    light and cut ones dark, titled with their edge density, so sparse graphs stand out. Every tile shows
    window `window`'s graph; given LR pixel `pixel` = (row, col), each tile instead shows the graph of the
    window that pixel falls in and marks its node's row (the keys it may attend to), both looked up in the
    tile's own group and roll: groups roll by different amounts, so one pixel is a different node in each.
    Hovering a cell names its group, head, query node and key node (-1 between the tiles)."""
    keys = sorted(inspection.graphs)
    n, heads = inspection.window_size**2, inspection.num_heads
    across, down = n + 6, n + 18  # room for each tile's title above it
    tiles = np.full((len(keys) * down, heads * across - 6, 3), 255, np.uint8)
    # (group, head, query, key) of each cell, for the hover; int8 where it fits: the page loads it every click
    cells = np.full(tiles.shape[:2] + (4,), -1, np.int8 if n <= 128 else np.int16)
    query, key = np.indices((n, n))
    titles, rows = [], []
    for r, (g, shift) in enumerate(keys):
        win = window if pixel is None else inspection.window_at(g, *pixel, shift)
        node = None if pixel is None else inspection.token_at(g, *pixel, shift)
        adj = inspection.window_graph(g, win, shift)
        roll = f" (roll {shift})" if sum(k[0] == g for k in keys) > 1 else ""
        own_window = f" w{win}" if pixel is not None and inspection.scope == "window" else ""
        top = r * down + down - n
        for h in range(heads):
            left = h * across
            tiles[top : top + n, left : left + n] = np.where(adj[h, ..., None], KEPT_GREY, CUT_GREY)
            cells[top : top + n, left : left + n] = np.stack(np.broadcast_arrays(g, h, query, key), axis=-1)
            titles.append(dict(x=left + n / 2, y=top - 1, yanchor="bottom", showarrow=False, font=dict(size=11),
                               text=f"g{g}{roll}{own_window} h{h}: {edge_density(adj[h]):.2f}"))
            if node is not None:
                rows.append(dict(type="line", x0=left - 0.5, x1=left + n - 0.5, y0=top + node, y1=top + node,
                                 line=dict(color="#00c853", width=1.5)))
    where = f", window {window}" if inspection.scope == "window" and pixel is None else ""
    mark = "" if pixel is None else f", LR pixel {tuple(pixel)}'s node marked"
    hover = "group %{customdata[0]}, head %{customdata[1]}: query %{customdata[2]}, key %{customdata[3]}"
    # annotations and shapes passed at once: plotly re-validates the whole list on every add_annotation
    return go.Figure(
        go.Image(z=tiles, customdata=cells, hovertemplate=hover + "<extra></extra>"),
        # two title lines: one was cut at the plot's right edge in the app's column
        layout=dict(title=dict(text=f"each group (g) and head (h){where}{mark}<br>light = kept, dark = cut",
                               font=dict(size=14)),
                    annotations=titles, shapes=rows, margin=dict(l=10, r=10, t=60, b=10), xaxis=dict(visible=False),
                    yaxis=dict(visible=False, range=[len(keys) * down, 0]), height=120 + 120 * len(keys)))
