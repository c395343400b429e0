"""The Neighbour graph and Attention tabs: the GVTNet's graphs and attention on the session's face, under
the graph settings both tabs share, and the large face to click a pixel on."""
from __future__ import annotations

import gradio as gr
import numpy as np
from PIL import ImageDraw

import analysis
from analysis import graphs
from gvtnet.inference import to_tensor
from gvtnet.sr_models import has_graph
from gvtnet.weights import describe

from ..state import Session
from .inputs import P_CHOICES, png
from .restore import NO_GRAPH

GRAPH_SCOPES = {"one per group, shared by every window (released)": "group",
                "one per window, from its own tokens (the paper's text)": "window"}
EDGE_CHOICES = {"the threshold's cuts where most pairs are kept, else the kept ones": "auto",
                "edges the threshold cut": "cut", "edges kept": "kept"}


def graph_settings(threshold_t: float, p: str, rule: str, graph_off: bool = False, scope: str = "group") -> dict:
    """Graph settings for `GVTNet.variant`: the model's own p where asked; graph_off keeps every edge."""
    changes = {"threshold": float(threshold_t), "neighbour_rule": rule, "graph_scope": scope}
    if P_CHOICES.get(p) is not None:
        changes["minkowski_p"] = P_CHOICES[p]
    if graph_off:
        changes["use_graph"] = False
    return changes


def inspect(s: Session, threshold_t: float, p: str, rule: str, graph_off: bool = False, scope: str = "group"):
    """The GVTNet's graphs and attention on the session's face under these settings, cached on the session.
    Always on a variant: capturing records into the modules it runs, so it must never run on the model
    that every visitor shares."""
    changes = graph_settings(threshold_t, p, rule, graph_off, scope)
    key = tuple(sorted(changes.items()))
    if s.inspection is None or s.graph_key != key:
        s.inspection = analysis.inspect(s.model.variant(**changes), to_tensor(s.lr))
        s.graph_key = key
    if not s.inspection.graphs:
        raise gr.Error(f"This model ({describe(s.model.cfg)}) has no graph layers to show.")
    return s.inspection


def graph_pixel(s: Session) -> tuple[int, int]:
    """The LR pixel selected on the graph view: the last click, else the face's centre."""
    return s.graph_pixel if s.graph_pixel is not None else (s.lr.height // 2, s.lr.width // 2)


def graph_group_head(ins, group: int, head: int) -> tuple[int, int]:
    """The sliders' group and head made valid: the nearest group that has a graph (uploaded models may
    have groups without), a head within range."""
    group = _clamp(group, ins.num_groups)
    return min((g for g, _ in ins.graphs), key=lambda g: (abs(g - group), g)), _clamp(head, ins.num_heads)


def _selection(s: Session, group, head, threshold_t, p, rule, graph_off, scope, edges):
    """(inspection, group, head, graphs.Selection) of the session's selected pixel under these settings."""
    ins = inspect(s, threshold_t, p, rule, graph_off, scope)
    group, head = graph_group_head(ins, group, head)
    return ins, group, head, graphs.select(ins, group, head, graph_pixel(s), edges)


def graph_caption(ins, group: int, head: int, sel: graphs.Selection, graph_off: bool) -> str:
    """One paragraph telling what the window view shows for this selection."""
    n = len(sel.adjacency)
    shown = int(sel.shown.sum())
    hidden = int(np.isnan(graphs.node_positions(ins, group, sel.window)).any(axis=1).sum())
    where = ("every window shares this graph, so only the yellow outline moves with the window"
             if ins.scope == "group" else "each window has a graph of its own")
    text = (f"**Group {group}, head {head}: window {sel.window}** of {ins.num_windows} (its {n} pixels outlined in "
            f"yellow; {where}), **node {sel.node}** ringed green. It may attend to **{len(sel.neighbours)}** of the "
            f"other {n - 1} nodes; the **{len(sel.ignored)}** darkened patches with a red border are those it "
            f"ignores. Lines: the {shown} edges {'kept' if sel.edges == 'kept' else 'the threshold cut'} "
            f"({'cyan' if sel.edges == 'kept' else 'red'}; thick: the selected node's); node colour: how many of "
            f"them a node has (purple none, yellow the most, {int(sel.shown.sum(axis=1).max())}).")
    if hidden:
        text += f" {hidden} nodes lie wholly in the padding beyond the face and are not drawn."
    if graph_off:
        text += " The graph is off: every edge is kept."
    return text


def graph_view(s: Session, group: int, head: int, threshold_t: float, p: str, rule: str, graph_off: bool = False,
               scope: str = "group", edges: str = "auto"):
    """(the large face with the selected window's graph as a file, a caption saying how to read it, the
    overview of every group x head, the window's adjacency heatmap, statistics rows) for the session's
    selected pixel, kept across groups so that its node is looked up afresh in each. A model without graph
    blocks gets its face and a one-line reason, so that no earlier face's graph stays on screen."""
    if not has_graph(s.model):
        return (face_picker(s), f"This model ({describe(s.model.cfg)}) has no graph blocks: there is no graph to "
                                "show. The Attention and LAM tabs work for it.", None, None, None)
    ins, group, head, sel = _selection(s, group, head, threshold_t, p, rule, graph_off, scope, edges)
    face = png(graphs.graph_image(ins, s.face, group, head, sel.pixel, sel.edges, cell=picker_cell(s)), "graph")
    stats = graphs.graph_stats(graphs.digraph(ins, group, head, window=sel.window))
    return (face, graph_caption(ins, group, head, sel, graph_off), graphs.overview_figure(ins, pixel=sel.pixel),
            graphs.adjacency_heatmap(ins, group, head, sel.window, sel.node), graphs.stats_table(stats))


def picker_cell(s: Session) -> int:
    """Screen pixels per LR pixel of the large clickable faces (`face_picker`, the graph view)."""
    return graphs.cell_size((s.lr.height, s.lr.width))


def lr_pixel(s: Session, xy) -> tuple[int, int] | None:
    """The LR pixel (row, col) under a click at xy = (x, y) on a large face (`face_picker`, the graph view);
    None for no position (Gradio sends None when the click did not land on the image)."""
    if not xy or xy[0] is None or xy[1] is None:
        return None
    cell = picker_cell(s)
    row = min(max(int(xy[1]) // cell, 0), s.lr.height - 1)
    col = min(max(int(xy[0]) // cell, 0), s.lr.width - 1)
    return row, col


def select_graph_pixel(s: Session, xy) -> Session:
    """Keep the LR pixel under a click on the graph view (see `lr_pixel`); a click off the image keeps the
    current selection."""
    pixel = lr_pixel(s, xy)
    if pixel is not None:
        s.graph_pixel = pixel
    return s


def select_query(s: Session, xy) -> Session:
    pixel = lr_pixel(s, xy)
    if pixel is not None:
        s.query = pixel
    return s


def attention_view(s: Session, group: int, block: int, head: int, threshold_t: float, p: str, rule: str,
                   graph_off: bool = False, scope: str = "group"):
    """Attention of the query pixel in one block and head (before and after the graph for graph blocks)."""
    ins = compared_inspections(s, threshold_t, p, rule, graph_off, scope)["GVTNet"]
    group = _clamp(group, len(s.model.layers))
    block = _clamp(block, len(ins.blocks_of(group)))
    return analysis.attention.attention_figure(ins, s.face, group, block, _clamp(head, ins.num_heads), s.query)


def compared_inspections(s: Session, threshold_t: float, p: str, rule: str, graph_off: bool = False,
                         scope: str = "group") -> dict:
    """{name: Inspection} of the models the Attention tab compares on the session's face: the GVTNet under the
    graph tab's settings, the same weights with the graph off, and the SwinIR baseline where there is one.
    The last two do not depend on the settings, so they are computed once per session (on variants, as
    capturing must never run on a shared model). A model without graph blocks is compared as it is."""
    cache, lr = s.attention_inspections, to_tensor(s.lr)

    def cached(name, model):
        if name not in cache:
            cache[name] = analysis.inspect(model(), lr)
        return cache[name]

    graph = has_graph(s.model)
    out = {"GVTNet": inspect(s, threshold_t, p, rule, graph_off, scope) if graph
           else cached("GVTNet", s.model.variant)}
    if graph:
        cached("GVTNet, graph off", lambda: s.model.variant(use_graph=False))
    if NO_GRAPH in s.others:
        cached(NO_GRAPH, s.others[NO_GRAPH].variant)
    if s.baseline_model is not None:
        cached("SwinIR", s.baseline_model.variant)
    return out | {name: cache[name] for name in ("GVTNet, graph off", NO_GRAPH, "SwinIR") if name in cache}


# The compared models keep these colours in every depth figure.
MODEL_COLOURS = {"GVTNet": "#d62728", "GVTNet, graph off": "#ff9f40", NO_GRAPH: "#2ca02c", "SwinIR": "#1f77b4"}


def attention_depth_view(s: Session, threshold_t: float, p: str, rule: str, graph_off: bool = False,
                         scope: str = "group"):
    """(mean attention distance, attention mass) over the depth of every compared model."""
    inspections = compared_inspections(s, threshold_t, p, rule, graph_off, scope)
    return (analysis.attention.distance_figure(inspections, MODEL_COLOURS),
            analysis.attention.mass_figure(inspections, MODEL_COLOURS))


def rollout_view(s: Session, head_fusion: str, threshold_t: float, p: str, rule: str, graph_off: bool = False,
                 scope: str = "group"):
    """Attention rollout of the query pixel through every compared model."""
    return analysis.attention.rollout_figure(compared_inspections(s, threshold_t, p, rule, graph_off, scope),
                                             s.face, s.query, head_fusion)


def face_picker(s: Session, mark: tuple[int, int] | None = None) -> str:
    """The face as a large file to click on (at least graphs.MIN_DRAWN_SIDE px a side, nearest-upscaled, each LR
    pixel `picker_cell(s)` px, so `lr_pixel` reads a click back), with the LR pixel `mark` outlined."""
    k = picker_cell(s)
    img = graphs.face_canvas(s.face, (s.lr.height, s.lr.width), k)
    if mark is not None:
        r, c = mark[0] * k, mark[1] * k
        ImageDraw.Draw(img).rectangle((c - 2, r - 2, c + k + 1, r + k + 1), outline=(0, 255, 102), width=3)
    return png(img, "face")


def _clamp(i, n: int) -> int:
    return min(max(int(i), 0), n - 1)
