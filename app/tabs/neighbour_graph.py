"""The Neighbour graph tab: the GVTNet's patch graph on the session's face under the graph settings of its
controls (which the Attention and Threshold tabs follow), on a large face to click a pixel on."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import numpy as np

import analysis
from analysis import graphs
from gvtnet import GraphSettings
from gvtnet.inference import to_tensor
from gvtnet.sr_models import has_graph
from gvtnet.weights import describe

from ..context import DEFAULT_GRAPH, PRIVATE, RESTORING, Context, up_to_date, values
from ..state import Session
from .inputs import IMAGE, P_CHOICES, UserError, clamp, face_picker, lr_pixel, no_face, picker_cell, png

TITLE = "Neighbour graph"
SCOPE_LABELS = {"one per group, shared by every window (released)": "group",
                "one per window, from its own tokens (the paper's text)": "window"}
EDGE_LABELS = dict(zip(("the threshold's cuts where most pairs are kept, else the kept ones", "edges the threshold cut",
                        "edges kept"), graphs.EDGE_CHOICES))


def read_settings(threshold: float, p: str, rule: str, graph_off: bool, scope: str) -> GraphSettings:
    """The controls' values as one GraphSettings: p as chosen (None: the model's own), graph_off keeps every
    edge."""
    return GraphSettings(threshold=float(threshold), minkowski_p=P_CHOICES.get(p), neighbour_rule=rule,
                         graph_scope=scope, use_graph=False if graph_off else None)


def session_inspection(s: Session, settings: GraphSettings):
    """The GVTNet's graphs and attention on the session's face under `settings`, cached on the session.
    Always on a variant: capturing records into the modules it runs, so it must never run on the model
    that every visitor shares."""
    if s.inspection is None or s.graph_settings != settings:
        s.inspection = analysis.inspect(s.model.variant(settings), to_tensor(s.lr))
        s.graph_settings = settings
    if not s.inspection.graphs:
        raise UserError(f"This model ({describe(s.model.cfg)}) has no graph layers to show.")
    return s.inspection


def graph_pixel(s: Session) -> tuple[int, int]:
    """The LR pixel selected on the graph view: the last click, else the face's centre."""
    return s.graph_pixel if s.graph_pixel is not None else (s.lr.height // 2, s.lr.width // 2)


def graph_group_head(ins, group: int, head: int) -> tuple[int, int]:
    """The sliders' group and head made valid: the nearest group that has a graph (uploaded models may
    have groups without), a head within range."""
    group = clamp(group, ins.num_groups)
    return min((g for g, _ in ins.graphs), key=lambda g: (abs(g - group), g)), clamp(head, ins.num_heads)


def _selection(s: Session, group, head, settings: GraphSettings, edges):
    """(inspection, group, head, graphs.Selection) of the session's selected pixel under these settings."""
    ins = session_inspection(s, settings)
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


@dataclass(frozen=True)
class GraphView:
    """What the tab shows for the selected pixel: the large face with its window's graph (a file), a caption
    saying how to read it, the overview of every group x head and the window's adjacency (plotly), and the
    graph's statistics rows. A model without graph blocks: its face and the reason, nothing else."""

    face: str
    caption: str
    overview: object = None
    heatmap: object = None
    stats: list | None = None


def graph_view(s: Session, group: int, head: int, settings: GraphSettings = DEFAULT_GRAPH,
               edges: str = "auto") -> GraphView:
    """The tab's view of the session's selected pixel, kept across groups so that its node is looked up
    afresh in each."""
    if not has_graph(s.model):
        return GraphView(face_picker(s), f"This model ({describe(s.model.cfg)}) has no graph blocks: there is no "
                                         "graph to show. The Attention and LAM tabs work for it.")
    ins, group, head, sel = _selection(s, group, head, settings, edges)
    graph_off = settings.use_graph is False
    face = png(graphs.graph_image(ins, s.face, group, head, sel.pixel, sel.edges, cell=picker_cell(s)), "graph")
    stats = graphs.graph_stats(graphs.digraph(ins, group, head, window=sel.window))
    return GraphView(face, graph_caption(ins, group, head, sel, graph_off), graphs.overview_figure(ins, pixel=sel.pixel),
                     graphs.adjacency_heatmap(ins, group, head, sel.window, sel.node), graphs.stats_table(stats))


def select_graph_pixel(s: Session, xy) -> Session:
    """Keep the LR pixel under a click on the graph view (see `lr_pixel`); a click off the image keeps the
    current selection."""
    pixel = lr_pixel(s, xy)
    if pixel is not None:
        s.graph_pixel = pixel
    return s




def build(ctx: Context) -> None:
    g = DEFAULT_GRAPH
    with gr.Row():
        group = gr.Slider(0, 3, 0, step=1, label="Group")
        head = gr.Slider(0, 3, 0, step=1, label="Head")
        threshold = gr.Slider(0, 1, g.threshold, step=0.01, label="Threshold T", elem_id="threshold")
        graph_off = gr.Checkbox(False, label="Graph off (every edge kept, same weights)", elem_id="graph-off")
    with gr.Row():
        p = gr.Dropdown(list(P_CHOICES), value="model's own", label="Minkowski p")
        rule = gr.Radio(["released", "paper"], value=g.neighbour_rule, label="Neighbour rule")
        scope = gr.Radio(list(SCOPE_LABELS.items()), value=g.graph_scope, label="Graphs")
        edges = gr.Radio(list(EDGE_LABELS.items()), value="auto", label="Lines show")
    with gr.Row():
        face = gr.Image(label="Click a pixel to select its window and node", interactive=False, height=440,
                        scale=1, min_width=420, elem_id="graph-face", **IMAGE)
        with gr.Column(scale=1):
            caption = gr.Markdown(elem_id="graph-caption")
            stats = gr.Dataframe(headers=["statistic", "value", "meaning"], interactive=False,
                                 label="This graph (self-loops left out)", wrap=True,
                                 column_widths=["30%", "18%", "52%"], max_height=360, elem_id="graph-stats",
                                 elem_classes="unbroken-table")
    with gr.Row():
        overview = gr.Plot(label="Every group and head at once", scale=3, elem_id="graph-overview")
        heatmap = gr.Plot(label="This window's adjacency", scale=2)
    gr.Markdown("Each small square is one group's and head's adjacency in the selected window: row = the node "
                "that attends, column = the node attended to, dark = cut by the threshold, the green line the "
                "selected node's row; the number is the share of pairs kept.")
    controls = [threshold, p, rule, graph_off, scope]
    inputs = [ctx.session, group, head, edges, *controls]
    view = [face, caption, overview, heatmap, stats]
    ctx.results(face, overview, heatmap, stats)
    ctx.results(caption, pending=RESTORING)  # the tab opened while a restore runs says so

    def draw(s, group_, head_, edges_, *control_values, force=True):
        settings = read_settings(*control_values)
        if s is None:  # no face (cleared: nothing to show), or shown while a restore runs (keep its line)
            return [settings] + [None if force else gr.skip()] * len(view)
        if up_to_date(s.drawn, TITLE, (group_, head_, edges_, settings, s.graph_pixel)) and not force:
            return [settings] + [gr.skip()] * len(view)
        return [settings, *values(graph_view(s, group_, head_, settings, edges_))]

    def on_new_face(s, shown, *args):  # only the tab on screen draws; another draws when it is shown
        return draw(s, *args) if shown == TITLE else [read_settings(*args[3:])] + [None] * len(view)

    # Named parameters, not *args: Gradio passes the click's SelectData positionally after the inputs
    def on_pick(s, group_, head_, edges_, threshold_, p_, rule_, graph_off_, scope_, evt: gr.SelectData):
        if s is None:
            no_face()
        s = select_graph_pixel(s, evt.index)
        return [s, *draw(s, group_, head_, edges_, threshold_, p_, rule_, graph_off_, scope_)]  # one round trip

    def on_model(s):
        if s is None:
            return gr.skip(), gr.skip()
        return gr.update(maximum=len(s.model.cfg.depths) - 1), gr.update(maximum=s.model.cfg.num_heads - 1)

    # The graph follows its controls live; only the latest value is computed while a slider moves.
    gr.on([c.change for c in (group, head, edges, *controls)], draw, inputs, [ctx.graph, *view],
          trigger_mode="always_last", **PRIVATE)
    face.select(on_pick, inputs, [ctx.session, ctx.graph, *view], **PRIVATE)
    ctx.on_new_face(on_model, [ctx.session], [group, head])
    ctx.on_new_face(on_new_face, [ctx.session, ctx.shown, group, head, edges, *controls], [ctx.graph, *view])
    ctx.on_show(TITLE, lambda *a: draw(*a, force=False), inputs, [ctx.graph, *view])
