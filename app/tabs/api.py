"""The API's endpoints (upscale, graph, lam): stateless, with the shipped weights and a found face (else
the centre square)."""
from __future__ import annotations

import math

import gradio as gr

from analysis import graphs

from ..state import MODELS
from .inputs import CENTRE, FACE, IMAGE, P_CHOICES, REAL, SIMULATE, PhotoInput, UserError, png
from .lam import run_lam
from .neighbour_graph import SCOPE_LABELS, graph_group_head, read_settings, session_inspection
from .restore import restore


def default_preset() -> str:
    presets = MODELS.presets()
    if not presets:
        raise UserError("No shipped weights in assets/.")
    return "light" if "light" in presets else presets[0]


def api_upscale(path: str, scale: int, mode: str = SIMULATE, crop: str = FACE) -> str:
    """The face restored by GVTNet at x`scale`, as a PNG file."""
    s = restore(path, scale, mode, crop, False, default_preset(), None)
    return png(s.sr, f"gvtnet-x{s.scale}")


def api_graph(path: str, scale: int, threshold: float, p: str, rule: str, group: int, head: int,
              row: int | None = None, col: int | None = None, graph_off: bool = False, scope: str = "group") -> dict:
    """Statistics and the 0/1 adjacency (rows: query node, columns: key node) of one group and head. With
    an LR pixel (row, col): that pixel's window (its index, its tokens' LR pixels, its adjacency) and node;
    without: window 0's, which for 'group' scope is the graph every window shares."""
    s = restore(path, scale, SIMULATE, FACE, False, default_preset(), None)
    settings = read_settings(threshold, p, rule, bool(graph_off), scope)
    ins = session_inspection(s, settings)
    group, head = graph_group_head(ins, group, head)
    settings = {k: str(v) if isinstance(v, float) and math.isinf(v) else v  # JSON has no inf
                for k, v in sorted(settings.changes().items())}
    out = {"group": group, "head": head, **settings, "window": 0}
    if (row is None) != (col is None):
        raise UserError("Give both row and col (an LR pixel), or neither.")
    if row is not None:
        h, w = ins.lr_size
        if not (0 <= int(row) < h and 0 <= int(col) < w):
            raise UserError(f"LR pixel ({int(row)}, {int(col)}) is outside the {w}x{h} input face.")
        sel = graphs.select(ins, group, head, (int(row), int(col)))
        out |= {"row": int(row), "col": int(col), "window": sel.window, "node": sel.node,
                "window_pixels": ins.window_pixels(group, sel.window).tolist()}
    return out | {"stats": graphs.graph_stats(graphs.digraph(ins, group, head, window=out["window"])),
                  "adjacency": ins.window_graph(group, out["window"])[head].astype(int).tolist()}


def api_lam(path: str, scale: int, row: int, col: int, window: int) -> dict:
    """Diffusion index of GVTNet (and the SwinIR baseline) for the window whose top-left SR pixel is
    (row, col), moved inside the restoration where it would overhang it (the answer's row and col are
    where it was placed)."""
    if row is None or col is None or window is None:
        raise UserError("Give row, col (the window's top-left SR pixel) and window (its side, SR px).")
    row, col, window = int(row), int(col), int(window)
    s = restore(path, scale, SIMULATE, FACE, False, default_preset(), None)
    h, w = s.sr.height, s.sr.width
    if not (0 <= row < h and 0 <= col < w):
        raise UserError(f"SR pixel ({row}, {col}) is outside the {w}x{h} restoration.")
    s.lam_centre = (row + window // 2, col + window // 2)  # run_lam refuses a window that does not fit
    return {name: {k: v for k, v in r.items() if k in ("di", "row", "col", "window")}
            for name, r in run_lam(s, window).items()}


def build() -> None:
    """Stateless endpoints on hidden components, for gradio_client: /upscale, /graph and /lam."""
    with gr.Column(visible=False):
        image = PhotoInput(label="image", **IMAGE)
        scale = gr.Number(4, precision=0, label="scale")
        mode = gr.Radio([SIMULATE, REAL], value=SIMULATE, label="mode")
        crop = gr.Radio([FACE, CENTRE], value=FACE, label="crop")
        threshold = gr.Number(0.85, label="threshold")
        p = gr.Dropdown(list(P_CHOICES), value="model's own", label="minkowski_p")
        rule = gr.Radio(["released", "paper"], value="released", label="neighbour_rule")
        group = gr.Number(0, precision=0, label="group")
        head = gr.Number(0, precision=0, label="head")
        row = gr.Number(56, precision=0, label="row")
        col = gr.Number(56, precision=0, label="col")
        window = gr.Number(16, precision=0, label="window")
        pixel_row = gr.Number(None, precision=0, label="row")  # optional: the window of this LR pixel
        pixel_col = gr.Number(None, precision=0, label="col")
        graph_off = gr.Checkbox(False, label="graph_off")
        scope = gr.Radio(list(SCOPE_LABELS.values()), value="group", label="graph_scope")
        sr = gr.Image(label="sr", **IMAGE)
        result = gr.JSON(label="result")
        buttons = [gr.Button() for _ in range(3)]
    buttons[0].click(api_upscale, [image, scale, mode, crop], sr, api_name="upscale")
    buttons[1].click(api_graph, [image, scale, threshold, p, rule, group, head, pixel_row, pixel_col, graph_off,
                                 scope], result, api_name="graph")
    buttons[2].click(api_lam, [image, scale, row, col, window], result, api_name="lam", concurrency_id="lam",
                     concurrency_limit=1)
