"""The Threshold effects tab: the restoration swept over the graph threshold T, on the session's face and
on the example faces."""
from __future__ import annotations

import functools
from pathlib import Path

import gradio as gr
import numpy as np
import torch

from analysis import threshold as threshold_analysis
from gvtnet.data import FacePairs
from gvtnet.inference import to_tensor
from gvtnet.weights import describe

from ..examples import example_files
from ..state import Session
from .graph import graph_settings
from .inputs import P_CHOICES, png

SWEEP_THRESHOLDS = np.round(np.linspace(0, 1, 21), 2)


def parse_thresholds(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError as e:
        raise gr.Error(f"Thresholds must be numbers separated by commas, e.g. 0.25, 0.5, 0.85 ({e}).") from e
    if not values or any(not 0 <= v <= 1 for v in values):
        raise gr.Error("Give one or more thresholds between 0 and 1, e.g. 0.25, 0.5, 0.85.")
    return values


def threshold_view(s: Session, p: str, rule: str, at: str):
    """(sweep curves, [(thumbnail file, caption)]) over SWEEP_THRESHOLDS."""
    changes = graph_settings(0, p, rule)
    sw = threshold_analysis.sweep(s.model, to_tensor(s.lr), SWEEP_THRESHOLDS, hr=s.hr,
                                  minkowski_p=changes.get("minkowski_p"), neighbour_rule=rule)
    mode = "L" if s.lr.mode == "L" else "RGB"
    thumbs = [(png(img.convert(mode), f"gvtnet-T{t:.2f}"), f"T = {t:.2f}")
              for t, img in threshold_analysis.thumbnails(sw, parse_thresholds(at))]
    return threshold_analysis.sweep_figure(sw), thumbs


@functools.lru_cache(maxsize=4)
def _example_pairs(scale: int) -> FacePairs:
    return FacePairs.from_files([Path(p) for p in example_files()], scale, progress=False)


def threshold_faces_view(s: Session, p: str, rule: str, progress=None):
    """(curves, table rows) of the sweep over SWEEP_THRESHOLDS on the example faces and the session's own
    (where it has an original): mean and spread of the PSNR change and of the edge density per T, with the
    graph off as the reference. progress(done, total) follows the settings."""
    if "G" not in s.model.cfg.block_pattern:
        raise gr.Error(f"This model ({describe(s.model.cfg)}) has no graph layers: T changes nothing.")
    pairs = _example_pairs(s.scale)
    if s.hr is not None:
        own = [torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1)[None] for img in (s.hr, s.lr)]
        pairs = FacePairs(torch.cat([pairs.hr, own[0]]), torch.cat([pairs.lr, own[1]]), pairs.scale)
    sw = threshold_analysis.sweep_faces(s.model, pairs, SWEEP_THRESHOLDS, minkowski_p=P_CHOICES.get(p),
                                        neighbour_rule=rule, progress=progress)
    rows = [[t if isinstance(t, str) else round(t, 2), round(c, 3), round(cs, 3), round(d, 3), round(ds, 3)]
            for t, c, cs, d, ds in sw.rows()]
    return threshold_analysis.faces_figure(sw), rows
