"""The Attention tab: where the GVTNet's attention goes on the session's face (under the Neighbour graph
tab's settings), against the same weights with the graph off and the SwinIR baseline."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

import analysis
from gvtnet import GraphSettings
from gvtnet.inference import to_tensor
from gvtnet.sr_models import has_graph

from ..captions import ATTENTION_CAPTION, DISTANCE_CAPTION, MASS_CAPTION, ROLLOUT_CAPTION
from ..context import DEFAULT_GRAPH, PRIVATE, Context, up_to_date, values
from ..state import Session
from .inputs import IMAGE, clamp, face_picker, lr_pixel, no_face
from .neighbour_graph import session_inspection
from .restore import NO_GRAPH

TITLE = "Attention"


def compared_inspections(s: Session, settings: GraphSettings = DEFAULT_GRAPH) -> dict:
    """{name: Inspection} of the models the tab compares on the session's face: the GVTNet under `settings`,
    the same weights with the graph off, and the SwinIR baseline where there is one. The last two do not
    depend on the settings, so they are computed once per session (on variants, as capturing must never run
    on a shared model). A model without graph blocks is compared as it is."""
    cache, lr = s.attention_inspections, to_tensor(s.lr)

    def cached(name, model):
        if name not in cache:
            cache[name] = analysis.inspect(model(), lr)
        return cache[name]

    graph = has_graph(s.model)
    out = {"GVTNet": session_inspection(s, settings) if graph else cached("GVTNet", s.model.variant)}
    if graph:
        cached("GVTNet, graph off", lambda: s.model.variant(use_graph=False))
    if NO_GRAPH in s.others:
        cached(NO_GRAPH, s.others[NO_GRAPH].variant)
    if s.baseline_model is not None:
        cached("SwinIR", s.baseline_model.variant)
    return out | {name: cache[name] for name in ("GVTNet, graph off", NO_GRAPH, "SwinIR") if name in cache}


def attention_view(s: Session, group: int, block: int, head: int, settings: GraphSettings = DEFAULT_GRAPH):
    """Attention of the query pixel in one block and head (before and after the graph for graph blocks)."""
    ins = compared_inspections(s, settings)["GVTNet"]
    group = clamp(group, len(s.model.layers))
    block = clamp(block, len(ins.blocks_of(group)))
    return analysis.attention.attention_figure(ins, s.face, group, block, clamp(head, ins.num_heads), s.query)


def rollout_view(s: Session, head_fusion: str, settings: GraphSettings = DEFAULT_GRAPH):
    """Attention rollout of the query pixel through every compared model."""
    return analysis.attention.rollout_figure(compared_inspections(s, settings), s.face, s.query, head_fusion)


# The compared models keep these colours in every depth figure.
MODEL_COLOURS = {"GVTNet": "#d62728", "GVTNet, graph off": "#ff9f40", NO_GRAPH: "#2ca02c", "SwinIR": "#1f77b4"}


@dataclass(frozen=True)
class DepthView:
    """How far each block looks, and where its attention goes, over the depth of every compared model."""

    distance: object
    mass: object


def depth_view(s: Session, settings: GraphSettings = DEFAULT_GRAPH) -> DepthView:
    inspections = compared_inspections(s, settings)
    return DepthView(analysis.attention.distance_figure(inspections, MODEL_COLOURS),
                     analysis.attention.mass_figure(inspections, MODEL_COLOURS))


def select_query(s: Session, xy) -> Session:
    """Keep the LR pixel under a click on the picker as the query; a click off the image keeps it."""
    pixel = lr_pixel(s, xy)
    if pixel is not None:
        s.query = pixel
    return s


def build(ctx: Context) -> None:
    gr.Markdown("Click the face to choose the query pixel. GVTNet (graph settings of the Neighbour graph tab) is "
                "compared with the same weights with the graph off and with the SwinIR baseline.")
    with gr.Row():
        picker = gr.Image(label="Click the query pixel", interactive=False, height=400, scale=2, min_width=400,
                          elem_id="attention-picker", **IMAGE)
        with gr.Column(scale=3):
            with gr.Row():
                group = gr.Slider(0, 3, 0, step=1, label="Group")
                block = gr.Slider(0, 1, 1, step=1, label="Block (in the group)")
                head = gr.Slider(0, 3, 0, step=1, label="Head")
            plot = gr.Plot(label="The query's attention in one block and head", elem_id="attention")
            gr.Markdown(ATTENTION_CAPTION)
    rollout = gr.Plot(label="Where the whole network looks", elem_id="rollout")
    with gr.Row():
        fusion = gr.Radio(list(analysis.attention.HEAD_FUSIONS), value="mean", label="Fuse heads by", scale=1)
        gr.Markdown(ROLLOUT_CAPTION)
    distance = gr.Plot(label="How far each block looks", elem_id="attention-distance")
    gr.Markdown(DISTANCE_CAPTION)
    mass = gr.Plot(label="Where each block's attention goes", elem_id="attention-mass")
    gr.Markdown(MASS_CAPTION)
    inputs = [ctx.session, group, block, head, fusion, ctx.graph]
    view = [plot, picker, rollout, distance, mass]
    ctx.results(*view)

    def block_views(s, group_, block_, head_, settings):
        return [attention_view(s, group_, block_, head_, settings), face_picker(s, s.query)]

    def draw(s, group_, block_, head_, fusion_, settings, force=True):
        if s is None:
            return [None] * len(view)
        # Only the graph settings can change while the tab is hidden (the rest are its own controls)
        if up_to_date(s.drawn, TITLE, settings) and not force:
            return [gr.skip()] * len(view)
        return [*block_views(s, group_, block_, head_, settings), rollout_view(s, fusion_, settings),
                *values(depth_view(s, settings))]

    def on_new_face(s, shown, *args):  # only the tab on screen draws; another draws when it is shown
        return draw(s, *args) if shown == TITLE else [None] * len(view)

    def on_block(s, group_, block_, head_, settings):
        if s is None:
            return None, None
        return block_views(s, group_, block_, head_, settings)

    def on_query(s, group_, block_, head_, fusion_, settings):
        out = draw(s, group_, block_, head_, fusion_, settings)
        return out[:3]  # the depth figures do not depend on the query

    def on_pick(s, evt: gr.SelectData):
        if s is None:
            no_face()
        return select_query(s, evt.index)

    def on_fusion(s, fusion_, settings):
        return None if s is None else rollout_view(s, fusion_, settings)

    def on_model(s):
        if s is None:
            return gr.skip(), gr.skip(), gr.skip()
        cfg = s.model.cfg
        return (gr.update(maximum=len(cfg.depths) - 1), gr.update(maximum=max(cfg.depths) - 1),
                gr.update(maximum=cfg.num_heads - 1))

    gr.on([group.change, block.change, head.change], on_block, [ctx.session, group, block, head, ctx.graph],
          [plot, picker], trigger_mode="always_last", **PRIVATE)
    picker.select(on_pick, ctx.session, ctx.session, **PRIVATE) \
        .success(on_query, inputs, view[:3], **PRIVATE)
    fusion.change(on_fusion, [ctx.session, fusion, ctx.graph], rollout, **PRIVATE)
    ctx.on_new_face(on_model, [ctx.session], [group, block, head])
    ctx.on_new_face(on_new_face, [ctx.session, ctx.shown, *inputs[1:]], view)
    ctx.on_show(TITLE, lambda *a: draw(*a, force=False), inputs, view)
