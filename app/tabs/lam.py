"""The LAM tab: which input pixels a window of the restoration depends on, for every model compared, and a
small study of it across faces."""
from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from PIL import Image, ImageDraw

from analysis import graphs
from analysis import lam as lam_analysis
from analysis.studies import lam_study
from gvtnet.images import degrade
from gvtnet.inference import to_tensor

from ..context import PRIVATE, Context
from ..examples import example_files
from ..state import VISITORS, Session
from .inputs import FACE, IMAGE, SIMULATE, UserError, no_face, png, prepare

TITLE = "LAM"


def lam_window(s: Session, window: int) -> tuple[int, int]:
    """Top-left SR pixel of the window centred on the session's LAM point, kept inside the image; gr.Error
    for a window that is not 1 px to the restoration's side."""
    window = int(window)
    h, w = s.sr.height, s.sr.width
    if not 1 <= window <= min(h, w):
        raise UserError(f"A {window} px window does not fit the {w}x{h} restoration: give 1 to {min(h, w)} px.")
    r, c = s.lam_centre
    return min(max(r - window // 2, 0), h - window), min(max(c - window // 2, 0), w - window)


def lam_cell(s: Session) -> int:
    """Screen pixels per SR pixel of the LAM picker: the restoration drawn at least as large as the graph
    tab's face (graphs.cell_size), so that a window can be placed precisely."""
    return graphs.cell_size((s.sr.height, s.sr.width))


def lam_picker(s: Session, window: int) -> str:
    """The restoration, nearest-upscaled by `lam_cell`, with the LAM window drawn on it, to click on."""
    k = lam_cell(s)
    img = graphs.face_canvas(s.sr, (s.sr.height, s.sr.width), k)
    r, c = lam_window(s, window)
    ImageDraw.Draw(img).rectangle((c * k, r * k, (c + int(window)) * k - 1, (r + int(window)) * k - 1),
                                  outline=(255, 0, 0), width=3)
    return png(img, "window")


def place_lam(s: Session, xy) -> Session:
    """Centre the LAM window on the SR pixel under a click at xy = (x, y) on `lam_picker`'s image."""
    if xy and xy[0] is not None and xy[1] is not None:
        k = lam_cell(s)
        s.lam_centre = (min(max(int(xy[1]) // k, 0), s.sr.height - 1), min(max(int(xy[0]) // k, 0), s.sr.width - 1))
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


@dataclass(frozen=True)
class LamView:
    """models: {name: {'di', 'row', 'col', 'window', 'precision', 'overlay', 'kde'}} (JSON-ready; overlay and
    kde are files); spread: the spread figure's file, or None; precision: what LAM ran in."""

    models: dict
    spread: str | None
    precision: str


def lam_view(s: Session, window: int, progress=None, spread: bool = True) -> LamView:
    """LAM of the window for every model of `lam_models`, side by side on one shared path; progress(done,
    total) counts the path points of all."""
    row, col = lam_window(s, window)
    results = lam_analysis.attribution_maps(lam_models(s), to_tensor(s.lr), row, col, window=int(window),
                                            batch_size=LAM_BATCH, precision=LAM_PRECISION, progress=progress)
    models = {name: {"di": round(res.di, 3), "row": row, "col": col, "window": int(window), "precision": res.precision,
                     "overlay": png(lam_analysis.lam_overlay(res), f"lam-{_slug(name)}"),
                     "kde": png(lam_analysis.lam_kde(res), f"lam-kde-{_slug(name)}")} for name, res in results.items()}
    spread_png = None
    if spread:
        fig = lam_analysis.spread_figure(results)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        spread_png = png(Image.open(buf), "lam-spread")
    return LamView(models, spread_png, next(iter(results.values())).precision)


def run_lam(s: Session, window: int, progress=None) -> dict:
    """{name: {'di', 'row', 'col', 'window', 'precision', 'overlay', 'kde'}} of lam_view, without the figure."""
    return lam_view(s, window, progress, spread=False).models


def lam_study_view(s: Session, window: int, progress=None) -> tuple[str, str]:
    """A small analysis.studies.lam_study: LAM of every model at the named face windows (eyes, nose, mouth) of
    the example faces and the session's own. Returns (Markdown table, figure file); progress(done, total)
    counts face-windows."""
    lam_window(s, window)  # refuses a window that does not fit the restoration
    width, height = s.sr.size

    def example(path: str):
        # The study's windows are one set of SR pixels for every face, so each example is simulated at the
        # session's size (a real low-resolution face is seldom the examples' 128 px over the scale).
        hr = prepare(path, s.scale, SIMULATE, FACE)[0].resize((width, height), Image.BICUBIC)
        return to_tensor(degrade(hr, s.scale))

    faces = {Path(f).stem: example(f) for f in example_files()[:STUDY_FACES - 1]}
    faces["your face"] = to_tensor(s.lr)
    result = lam_study.study(lam_models(s), faces, lam_study.face_windows(height, width, int(window)),
                             precision=LAM_PRECISION, resamples=2000, progress=progress)
    fig = lam_study.figure(result)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return lam_study.markdown(result) + "\n" + lam_study.FIGURE_CAPTION, png(Image.open(buf), "lam-study")


def build(ctx: Context) -> None:
    with gr.Row():
        picker = gr.Image(label="Click the restoration to place the window", interactive=False, height=440,
                          scale=1, min_width=420, elem_id="lam-picker", **IMAGE)
        with gr.Column(scale=1):
            window = gr.Radio([8, 16, 32], value=16, label="Window (SR px)")
            run = gr.Button("Run LAM", variant="primary")
            di = gr.Markdown(elem_id="lam-di")
    gallery = gr.Gallery(label="Attribution (overlay, KDE)", columns=4, height=260, format="png")
    gr.Markdown(lam_analysis.SPREAD_CAPTION)
    # Figures carry their own titles: no label badge or buttons drawn over them (they hid the left title)
    gr.Markdown("**Spread of the attribution** (log scale, 50/90/99% contours)")
    spread = gr.Image(show_label=False, interactive=False, buttons=[], elem_id="lam-spread", **IMAGE)
    record = gr.JSON(visible=False)
    with gr.Accordion("Across faces: a small study", open=False):
        gr.Markdown(f"LAM of every model at the eyes, nose and mouth of {STUDY_FACES} faces (the examples and "
                    "yours), with the window size above: mean DI per model and the paired differences. "
                    "`python -m analysis.studies.lam_study` runs it on many faces.")
        study = gr.Button("Run the small study")
        study_table = gr.Markdown(elem_id="lam-study")
        study_plot = gr.Image(show_label=False, interactive=False, buttons=[], elem_id="lam-study-plot", **IMAGE)
    ctx.results(picker, gallery, di, record, spread, study_table, study_plot)

    def on_picker(s, window_):
        return None if s is None else lam_picker(s, window_)

    def on_place(s, evt: gr.SelectData):
        if s is None:
            no_face()
        return place_lam(s, evt.index)

    def on_run(s, window_, request: gr.Request, progress=gr.Progress()):
        if s is None:
            no_face()

        def step(done, total):  # a visitor who closed the tab stops the job here, freeing its worker
            VISITORS.check(request.session_hash, "LAM", done, total)
            progress((done, total), desc="LAM path steps")

        v = lam_view(s, window_, step)
        items = [(r[k], f"{name} {k}") for name, r in v.models.items() for k in ("overlay", "kde")]
        text = " · ".join(f"**{name}**: DI = {r['di']:.2f}" for name, r in v.models.items())
        return (items, f"Diffusion index (higher: the window draws on more of the face): {text} "
                       f"(computed in {v.precision})", v.models, v.spread)

    def on_study(s, window_, request: gr.Request, progress=gr.Progress()):
        if s is None:
            no_face()

        def step(done, total):
            VISITORS.check(request.session_hash, "LAM study", done, total)
            progress((done, total), desc="face-windows")

        return lam_study_view(s, window_, step)

    picker.select(on_place, ctx.session, ctx.session, **PRIVATE) \
        .success(on_picker, [ctx.session, window], picker, **PRIVATE)
    window.change(on_picker, [ctx.session, window], picker, **PRIVATE)
    run.click(on_run, [ctx.session, window], [gallery, di, record, spread], concurrency_id="lam", **PRIVATE)
    study.click(on_study, [ctx.session, window], [study_table, study_plot], concurrency_id="lam", **PRIVATE)
    ctx.on_new_face(on_picker, [ctx.session, window], picker)
