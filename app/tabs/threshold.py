"""The Threshold effects tab: the restoration swept over the graph threshold T, on the session's face and
on the example faces."""
from __future__ import annotations

import functools
from pathlib import Path

import gradio as gr
import numpy as np
import torch

from analysis import threshold as threshold_analysis
from gvtnet import GraphSettings
from gvtnet.data import FacePairs
from gvtnet.inference import to_tensor
from gvtnet.sr_models import has_graph
from gvtnet.weights import describe

from ..context import PRIVATE, Context
from ..examples import example_files
from ..state import Session
from .inputs import UserError, no_face, png

TITLE = "Threshold effects"

SWEEP_THRESHOLDS = np.round(np.linspace(0, 1, 21), 2)


def parse_thresholds(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError as e:
        raise UserError(f"Thresholds must be numbers separated by commas, e.g. 0.25, 0.5, 0.85 ({e}).") from e
    if not values or any(not 0 <= v <= 1 for v in values):
        raise UserError("Give one or more thresholds between 0 and 1, e.g. 0.25, 0.5, 0.85.")
    return values


def threshold_view(s: Session, settings: GraphSettings, at: str):
    """(sweep curves, [(thumbnail file, caption)]) over SWEEP_THRESHOLDS, under p and rule of `settings`."""
    sw = threshold_analysis.sweep(s.model, to_tensor(s.lr), SWEEP_THRESHOLDS, hr=s.hr,
                                  minkowski_p=settings.minkowski_p, neighbour_rule=settings.neighbour_rule)
    mode = "L" if s.lr.mode == "L" else "RGB"
    thumbs = [(png(img.convert(mode), f"gvtnet-T{t:.2f}"), f"T = {t:.2f}")
              for t, img in threshold_analysis.thumbnails(sw, parse_thresholds(at))]
    return threshold_analysis.sweep_figure(sw), thumbs


@functools.lru_cache(maxsize=4)
def _example_pairs(scale: int) -> FacePairs:
    return FacePairs.from_files([Path(p) for p in example_files()], scale, progress=False)


def threshold_faces_view(s: Session, settings: GraphSettings, progress=None):
    """(curves, table rows) of the sweep over SWEEP_THRESHOLDS on the example faces and the session's own
    (where it has an original): mean and spread of the PSNR change and of the edge density per T, with the
    graph off as the reference, under p and rule of `settings`. progress(done, total) follows the settings."""
    if not has_graph(s.model):
        raise UserError(f"This model ({describe(s.model.cfg)}) has no graph layers: T changes nothing.")
    pairs = _example_pairs(s.scale)
    if s.hr is not None:
        own = [torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1)[None] for img in (s.hr, s.lr)]
        pairs = FacePairs(torch.cat([pairs.hr, own[0]]), torch.cat([pairs.lr, own[1]]), pairs.scale)
    sw = threshold_analysis.sweep_faces(s.model, pairs, SWEEP_THRESHOLDS, minkowski_p=settings.minkowski_p,
                                        neighbour_rule=settings.neighbour_rule, progress=progress)
    rows = [[t if isinstance(t, str) else round(t, 2), round(c, 3), round(cs, 3), round(d, 3), round(ds, 3)]
            for t, c, cs, d, ds in sw.rows()]
    return threshold_analysis.faces_figure(sw), rows


def build(ctx: Context) -> None:
    with gr.Row():
        at = gr.Textbox("0.25, 0.5, 0.85, 1.0", label="Thumbnails at thresholds")
        run = gr.Button("Run the sweep", variant="primary")
    plot = gr.Plot(label="Sweep over T (p and rule from the Neighbour graph tab)", elem_id="threshold-sweep")
    gallery = gr.Gallery(label="Restorations", columns=4, height=220, format="png")
    gr.Markdown("One face moves by hundredths of a dB. Over several faces, the band is the spread between faces "
                "and the dashed line the same weights with the graph off: where the band holds that line, T does "
                "not matter for this model. (More faces: `python -m analysis.studies.sweep FOLDER --weights ...`.)")
    faces_run = gr.Button("Sweep over the example faces and this one")
    faces_plot = gr.Plot(label="PSNR change and edge density over the faces", elem_id="threshold-faces")
    faces_table = gr.Dataframe(headers=["T", "PSNR change (dB, Y)", "± std", "edge density", "± std"],
                               interactive=False, label="Mean and spread over the faces (change against the "
                                                        "model's own T)")
    ctx.results(plot, gallery, faces_plot, faces_table)

    def on_sweep(s, settings, at_):
        if s is None:
            no_face()
        return threshold_view(s, settings, at_)

    def on_faces(s, settings, progress=gr.Progress()):
        if s is None:
            no_face()
        return threshold_faces_view(s, settings, lambda done, total: progress((done, total), desc="settings"))

    run.click(on_sweep, [ctx.session, ctx.graph, at], [plot, gallery], **PRIVATE)
    faces_run.click(on_faces, [ctx.session, ctx.graph], [faces_plot, faces_table], **PRIVATE)
