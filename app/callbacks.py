"""The app's computations as plain functions: file paths, numbers and PIL images in; Sessions, image
files, figures and dicts out. ui.py only wires them to components, and the tests call them directly.

Errors a visitor can cause raise gr.Error with the real reason (Gradio would otherwise show a generic
"error"); notices that do not stop the work go through gr.Info / gr.Warning.
"""
from __future__ import annotations

import functools
import io
import json
import math
import re
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import gradio as gr
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

import analysis
from analysis import ablation, graphs, lam, lam_study, threshold
from gvtnet import GVTNet
from gvtnet.data import FacePairs
from gvtnet.faces import find_face
from gvtnet.images import HR_SIZE, ImageError, bicubic_upscale, center_square, degrade, open_image
from gvtnet.inference import super_resolve, to_image, to_tensor
from gvtnet.metrics import psnr, ssim
from gvtnet.sr_models import describe_model, load_sr_model, model_name, scale_of
from gvtnet.photo import PhotoResult, restore_photo
from gvtnet.weights import CheckpointError, describe

from .examples import example_files
from .state import ABLATION_RESULTS, MAX_IMAGE_BYTES, MODEL_CARD, MODELS, Session

MIN_SIDE = 16  # smaller images hold no face worth restoring
# Big photos are reduced to this side before the face is cropped: the face ends up 128 px anyway, and
# detection and cropping stay fast. (open_image refuses files too large to decode safely.)
WORK_SIDE = 1024
# A real low-resolution face larger than SR_MAX / scale is reduced to it: the views' cost grows with the
# pixels (LAM on a 64 px face takes minutes on two cores, on a 32 px one seconds).
SR_MAX = 128
SIMULATE, REAL = "simulate", "real"
FACE, CENTRE = "face", "centre"
P_CHOICES = {"model's own": None, "1": 1.0, "2": 2.0, "3": 3.0, "∞": math.inf}
SWEEP_THRESHOLDS = np.round(np.linspace(0, 1, 21), 2)

# Every image handed to Gradio is a new file of its own. Gradio caches returned PIL images under a hash of
# their bytes, so visitors restoring the same example at once would rewrite one file while another reads
# it; a fresh path per result is copied into the cache atomically instead.
_OUTPUT_ROOT = Path(tempfile.gettempdir()) / "gvtnet-explorer-outputs"
_KEEP_S = 600  # Gradio copies a result the moment it is returned; older files are only clutter


def png(img: Image.Image, name: str) -> str:
    """Write `img` losslessly to a fresh file called `name`.png and return its path."""
    _OUTPUT_ROOT.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in _OUTPUT_ROOT.iterdir():
        try:
            if now - old.stat().st_mtime > _KEEP_S:
                shutil.rmtree(old, ignore_errors=True)
        except FileNotFoundError:  # another request removed it first
            pass
    folder = _OUTPUT_ROOT / uuid.uuid4().hex
    folder.mkdir()
    path = folder / f"{name}.png"
    img.save(path, format="PNG")
    return str(path)


# ----------------------------------------------------------------------------------------------------
# Input


def open_upload(path: str | None, keep_alpha: bool = False) -> Image.Image:
    """The uploaded file as gvtnet.images.open_image reads it; gr.Error with the reason where it cannot
    be used."""
    if path is None:
        raise gr.Error("Upload a photo, take one with the webcam, or pick an example.")
    size = Path(path).stat().st_size if Path(path).is_file() else 0
    if size > MAX_IMAGE_BYTES:
        raise gr.Error(f"The file is {size / 1e6:.0f} MB: photos up to {MAX_IMAGE_BYTES / 1e6:.0f} MB are accepted.")
    try:
        return open_image(path, keep_alpha=keep_alpha)
    except ImageError as e:
        raise gr.Error(f"Cannot use this image: {e}.") from e


def prepare(path: str | None, scale: int, mode: str, crop: str) -> tuple[Image.Image | None, Image.Image, list[str]]:
    """(hr, lr, notices) from an uploaded file. simulate: hr is the 128x128 face and lr its bicubic
    downscale; real: hr is None and lr the square face as uploaded (reduced only above SR_MAX / scale)."""
    img = open_upload(path)
    if min(img.size) < MIN_SIDE:
        raise gr.Error(f"The image is too small ({img.width}x{img.height}): at least {MIN_SIDE} px a side is needed.")
    notices = []
    if max(img.size) > WORK_SIDE:
        img = img.copy()
        img.thumbnail((WORK_SIDE, WORK_SIDE), Image.BICUBIC)
    box = find_face(img) if crop == FACE else None
    if crop == FACE and box is None:
        notices.append("No face found: the centre square is used instead.")
    square = img.crop(box) if box else center_square(img, min(img.size))
    if mode == SIMULATE:
        if square.width < HR_SIZE:
            notices.append(f"The face is only {square.width} px wide, so the 'original' is itself an upscale.")
        hr = square if square.width == HR_SIZE else square.resize((HR_SIZE, HR_SIZE), Image.BICUBIC)
        return hr, degrade(hr, scale), notices
    side = min(square.width, SR_MAX // scale)
    if side < square.width:
        notices.append(f"The {square.width} px input was reduced to {side} px, to keep the restoration fast.")
        square = square.resize((side, side), Image.BICUBIC)
    return None, square, notices


def sr_image(model: GVTNet, lr: Image.Image, ensemble: str | None = None) -> Image.Image:
    """The model's restoration of `lr` (averaged over an `ensemble` of gvtnet.inference.ENSEMBLES, if given),
    grayscale if `lr` is."""
    out = super_resolve(model, to_tensor(lr), ensemble)
    return to_image(out, "L" if lr.mode == "L" else "RGB")


# ----------------------------------------------------------------------------------------------------
# 1. Restore


NO_GRAPH = "GVTNet, no graph (retrained)"


def restore(path, scale, mode, crop, ensemble, preset, custom: GVTNet | None, compare=None) -> Session:
    """A new session for the uploaded face: restored by the session's GVTNet (an uploaded checkpoint, else
    the shipped preset), by bicubic, by the shipped SwinIR baseline where there is one, and by `compare`
    (an uploaded model of another architecture, see load_checkpoint), whose scale then sets the session's."""
    if compare is not None and custom is None:
        scale = scale_of(compare)
    try:
        model = custom if custom is not None else MODELS.gvtnet(preset, int(scale))
    except FileNotFoundError as e:
        raise gr.Error(f"Nothing to compare the uploaded model with: {e}.") from e
    scale = model.cfg.upscale
    # the shipped GVTNet retrained without its graph, beside the shipped GVTNet it was fine-tuned from
    no_graph = MODELS.no_graph(preset, scale) if custom is None else None
    others = {NO_GRAPH: no_graph} if no_graph is not None else {}
    if compare is not None:
        if scale_of(compare) == scale:
            others[f"{model_name(compare)} (uploaded)"] = compare
        else:
            gr.Warning(f"The uploaded {describe_model(compare)} is not x{scale}, so it is not compared.")
    hr, lr, notices = prepare(path, scale, mode, crop)
    for n in notices:
        gr.Info(n)
    baseline_model = MODELS.baseline(preset, scale)
    h, w = lr.height * scale, lr.width * scale
    return Session(
        hr=hr, lr=lr, scale=scale, model=model, baseline_model=baseline_model,
        sr=sr_image(model, lr, ensemble), bicubic=bicubic_upscale(lr, scale),
        baseline=sr_image(baseline_model, lr, ensemble) if baseline_model is not None else None,
        query=(lr.height // 2, lr.width // 2), lam_centre=(h // 2, w // 2), notices=notices,
        others=others, others_sr={name: sr_image(m, lr, ensemble) for name, m in others.items()},
    )


def metrics(s: Session) -> list[list]:
    """[method, PSNR (dB), SSIM] rows against the original (on luma, as the literature reports them);
    empty for a real low-resolution input, which has no original."""
    if s.hr is None:
        return []
    hr = np.asarray(s.hr)
    rows = [("bicubic", s.bicubic), ("GVTNet", s.sr)] + ([("SwinIR", s.baseline)] if s.baseline else []) + \
        list(s.others_sr.items())
    return [[name, round(psnr(np.asarray(img), hr), 2), round(ssim(np.asarray(img), hr), 4)] for name, img in rows]


def restore_view(s: Session) -> dict:
    """Files and values the Restore tab shows."""
    sr = png(s.sr, f"gvtnet-x{s.scale}")
    bicubic = png(s.bicubic, f"bicubic-x{s.scale}")
    return {
        "vs_bicubic": (sr, bicubic),
        "vs_original": (sr, png(s.hr, "original")) if s.hr is not None else None,
        "metrics": metrics(s),
        "lr": png(s.lr.resize(s.sr.size, Image.NEAREST), "input"),
        "gvtnet": sr,
        "baseline": png(s.baseline, f"swinir-x{s.scale}") if s.baseline is not None else None,
        "others": [(png(img, f"other-x{s.scale}"), name) for name, img in s.others_sr.items()],
        "download": sr,
    }


# ----------------------------------------------------------------------------------------------------
# 2. Neighbour graph and 3. attention


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


def _graph_group(ins, group: int) -> int:
    """The slider's group, or the nearest one that has a graph (uploaded models may have groups without)."""
    group = _clamp(group, ins.num_groups)
    return min((g for g, _ in ins.graphs), key=lambda g: (abs(g - group), g))


def _selection(s: Session, group, head, threshold_t, p, rule, graph_off, scope, edges):
    """(inspection, group, head, graphs.Selection) of the session's selected pixel under these settings."""
    ins = inspect(s, threshold_t, p, rule, graph_off, scope)
    group, head = _graph_group(ins, group), _clamp(head, ins.num_heads)
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
    selected pixel, kept across groups so that its node is looked up afresh in each."""
    ins, group, head, sel = _selection(s, group, head, threshold_t, p, rule, graph_off, scope, edges)
    face = png(graphs.graph_image(ins, s.face, group, head, sel.pixel, sel.edges, cell=picker_cell(s)), "graph")
    stats = graphs.graph_stats(graphs.digraph(ins, group, head, window=sel.window))
    return (face, graph_caption(ins, group, head, sel, graph_off), graphs.overview_figure(ins, sel.window, sel.node),
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

    has_graph = "G" in s.model.cfg.block_pattern
    out = {"GVTNet": inspect(s, threshold_t, p, rule, graph_off, scope) if has_graph
           else cached("GVTNet", s.model.variant)}
    if has_graph:
        cached("GVTNet, graph off", lambda: s.model.variant(use_graph=False))
    if NO_GRAPH in s.others:
        cached(NO_GRAPH, s.others[NO_GRAPH].variant)
    if s.baseline_model is not None:
        cached("SwinIR", s.baseline_model.variant)
    return out | {name: cache[name] for name in ("GVTNet, graph off", NO_GRAPH, "SwinIR") if name in cache}


def attention_depth_view(s: Session, threshold_t: float, p: str, rule: str, graph_off: bool = False,
                         scope: str = "group"):
    """(mean attention distance, attention mass) over the depth of every compared model."""
    inspections = compared_inspections(s, threshold_t, p, rule, graph_off, scope)
    return analysis.attention.distance_figure(inspections), analysis.attention.mass_figure(inspections)


def rollout_view(s: Session, head_fusion: str, threshold_t: float, p: str, rule: str, graph_off: bool = False,
                 scope: str = "group"):
    """Attention rollout of the query pixel through every compared model."""
    return analysis.attention.rollout_figure(compared_inspections(s, threshold_t, p, rule, graph_off, scope),
                                             s.face, s.query, head_fusion)


def face_picker(s: Session, mark: tuple[int, int] | None = None) -> str:
    """The face as a large file to click on (at least graphs.MIN_SIDE px a side, nearest-upscaled, each LR
    pixel `picker_cell(s)` px, so `lr_pixel` reads a click back), with the LR pixel `mark` outlined."""
    k = picker_cell(s)
    img = graphs.face_canvas(s.face, (s.lr.height, s.lr.width), k)
    if mark is not None:
        r, c = mark[0] * k, mark[1] * k
        ImageDraw.Draw(img).rectangle((c - 2, r - 2, c + k + 1, r + k + 1), outline=(0, 255, 102), width=3)
    return png(img, "face")


def _clamp(i, n: int) -> int:
    return min(max(int(i), 0), n - 1)


# ----------------------------------------------------------------------------------------------------
# 4. Threshold effects


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
    sw = threshold.sweep(s.model, to_tensor(s.lr), SWEEP_THRESHOLDS, hr=s.hr,
                         minkowski_p=changes.get("minkowski_p"), neighbour_rule=rule)
    mode = "L" if s.lr.mode == "L" else "RGB"
    thumbs = [(png(img.convert(mode), f"gvtnet-T{t:.2f}"), f"T = {t:.2f}")
              for t, img in threshold.thumbnails(sw, parse_thresholds(at))]
    return threshold.sweep_figure(sw), thumbs


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
    sw = threshold.sweep_faces(s.model, pairs, SWEEP_THRESHOLDS, minkowski_p=P_CHOICES.get(p), neighbour_rule=rule,
                               progress=progress)
    rows = [[t if isinstance(t, str) else round(t, 2), round(c, 3), round(cs, 3), round(d, 3), round(ds, 3)]
            for t, c, cs, d, ds in sw.rows()]
    return threshold.faces_figure(sw), rows


# ----------------------------------------------------------------------------------------------------
# 5. LAM


def lam_window(s: Session, window: int) -> tuple[int, int]:
    """Top-left SR pixel of the window centred on the session's LAM point, kept inside the image."""
    window = int(window)
    h, w = s.sr.height, s.sr.width
    if window > min(h, w):
        raise gr.Error(f"A {window} px window does not fit the {w}x{h} restoration.")
    r, c = s.lam_centre
    return min(max(r - window // 2, 0), h - window), min(max(c - window // 2, 0), w - window)


def lam_picker(s: Session, window: int) -> str:
    """The restoration with the LAM window drawn on it, to click on."""
    img = s.sr.convert("RGB")
    r, c = lam_window(s, window)
    ImageDraw.Draw(img).rectangle((c, r, c + int(window) - 1, r + int(window) - 1), outline=(255, 0, 0), width=2)
    return png(img, "window")


def place_lam(s: Session, xy) -> Session:
    if xy and xy[0] is not None and xy[1] is not None:
        s.lam_centre = (int(xy[1]), int(xy[0]))
    return s


# LAM runs in bf16 where the CPU computes it natively (AMX, AVX512-BF16), else in fp32 (maps correlate
# > 0.999 with fp32, DI within 1%: docs/PERFORMANCE.md); the page says which was used.
LAM_PRECISION = "auto"
# Path points per batch: smaller batches cost a little speed but give progress steps often enough that a
# job whose visitor left stops soon (VISITORS.check runs at each step).
LAM_BATCH = 10
STUDY_FACES = 3  # the small study's faces: the example crops and the session's own


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def lam_models(s: Session) -> dict:
    """{name: model} that LAM compares: the GVTNet, the SwinIR baseline and the uploaded models."""
    return {"GVTNet": s.model} | ({"SwinIR": s.baseline_model} if s.baseline_model is not None else {}) | s.others


def lam_view(s: Session, window: int, progress=None, spread: bool = True) -> dict:
    """LAM of the window for every model of `lam_models`, side by side on one shared path; progress(done,
    total) counts the path points of all. Returns {'models': {name: {'di', 'row', 'col', 'window',
    'precision', 'overlay', 'kde'}}, 'spread': the spread view's file (or None), 'precision'}."""
    row, col = lam_window(s, window)
    results = lam.attribution_maps(lam_models(s), to_tensor(s.lr), row, col, window=int(window), batch_size=LAM_BATCH,
                                   precision=LAM_PRECISION, progress=progress)
    models = {name: {"di": round(res.di, 3), "row": row, "col": col, "window": int(window), "precision": res.precision,
                     "overlay": png(lam.lam_overlay(res), f"lam-{_slug(name)}"),
                     "kde": png(lam.lam_kde(res), f"lam-kde-{_slug(name)}")} for name, res in results.items()}
    spread_png = None
    if spread:
        fig = lam.spread_figure(results)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        spread_png = png(Image.open(buf), "lam-spread")
    return {"models": models, "spread": spread_png, "precision": next(iter(results.values())).precision}


def run_lam(s: Session, window: int, progress=None) -> dict:
    """{name: {'di', 'row', 'col', 'window', 'precision', 'overlay', 'kde'}} of lam_view, without the figure."""
    return lam_view(s, window, progress, spread=False)["models"]


def lam_study_view(s: Session, window: int, progress=None) -> tuple[str, str]:
    """A small analysis.lam_study: LAM of every model at the named face windows (eyes, nose, mouth) of
    the example faces and the session's own (where it has an original). Returns (Markdown table, figure
    file); progress(done, total) counts face-windows."""
    faces = {Path(f).stem: to_tensor(prepare(f, s.scale, SIMULATE, FACE)[1]) for f in example_files()[:STUDY_FACES - 1]}
    if s.hr is not None:
        faces["your face"] = to_tensor(s.lr)
    faces = {k: v for k, v in faces.items() if v.shape[-2:] == (s.lr.height, s.lr.width)}
    side = s.lr.width * s.scale
    result = lam_study.study(lam_models(s), faces, lam_study.face_windows(side, side, int(window)),
                             precision=LAM_PRECISION, resamples=2000, progress=progress)
    fig = lam_study.figure(result)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return lam_study.markdown(result) + "\n" + lam_study.FIGURE_CAPTION, png(Image.open(buf), "lam-study")


# ----------------------------------------------------------------------------------------------------
# 6. Model


def load_checkpoint(path: str | None) -> tuple[GVTNet | None, object | None]:
    """(GVTNet, other) from an uploaded checkpoint (gvtnet.load_sr_model): a GVTNet (ours or the released
    code's) replaces the session's; any other SR architecture is compared beside it. None clears both."""
    if path is None:
        return None, None
    try:
        model = load_sr_model(path)
    except CheckpointError as e:
        raise gr.Error(f"Cannot use this checkpoint: {e}") from e
    return (model, None) if isinstance(model, GVTNet) else (None, model)


def model_summary(model: GVTNet, source: str, others: dict | None = None) -> str:
    cfg = model.cfg
    params = sum(p.numel() for p in model.parameters())
    text = (f"**{source}**: {describe(cfg)}, {params / 1e6:.2f} M parameters, x{cfg.upscale}; graph threshold "
            f"T = {cfg.threshold}, Minkowski p = {cfg.minkowski_p}, neighbour rule '{cfg.neighbour_rule}'.")
    for name, m in (others or {}).items():
        if name == NO_GRAPH:
            text += (f"\n\n**{name}**: the shipped GVTNet fine-tuned with its graph blocks run as Swin-type "
                     "blocks (docs/ABLATION.md); Restore, Attention and LAM show it beside GVTNet.")
        else:
            text += (f"\n\n**Uploaded for comparison**: {describe_model(m)}. Restore and LAM show it beside "
                     "GVTNet; it has no graph layers, so the Neighbour graph and Attention tabs show GVTNet's.")
    return text


def ablation_summary() -> str:
    """The light Table I (docs/ABLATION.md) as far as it has been trained, for the Model tab."""
    if not ABLATION_RESULTS.is_file():
        return ""
    results = json.loads(ABLATION_RESULTS.read_text())
    return ("### What the graph contributes (x8, CelebA test faces; `docs/ABLATION.md` has the method, commands "
            "and caveats)\n\n" + ablation.tables(results))


def ablation_figure() -> str | None:
    """The light Table I as a picture (PSNR-Y against LAM's DI, a point per run), for the Model tab."""
    if not ABLATION_RESULTS.is_file():
        return None
    buf = io.BytesIO()
    ablation.figure(json.loads(ABLATION_RESULTS.read_text())).savefig(buf, format="png", dpi=90)
    return png(Image.open(buf), "ablation")


def model_card() -> str:
    if MODEL_CARD.is_file():
        return MODEL_CARD.read_text(encoding="utf-8")
    return "_No model card shipped (assets/MODEL_CARD.md is absent)._"


# ----------------------------------------------------------------------------------------------------
# 7. Photo: every face of a whole photo

# A photo is reduced so that its restoration is at most this many px a side: the before/after images stay
# quick to encode and to send, and a face that the reduction shrinks below the detector's reach is rare.
PHOTO_SIDE = 2048
RESTORED, LEFT = (0, 255, 102), (255, 160, 0)  # box colours: restored, left to the background


def photo_view(path, scale, ensemble, preset, custom: GVTNet | None, progress=None) -> dict:
    """Every face of an uploaded photo restored by the session's GVTNet (gvtnet.restore_photo);
    progress(done, total) follows the faces. Returns files and values for the Photo tab: 'boxes' (the
    bicubic photo with every face boxed and numbered), 'slider' (restored, bicubic), 'gallery' [(file,
    caption)] and 'faces' [(number, LR crop)] of the restored faces in the same order, 'notes' (markdown),
    'download'."""
    model = custom if custom is not None else MODELS.gvtnet(preset, int(scale))
    scale = model.cfg.upscale
    img = open_upload(path, keep_alpha=True)
    notes = []
    if max(img.size) * scale > PHOTO_SIDE:
        img = img.copy()
        img.thumbnail((PHOTO_SIDE // scale, PHOTO_SIDE // scale), Image.BICUBIC)
        notes.append(f"The photo was reduced to {img.width}x{img.height}, so that its x{scale} restoration "
                     f"is at most {PHOTO_SIDE} px a side.")
    try:
        res = restore_photo(model, img, ensemble=ensemble or None, progress=progress)
    except ImageError as e:
        raise gr.Error(f"Cannot use this photo: {e}.") from e
    restored = [(i, f) for i, f in enumerate(res.faces, 1) if f.sr is not None]
    found = f"{len(res.faces)} face{'s' if len(res.faces) != 1 else ''} found, {len(restored)} restored."
    restored_png = png(res.photo, f"photo-x{scale}")
    return {
        "boxes": png(boxed(res), "faces-found"),
        "slider": (restored_png, png(res.bicubic, f"photo-bicubic-x{scale}")),
        "gallery": [(png(f.sr, f"face-{i}"), f"{i}: {f.lr.width} px -> {f.sr.width} px") for i, f in restored],
        "faces": [(i, f.lr) for i, f in restored],
        "notes": " ".join([found, *notes, *(n[0].upper() + n[1:] for n in res.notes)]),
        "download": restored_png,
    }


def boxed(res: PhotoResult) -> Image.Image:
    """The bicubic photo with each face's box drawn and numbered: RESTORED or LEFT to the background."""
    img = res.bicubic.convert("RGB")
    draw = ImageDraw.Draw(img)
    width = max(2, max(img.size) // 300)
    font = ImageFont.load_default(size=max(12, max(img.size) // 40))
    for i, f in enumerate(res.faces, 1):
        colour = RESTORED if f.sr is not None else LEFT
        left, top, right, bottom = (v * res.scale for v in f.box)
        draw.rectangle((left, top, right - 1, bottom - 1), outline=colour, width=width)
        draw.text((left + 2 * width, top + width), str(i), fill=colour, font=font, stroke_width=2,
                  stroke_fill=(0, 0, 0))
    return img


def chosen_face(faces: list[tuple[int, Image.Image]], index: int) -> tuple[str, int]:
    """(file of the LR crop, face number) of the restored face at `index` of the gallery, for the face
    input."""
    if not faces or not 0 <= int(index) < len(faces):
        raise gr.Error("Restore a photo first, then choose one of its faces.")
    number, lr = faces[int(index)]
    return png(lr, f"face-{number}"), number


# ----------------------------------------------------------------------------------------------------
# The API: stateless, with the shipped weights and a found face (else the centre square).


def default_preset() -> str:
    presets = MODELS.presets()
    if not presets:
        raise gr.Error("No shipped weights in assets/.")
    return "light" if "light" in presets else presets[0]


def api_upscale(path: str, scale: int, mode: str = SIMULATE, crop: str = FACE) -> str:
    """The face restored by GVTNet at x`scale`, as a PNG file."""
    s = restore(path, scale, mode, crop, False, default_preset(), None)
    return png(s.sr, f"gvtnet-x{s.scale}")


def api_graph(path: str, scale: int, threshold_t: float, p: str, rule: str, group: int, head: int,
              row: int | None = None, col: int | None = None, graph_off: bool = False, scope: str = "group") -> dict:
    """Statistics and the 0/1 adjacency (rows: query node, columns: key node) of one group and head. With
    an LR pixel (row, col): that pixel's window (its index, its tokens' LR pixels, its adjacency) and node;
    without: window 0's, which for 'group' scope is the graph every window shares."""
    s = restore(path, scale, SIMULATE, FACE, False, default_preset(), None)
    ins = inspect(s, threshold_t, p, rule, bool(graph_off), scope)
    group, head = _graph_group(ins, group), _clamp(head, ins.num_heads)
    settings = {k: str(v) if isinstance(v, float) and math.isinf(v) else v for k, v in s.graph_key}  # JSON has no inf
    out = {"group": group, "head": head, **settings, "window": 0}
    if (row is None) != (col is None):
        raise gr.Error("Give both row and col (an LR pixel), or neither.")
    if row is not None:
        h, w = ins.lr_size
        if not (0 <= int(row) < h and 0 <= int(col) < w):
            raise gr.Error(f"LR pixel ({int(row)}, {int(col)}) is outside the {w}x{h} input face.")
        sel = graphs.select(ins, group, head, (int(row), int(col)))
        out |= {"row": int(row), "col": int(col), "window": sel.window, "node": sel.node,
                "window_pixels": ins.window_pixels(group, sel.window).tolist()}
    return out | {"stats": graphs.graph_stats(graphs.digraph(ins, group, head, window=out["window"])),
                  "adjacency": ins.window_graph(group, out["window"])[head].astype(int).tolist()}


def api_lam(path: str, scale: int, row: int, col: int, window: int) -> dict:
    """Diffusion index of GVTNet (and the SwinIR baseline) for the window whose top-left SR pixel is
    (row, col)."""
    s = restore(path, scale, SIMULATE, FACE, False, default_preset(), None)
    s.lam_centre = (int(row) + int(window) // 2, int(col) + int(window) // 2)
    return {name: {k: v for k, v in r.items() if k in ("di", "row", "col", "window")}
            for name, r in run_lam(s, window).items()}
