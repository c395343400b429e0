"""The Restore tab: the uploaded face restored by GVTNet, bicubic, the SwinIR baseline and any other model
compared, with PSNR and SSIM against the original."""
from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from gvtnet import GVTNet
from gvtnet.evaluate import face_metrics
from gvtnet.images import bicubic_upscale
from gvtnet.sr_models import describe_model, model_name, scale_of

from ..context import PRIVATE, Context
from ..state import MODELS, Session
from .inputs import IMAGE, UserError, log, png, prepare, sr_image

TITLE = "Restore"

NO_GRAPH = "GVTNet, no graph (retrained)"
NO_ORIGINAL = ("A real low-resolution input has no original to compare against, so the 'original' slider and the "
               "PSNR/SSIM table are hidden; choose Simulate to see them.")

# Every restore is counted and logged as one line ("restore N: ..."): the server log says how many times
# each action restored the face (tests/test_browser_flow.py reads it).
_restores = itertools.count(1)
_restores_lock = threading.Lock()


def restore(path, scale, mode, crop, ensemble, preset, custom: GVTNet | None, compare=None) -> Session:
    """A new session for the uploaded face: restored by the session's GVTNet (an uploaded checkpoint, else
    the shipped preset), by bicubic, by the shipped SwinIR baseline where there is one, and by `compare`
    (an uploaded model of another architecture, see load_checkpoint), whose scale then sets the session's."""
    if compare is not None and custom is None:
        scale = scale_of(compare)
    try:
        model = custom if custom is not None else MODELS.gvtnet(preset, int(scale))
    except FileNotFoundError as e:
        raise UserError(f"Nothing to compare the uploaded model with: {e}.") from e
    scale = model.cfg.upscale
    notices = []
    # the shipped GVTNet retrained without its graph, beside the shipped GVTNet it was fine-tuned from
    no_graph = MODELS.no_graph(preset, scale) if custom is None else None
    others = {NO_GRAPH: no_graph} if no_graph is not None else {}
    if compare is not None:
        if scale_of(compare) == scale:
            others[f"{model_name(compare)} (uploaded)"] = compare
        else:
            notices.append(f"The uploaded {describe_model(compare)} is not x{scale}, so it is not compared.")
    hr, lr, found = prepare(path, scale, mode, crop)
    notices += found
    with _restores_lock:
        n = next(_restores)
    log.info("restore %d: %s, x%d, %s, %dx%d input", n, Path(path).name, scale, mode, lr.width, lr.height)
    baseline_model = MODELS.baseline(preset, scale)
    h, w = lr.height * scale, lr.width * scale
    return Session(
        hr=hr, lr=lr, scale=scale, model=model, baseline_model=baseline_model,
        sr=sr_image(model, lr, ensemble), bicubic=bicubic_upscale(lr, scale),
        baseline=sr_image(baseline_model, lr, ensemble) if baseline_model is not None else None,
        query=(lr.height // 2, lr.width // 2), lam_centre=(h // 2, w // 2), notices=notices,
        others=others, others_sr={name: sr_image(m, lr, ensemble) for name, m in others.items()},
    )


# Decimals of the metrics table's columns: one rounding per column, every row written out to it (0.8550,
# not 0.855 beside 0.8539).
PSNR_DIGITS, SSIM_DIGITS = 2, 4


def _rgb(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"))[None]


def metrics(s: Session) -> list[list]:
    """[method, PSNR (dB), SSIM] rows against the original, as text with PSNR_DIGITS and SSIM_DIGITS
    decimals; empty for a real low-resolution input, which has no original. Both on the Y channel of the
    RGB images (gvtnet.evaluate.face_metrics, as the model card, the paper and the Threshold tab report
    them), a grey face included."""
    if s.hr is None:
        return []
    rows = [("bicubic", s.bicubic), ("GVTNet", s.sr)] + ([("SwinIR", s.baseline)] if s.baseline else []) + \
        list(s.others_sr.items())
    out = []
    for name, img in rows:
        _, _, psnr_y, ssim_y = face_metrics(_rgb(img), _rgb(s.hr))[0]
        out.append([name, f"{psnr_y:.{PSNR_DIGITS}f}", f"{ssim_y:.{SSIM_DIGITS}f}"])
    return out


@dataclass(frozen=True)
class RestoreView:
    """Files and values the Restore tab shows (image files are PNG paths)."""

    vs_bicubic: tuple[str, str]
    vs_original: tuple[str, str] | None
    metrics: list[list]
    lr: str
    gvtnet: str
    baseline: str | None
    others: list[tuple[str, str]]  # (file, model name)


def restore_view(s: Session) -> RestoreView:
    sr = png(s.sr, f"gvtnet-x{s.scale}")
    return RestoreView(
        vs_bicubic=(sr, png(s.bicubic, f"bicubic-x{s.scale}")),
        vs_original=(sr, png(s.hr, "original")) if s.hr is not None else None,
        metrics=metrics(s),
        lr=png(s.lr.resize(s.sr.size, Image.NEAREST), "input"),
        gvtnet=sr,
        baseline=png(s.baseline, f"swinir-x{s.scale}") if s.baseline is not None else None,
        others=[(png(img, f"other-x{s.scale}"), name) for name, img in s.others_sr.items()],
    )


def status_line(s: Session) -> str:
    """The Restore tab's one line about the current face: what was done to it, and why a view is hidden."""
    done = (f"The {s.lr.width}x{s.lr.height} input restored at x{s.scale} to {s.sr.width}x{s.sr.height}"
            + (" as it is." if s.hr is None else f", from the {s.hr.width} px original downscaled."))
    return " ".join([done, *s.notices, *([NO_ORIGINAL] if s.hr is None else [])])


def build(ctx: Context) -> None:
    status = gr.Markdown(elem_id="restore-status")
    with gr.Row():
        vs_bicubic = gr.ImageSlider(label="GVTNet | bicubic", max_height=360, **IMAGE)
        vs_original = gr.ImageSlider(label="GVTNet | original", max_height=360, **IMAGE)
    table = gr.Dataframe(headers=["method", "PSNR (dB, Y)", "SSIM (Y)"], interactive=False,
                         label="Against the original")
    with gr.Row():
        lr = gr.Image(label="Input (nearest upscale)", height=260, **IMAGE)
        sr = gr.Image(label="GVTNet", elem_id="sr", height=260, **IMAGE)
        baseline = gr.Image(label="SwinIR baseline", height=260, **IMAGE)
    # Each image at its own size (object_fit none: never magnified nor cropped), its model named under it;
    # hidden while there is nothing to compare (x4 ships no other model)
    others = gr.Gallery(label="Other models compared (GVTNet retrained without its graph; an upload from the "
                              "Model tab)", columns=4, height=240, object_fit="none", allow_preview=False,
                        format="png", visible=False, elem_id="others")
    download = gr.DownloadButton("Download the restoration (PNG)")
    outputs = [ctx.session, status, vs_bicubic, vs_original, table, lr, sr, baseline, others, download]
    ctx.results(*outputs[2:])
    ctx.results(status, pending="*Restoring...*")

    def on_restore(path, scale, mode, crop, ensemble, preset, custom, compare):
        if path is None:  # the photo was cleared
            return [None, ""] + [None] * (len(outputs) - 2)
        s = restore(path, scale, mode, crop, ensemble, preset, custom, compare)
        v = restore_view(s)
        real = s.hr is None  # nothing to compare against: hidden, and the status line says why
        return [s, status_line(s), v.vs_bicubic, gr.update(value=v.vs_original, visible=not real),
                gr.update(value=v.metrics, visible=not real), v.lr, v.gvtnet, v.baseline,
                gr.update(value=v.others, visible=bool(v.others)), v.gvtnet]

    def wire():  # the Model tab's preset and uploads exist once every tab is built
        inputs = [ctx.photo, ctx.scale, ctx.mode, ctx.crop, ctx.ensemble, ctx.preset, ctx.custom, ctx.compare]
        # A visitor's own change of an input restores once (.input: not when the app sets an input, as an
        # example or the Photo tab's choice does with several at once; those restore once, after the last)
        triggers = [c.input for c in (ctx.photo, ctx.scale, ctx.mode, ctx.crop, ctx.ensemble, ctx.preset)]
        starts = [ctx.restart(triggers)] + [ctx.restart(e) for e in ctx.loads + ctx.uploads]
        for start in starts:
            ctx.follow(start.success(on_restore, inputs, outputs, trigger_mode="always_last", **PRIVATE))

    ctx.after_build(wire)
