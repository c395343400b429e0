"""Every analysis figure for one face, as PNG files and one self-contained HTML page (plotly inlined).

    python -m analysis.studies.report FACE --weights assets/gvtnet-light-x4.safetensors --out DIR \
        [--baseline assets/swinir-light-x4.safetensors] [--scale N]

FACE is any image: its centre square, resized to 128 x 128, is the HR face; the LR face is its bicubic
downscale by the model's scale (or --scale). With --baseline (any SR model `gvtnet.load_sr_model` reads:
ours, SwinIR, HAT, RRDB, ...) the paper's Fig. 4 is drawn: LAM and DI of GVTNet against the baseline on the
same face and window, and the spread view (log scale, 50/90/99% contours) of both side by side.
"""
from __future__ import annotations

import argparse
import base64
import html
import io
import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image
from tqdm import tqdm

from gvtnet.compat import keep_freed_memory
from gvtnet.images import bicubic_upscale, center_square, degrade, open_image
from gvtnet.inference import to_image, to_tensor
from gvtnet.metrics import psnr
from gvtnet.sr_models import has_graph, load_sr_model, model_name, scale_of
from gvtnet.weights import describe, load_model

from .. import attention, graphs, lam, threshold
from ..inspection import inspect


class Page:
    """Collects PNGs (written to the output folder and embedded) and plotly figures into one HTML page."""

    def __init__(self, out: Path, title: str):
        self.out, self.title, self.parts, self.plotly_inlined = out, title, [], False

    def heading(self, text: str):
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def text(self, text: str):
        self.parts.append(f"<p>{html.escape(text)}</p>")

    def image(self, name: str, img: Image.Image | Figure, caption: str = ""):
        buf = io.BytesIO()
        if isinstance(img, Figure):
            img.savefig(buf, format="png", dpi=110)
        else:
            img.save(buf, format="png")
        (self.out / f"{name}.png").write_bytes(buf.getvalue())
        data = base64.b64encode(buf.getvalue()).decode()
        self.parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{name}">'
                          f"<figcaption>{html.escape(caption or name)}</figcaption></figure>")

    def plotly(self, fig):
        self.parts.append(fig.to_html(full_html=False, include_plotlyjs=not self.plotly_inlined))
        self.plotly_inlined = True

    def write(self) -> Path:
        path = self.out / "report.html"
        path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                        "<style>body{font-family:sans-serif;max-width:1200px;margin:auto}figure{display:inline-block;"
                        "margin:6px}img{max-width:100%}</style></head><body>"
                        f"<h1>{html.escape(self.title)}</h1>{''.join(self.parts)}</body></html>")
        return path


def strip(images: list[tuple[str, Image.Image]]) -> Figure:
    """Images side by side with titles."""
    fig = Figure(figsize=(2.6 * len(images), 2.9), layout="constrained")
    for ax, (title, img) in zip(fig.subplots(1, len(images), squeeze=False)[0], images):
        ax.imshow(img)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    return fig


def run_lam(models: dict, lr, row, col, args) -> dict[str, lam.LAMResult]:
    """LAM of every model on one shared path, one after the other (each on all threads), with a progress bar."""
    with tqdm(total=args.fold * len(models), desc="LAM", leave=False) as bar:
        return lam.attribution_maps(models, lr, row, col, window=args.window, fold=args.fold,
                                    batch_size=args.batch_size, precision=args.precision, parallel=False,
                                    progress=lambda done, _: bar.update(done - bar.n))


def graph_section(page: Page, ins, hr: Image.Image, query: tuple[int, int]) -> dict:
    page.heading("Neighbour graphs (head 0; the node at the face centre selected)")
    stats = {}
    for g in tqdm(sorted({g for g, _ in ins.graphs}), desc="graphs", leave=False):
        sel = graphs.select(ins, g, 0, query)
        stats[g] = graphs.group_stats(ins, g, sel.window)
        page.image(f"graph_group{g}", graphs.graph_image(ins, hr, g, 0, query, sel.edges),
                   f"group {g}, head 0: darkened, the patches the ringed node may not attend to; lines, the "
                   f"edges {'kept' if sel.edges == 'kept' else 'the threshold cut'}; yellow, the pixels of its window")
        page.image(f"adjacency_group{g}", graphs.adjacency_png(ins, g, sel.window))
        page.plotly(graphs.graph_figure(ins, hr, g, 0, selected=sel.node, window=sel.window))
    page.plotly(graphs.overview_figure(ins, pixel=query))  # each group marks its own window and node
    return stats


def attention_section(page: Page, ins, hr: Image.Image, query: tuple[int, int]):
    page.heading(f"Attention of the LR pixel {query} (head 0)")
    for blk in tqdm(ins.blocks, desc="attention", leave=False):
        page.image(f"attention_group{blk.group}_block{blk.block}",
                   attention.attention_png(ins, hr, blk.group, blk.block, 0, query))
    page.plotly(attention.attention_figure(ins, hr, 0, ins.blocks_of(0)[-1].block, 0, query))


def threshold_section(page: Page, model, lr, hr: Image.Image, thresholds: list[float]) -> dict:
    page.heading("Threshold sweep")
    sw = threshold.sweep(model, lr, thresholds, hr=hr)
    page.image("threshold_sweep", threshold.sweep_png(sw))
    thumbs = threshold.thumbnails(sw, [min(thresholds), sw.own, max(thresholds)])
    page.image("threshold_thumbnails", strip([(f"T = {t:.2f}", img) for t, img in thumbs]))
    page.plotly(threshold.sweep_figure(sw))
    return {"thresholds": sw.thresholds.tolist(), "density": sw.density.tolist(), "mad": sw.mad.tolist(),
            "psnr_hr": sw.psnr_hr.tolist()}


def lam_section(page: Page, model, lr, args) -> dict:
    s, (h, w) = model.cfg.upscale, lr.shape[-2:]
    row = args.row if args.row is not None else (s * h - args.window) // 2
    col = args.col if args.col is not None else (s * w - args.window) // 2
    page.heading(f"LAM of the {args.window} x {args.window} SR window at ({row}, {col})")
    models = {"GVTNet" if has_graph(model) else "model": model}
    if args.baseline:
        base = load_sr_model(args.baseline)
        if scale_of(base) != s:
            raise SystemExit(f"the baseline is x{scale_of(base)}, the model x{s}")
        name = model_name(base)
        models["baseline" if name in models else name] = base
    results = run_lam(models, lr, row, col, args)
    page.text("DI: " + ", ".join(f"{name} {r.di:.2f}" for name, r in results.items()) +
              " (diffusion index: larger means the window draws on a wider region of the input).")
    page.image("lam_fig4" if args.baseline else "lam", lam.lam_figure(results),
               "LAM comparison (the paper's Fig. 4)" if args.baseline else "LAM")
    page.image("lam_spread", lam.spread_figure(results), lam.SPREAD_CAPTION)
    return {name: {"di": r.di, "row": row, "col": col, "window": args.window, "precision": r.precision,
                   "mass_areas": dict(zip(map(str, lam.MASS_FRACTIONS), lam.mass_levels(r.map)[1].tolist()))}
            for name, r in results.items()}


def report(args) -> Path:
    """Write the figures, summary.json and report.html into args.out; returns the page's path."""
    args.out.mkdir(parents=True, exist_ok=True)
    model = load_model(args.weights)
    s = model.cfg.upscale
    face = center_square(open_image(args.face).convert("RGB"))
    lr_img = degrade(face, args.scale or s)
    lr = to_tensor(lr_img)
    # with a --scale other than the model's, compare against the face at the SR size
    hr = face if lr_img.width * s == face.width else face.resize((lr_img.width * s, lr_img.height * s), Image.BICUBIC)
    ins = inspect(model, lr)
    sr = to_image(ins.sr.clamp(0, 1))
    summary = {"model": describe(model.cfg), "psnr_sr": psnr(np.asarray(sr), np.asarray(hr)),
               "psnr_bicubic": psnr(np.asarray(bicubic_upscale(lr_img, s)), np.asarray(hr))}

    page = Page(args.out, f"GVTNet analysis: {args.face.name}, {summary['model']}")
    page.heading("Face")
    page.text(f"PSNR (Y) of the SR output {summary['psnr_sr']:.2f} dB, bicubic {summary['psnr_bicubic']:.2f} dB.")
    page.image("faces", strip([("LR", lr_img.resize(hr.size, Image.NEAREST)), ("bicubic", bicubic_upscale(lr_img, s)),
                               ("SR", sr), ("HR", hr)]))
    query = (ins.lr_size[0] // 2, ins.lr_size[1] // 2)  # the face centre, in LR pixels
    if ins.graphs:
        summary["graphs"] = graph_section(page, ins, hr, query)
    attention_section(page, ins, hr, query)
    if ins.graphs:
        summary["sweep"] = threshold_section(page, model, lr, hr, args.thresholds)
    summary["lam"] = lam_section(page, model, lr, args)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
    return page.write()


def main(argv=None):
    p = argparse.ArgumentParser(description="Write the GVTNet analysis figures for one face.")
    p.add_argument("face", type=Path)
    p.add_argument("--weights", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--baseline", type=Path, help="weights of a baseline (e.g. SwinIR) for the LAM comparison")
    p.add_argument("--scale", type=int, help="degradation factor (default: the model's scale)")
    p.add_argument("--window", type=int, default=16, help="LAM window side, SR pixels")
    p.add_argument("--row", type=int, help="LAM window top row, SR pixels (default: centred)")
    p.add_argument("--col", type=int, help="LAM window left column, SR pixels (default: centred)")
    p.add_argument("--fold", type=int, default=50, help="LAM path steps")
    p.add_argument("--batch-size", type=int, default=25, help="LAM path points per batch")
    p.add_argument("--precision", choices=["fp32", "bf16", "auto"], default="fp32",
                   help="LAM arithmetic: bf16 autocast, or auto (bf16 where it measures faster on this CPU)")
    p.add_argument("--thresholds", type=lambda v: [float(t) for t in v.split(",")],
                   default=[round(t, 2) for t in np.arange(0.3, 1.0001, 0.05)], help="comma-separated T values to sweep")
    args = p.parse_args(argv)
    keep_freed_memory()  # before the LAMs' threads start (gvtnet.compat)
    print(report(args))


if __name__ == "__main__":
    main()
