"""The app's computations as plain functions: file paths, numbers and PIL images in; Sessions, image
files, figures and dicts out. ui.py only wires them to components, and the tests call them directly.

Errors a visitor can cause raise gr.Error with the real reason (Gradio would otherwise show a generic
"error"); notices that do not stop the work go through gr.Info / gr.Warning.
"""
from __future__ import annotations

import math
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image, ImageDraw

import analysis
from analysis import graphs, lam, threshold
from gvtnet import GVTNet
from gvtnet.faces import find_face
from gvtnet.images import HR_SIZE, ImageError, bicubic_upscale, center_square, degrade, open_image
from gvtnet.inference import super_resolve, to_image, to_tensor
from gvtnet.metrics import psnr, ssim
from gvtnet.weights import CheckpointError, describe, load_model

from .state import MODEL_CARD, MODELS, Session

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


def prepare(path: str | None, scale: int, mode: str, crop: str) -> tuple[Image.Image | None, Image.Image, list[str]]:
    """(hr, lr, notices) from an uploaded file. simulate: hr is the 128x128 face and lr its bicubic
    downscale; real: hr is None and lr the square face as uploaded (reduced only above SR_MAX / scale)."""
    if path is None:
        raise gr.Error("Upload a photo, take one with the webcam, or pick an example.")
    try:
        img = open_image(path)
    except ImageError as e:
        raise gr.Error(f"Cannot use this image: {e}.") from e
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


def restore(path, scale, mode, crop, ensemble, preset, custom: GVTNet | None) -> Session:
    """A new session for the uploaded face: restored by the session's GVTNet (an uploaded checkpoint, else
    the shipped preset), by bicubic, and by the shipped SwinIR baseline where there is one."""
    model = custom if custom is not None else MODELS.gvtnet(preset, int(scale))
    scale = model.cfg.upscale
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
    )


def metrics(s: Session) -> list[list]:
    """[method, PSNR (dB), SSIM] rows against the original (on luma, as the literature reports them);
    empty for a real low-resolution input, which has no original."""
    if s.hr is None:
        return []
    hr = np.asarray(s.hr)
    rows = [("bicubic", s.bicubic), ("GVTNet", s.sr)] + ([("SwinIR", s.baseline)] if s.baseline else [])
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
        "download": sr,
    }


# ----------------------------------------------------------------------------------------------------
# 2. Neighbour graph and 3. attention


def graph_settings(threshold_t: float, p: str, rule: str) -> dict:
    """Graph settings for `GVTNet.variant`: the model's own p where asked."""
    changes = {"threshold": float(threshold_t), "neighbour_rule": rule}
    if P_CHOICES.get(p) is not None:
        changes["minkowski_p"] = P_CHOICES[p]
    return changes


def inspect(s: Session, threshold_t: float, p: str, rule: str):
    """The GVTNet's graphs and attention on the session's face under these settings, cached on the session.
    Always on a variant: capturing records into the modules it runs, so it must never run on the model
    that every visitor shares."""
    changes = graph_settings(threshold_t, p, rule)
    key = tuple(sorted(changes.items()))
    if s.inspection is None or s.graph_key != key:
        s.inspection = analysis.inspect(s.model.variant(**changes), to_tensor(s.lr))
        s.graph_key = key
    if not s.inspection.groups:
        raise gr.Error(f"This model ({describe(s.model.cfg)}) has no graph layers to show.")
    return s.inspection


def graph_view(s: Session, group: int, head: int, threshold_t: float, p: str, rule: str):
    """(graph over the face, adjacency heatmap, statistics) of one group and head."""
    ins = inspect(s, threshold_t, p, rule)
    group, head = _clamp(group, len(ins.groups)), _clamp(head, ins.num_heads)
    stats = graphs.graph_stats(graphs.digraph(ins, group, head))
    return graph_plot(s, group, head, threshold_t, p, rule), graphs.adjacency_heatmap(ins, group, head), stats


def graph_plot(s: Session, group: int, head: int, threshold_t: float, p: str, rule: str):
    """The graph over the face alone, with the selected node's neighbours (all a click changes)."""
    ins = inspect(s, threshold_t, p, rule)
    return graphs.graph_figure(ins, s.face, _clamp(group, len(ins.groups)), _clamp(head, ins.num_heads), s.node)


def lr_pixel(s: Session, xy) -> tuple[int, int] | None:
    """The LR pixel (row, col) under a click at xy = (x, y) on an SR-sized image; None for no position
    (Gradio sends None when the click did not land on the image)."""
    if not xy or xy[0] is None or xy[1] is None:
        return None
    row = min(max(int(xy[1]) // s.scale, 0), s.lr.height - 1)
    col = min(max(int(xy[0]) // s.scale, 0), s.lr.width - 1)
    return row, col


def select_node(s: Session, xy, group: int, threshold_t: float, p: str, rule: str) -> Session:
    """Select the patch node under a click on the face (see `lr_pixel`); a click off the image keeps the
    current selection."""
    pixel = lr_pixel(s, xy)
    if pixel is not None:
        ins = inspect(s, threshold_t, p, rule)
        s.node = int(ins.groups[_clamp(group, len(ins.groups))].node_map[pixel])
    return s


def select_query(s: Session, xy) -> Session:
    pixel = lr_pixel(s, xy)
    if pixel is not None:
        s.query = pixel
    return s


def attention_view(s: Session, group: int, block: int, head: int, threshold_t: float, p: str, rule: str):
    """Attention of the query pixel in one block and head (before and after the graph for graph blocks)."""
    ins = inspect(s, threshold_t, p, rule)
    group = _clamp(group, len(s.model.layers))
    block = _clamp(block, len(ins.blocks_of(group)))
    return analysis.attention.attention_figure(ins, s.face, group, block, _clamp(head, ins.num_heads), s.query)


def face_picker(s: Session, mark: tuple[int, int] | None = None) -> str:
    """The face at the SR size as a file to click on, with the LR pixel `mark` outlined."""
    img = s.face.convert("RGB").resize(s.sr.size, Image.BICUBIC)
    if mark is not None:
        r, c, k = mark[0] * s.scale, mark[1] * s.scale, s.scale
        ImageDraw.Draw(img).rectangle((c - 1, r - 1, c + k, r + k), outline=(0, 255, 102), width=2)
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


def run_lam(s: Session, window: int, progress=None) -> dict:
    """LAM of the window for the GVTNet and, where shipped, the SwinIR baseline. progress(done, total)
    follows both runs. Returns {name: {'di', 'row', 'col', 'window', 'overlay', 'kde'}} with the two
    renderings as files."""
    row, col = lam_window(s, window)
    models = {"GVTNet": s.model} | ({"SwinIR": s.baseline_model} if s.baseline_model is not None else {})
    lr = to_tensor(s.lr)
    out = {}
    for i, (name, model) in enumerate(models.items()):
        def step(done, total, i=i):
            if progress is not None:
                progress(i * total + done, len(models) * total)
        res = lam.local_attribution_map(model, lr, row, col, window=int(window), progress=step)
        out[name] = {"di": round(res.di, 3), "row": row, "col": col, "window": int(window),
                     "overlay": png(lam.lam_overlay(res), f"lam-{name.lower()}"),
                     "kde": png(lam.lam_kde(res), f"lam-kde-{name.lower()}")}
    return out


# ----------------------------------------------------------------------------------------------------
# 6. Model


def load_checkpoint(path: str | None) -> GVTNet | None:
    """An uploaded checkpoint (ours or the released code's); None clears it."""
    if path is None:
        return None
    try:
        return load_model(path)
    except CheckpointError as e:
        raise gr.Error(f"Cannot use this checkpoint: {e}") from e


def model_summary(model: GVTNet, source: str) -> str:
    cfg = model.cfg
    params = sum(p.numel() for p in model.parameters())
    return (f"**{source}**: {describe(cfg)}, {params / 1e6:.2f} M parameters, x{cfg.upscale}; graph threshold "
            f"T = {cfg.threshold}, Minkowski p = {cfg.minkowski_p}, neighbour rule '{cfg.neighbour_rule}'.")


def model_card() -> str:
    if MODEL_CARD.is_file():
        return MODEL_CARD.read_text(encoding="utf-8")
    return "_No model card shipped (assets/MODEL_CARD.md is absent)._"


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


def api_graph(path: str, scale: int, threshold_t: float, p: str, rule: str, group: int, head: int) -> dict:
    """Statistics and the 0/1 adjacency (rows: query node, columns: key node) of one group and head."""
    s = restore(path, scale, SIMULATE, FACE, False, default_preset(), None)
    ins = inspect(s, threshold_t, p, rule)
    group, head = _clamp(group, len(ins.groups)), _clamp(head, ins.num_heads)
    settings = {k: str(v) if isinstance(v, float) and math.isinf(v) else v for k, v in s.graph_key}  # JSON has no inf
    return {"group": group, "head": head, **settings,
            "stats": graphs.graph_stats(graphs.digraph(ins, group, head)),
            "adjacency": ins.groups[group].adjacency[head].astype(int).tolist()}


def api_lam(path: str, scale: int, row: int, col: int, window: int) -> dict:
    """Diffusion index of GVTNet (and the SwinIR baseline) for the window whose top-left SR pixel is
    (row, col)."""
    s = restore(path, scale, SIMULATE, FACE, False, default_preset(), None)
    s.lam_centre = (int(row) + int(window) // 2, int(col) + int(window) // 2)
    return {name: {k: v for k, v in r.items() if k in ("di", "row", "col", "window")}
            for name, r in run_lam(s, window).items()}
