"""The Model tab: an uploaded checkpoint loaded, the session's models described, the ablation table and
figure, and the model card."""
from __future__ import annotations

import io
import json
import re

import gradio as gr
from PIL import Image

from analysis.studies import ablation
from gvtnet import GVTNet, freeze
from gvtnet.sr_models import describe_model, load_sr_model
from gvtnet.weights import CheckpointError, describe

from ..context import PRIVATE, Context
from ..state import ABLATION_RESULTS, MODEL_CARD, MODELS
from .inputs import IMAGE, UserError, png
from .restore import NO_GRAPH

TITLE = "Model"


def load_checkpoint(path: str | None) -> tuple[GVTNet | None, object | None]:
    """(GVTNet, other) from an uploaded checkpoint (gvtnet.load_sr_model): a GVTNet (ours or the released
    code's) replaces the session's; any other SR architecture is compared beside it. None clears both."""
    if path is None:
        return None, None
    try:
        model = load_sr_model(path)
    except CheckpointError as e:
        raise UserError(f"Cannot use this checkpoint: {e}") from e
    return (freeze(model), None) if isinstance(model, GVTNet) else (None, model)


def model_summary(model: GVTNet, source: str, others: dict | None = None) -> str:
    cfg = model.cfg
    params = sum(p.numel() for p in model.parameters())
    text = (f"**{source}**: {describe(cfg)}, {params / 1e6:.2f} M parameters, x{cfg.upscale}; graph threshold "
            f"T = {cfg.threshold}, Minkowski p = {cfg.minkowski_p}, neighbour rule '{cfg.neighbour_rule}'.")
    for name, m in (others or {}).items():
        if name == NO_GRAPH:
            text += (f"\n\n**{name}**: the shipped GVTNet fine-tuned with its graph blocks run as Swin-type "
                     "blocks: no adjacency, and with it the 1/sqrt(d) q scale, no doubled self-loop and shift masks "
                     "(docs/ABLATION.md); Restore, Attention and LAM show it beside GVTNet.")
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
    """The decomposition as a picture (each step in PSNR-Y and in LAM's DI, per seed and seed-paired), for the Model tab."""
    if not ABLATION_RESULTS.is_file():
        return None
    buf = io.BytesIO()
    ablation.figure(json.loads(ABLATION_RESULTS.read_text())).savefig(buf, format="png", dpi=90)
    return png(Image.open(buf), "ablation")


def shipped_models() -> str:
    """The shipped weights in assets/, one line each: file, architecture, scale and parameters."""
    lines = []
    for name, model in MODELS.shipped().items():
        what = " (the shipped GVTNet fine-tuned with its graph blocks run as Swin-type blocks)" \
            if name.startswith("strided-") else ""
        params = sum(p.numel() for p in model.parameters()) / 1e6
        lines.append(f"- `{name}`: {describe(model.cfg)}{what}, {params:.2f} M parameters")
    presets = MODELS.presets()
    used = f"preset '{presets[0]}', the only one shipped" if len(presets) == 1 else "the preset chosen above"
    return f"**Shipped models** ({used}; GVTNet, its SwinIR baseline, and where shipped its graph-free fine-tune):\n\n" + \
        "\n".join(lines)


def model_card() -> str:
    if MODEL_CARD.is_file():
        return MODEL_CARD.read_text(encoding="utf-8")
    return "_No model card shipped (assets/MODEL_CARD.md is absent)._"


def build(ctx: Context) -> None:
    presets = MODELS.presets()
    # A choice only where there is one to make; the shipped models are listed either way
    ctx.preset = gr.Dropdown(presets, value=presets[0] if presets else None, visible=len(presets) > 1,
                             label="Shipped preset (GVTNet and its SwinIR baseline)")
    gr.Markdown(shipped_models(), elem_id="shipped-models")
    ctx.checkpoint = gr.File(label="Or upload a checkpoint: ours (.safetensors), the released GVTNet's (.pth), or "
                                   "another SR network to compare (SwinIR, HAT, ESRGAN, ...: anything spandrel "
                                   "detects)", file_types=[".safetensors", ".pth", ".pt"], type="filepath")
    summary = gr.Markdown()
    # number ranges joined by a non-breaking hyphen: the browser would break "25.144-25.164" at its hyphen
    gr.Markdown(re.sub(r"(?<=\d)-(?=\d)", "\u2011", ablation_summary()), elem_id="ablation-tables",
                elem_classes="unbroken-table")
    gr.Markdown("**Reach against quality, one point per trained network**")
    gr.Image(ablation_figure(), show_label=False, buttons=[], interactive=False, elem_id="ablation-figure",
             **IMAGE)
    gr.Markdown(ablation.FIGURE_CAPTION)
    with gr.Accordion("Model card", open=False):
        gr.Markdown(model_card())

    def on_model(s, custom, preset):
        if s is None:
            return gr.skip()
        return model_summary(s.model, "Uploaded checkpoint" if custom is not None else f"Shipped '{preset}' weights",
                             s.others)

    ctx.uploads.append(ctx.checkpoint.change(load_checkpoint, ctx.checkpoint, [ctx.custom, ctx.compare], **PRIVATE))
    ctx.on_new_face(on_model, [ctx.session, ctx.custom, ctx.preset], summary)
