"""What a visitor of the app waits for, with the shipped light weights, on one face.

    python -m benchmarks.bench_interactive [--threads 1] [--repeats 5]

Times the app's own tab functions (app/tabs/) in-process (no browser or HTTP): upload to restoration
(GVTNet, SwinIR baseline, bicubic) and the first neighbour graph; a threshold change (re-inspect at a new
T and redraw) and a click on the face (redraw for another window); the threshold sweep over several faces;
the Attention tab's update (GVTNet, graph off and SwinIR: rollout, distance, mass, one block) for a new
face, after a threshold change and after a query click; a threshold sweep; LAM of one model, batched as
the app runs it and one path point at a time as the reference does, and the LAM tab's whole update (every
model it compares, side by side, with its overlays and spread view). Medians with the interquartile
range, in seconds.
"""
from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

import torch
from PIL import Image
from skimage import data

from benchmarks.timing import machine, summary, timed


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="torch threads (the app uses 1 per request)")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()

    from analysis import lam
    from app.context import DEFAULT_GRAPH
    from app.state import MODELS
    from app.tabs.attention import attention_view, depth_view, rollout_view
    from app.tabs.inputs import FACE, SIMULATE, face_picker
    from app.tabs.lam import LAM_BATCH, LAM_PRECISION, lam_models, lam_view, lam_window
    from app.tabs.neighbour_graph import graph_view
    from app.tabs.restore import restore, restore_view
    from app.tabs.threshold import threshold_faces_view, threshold_view
    from gvtnet.inference import to_tensor

    torch.set_num_threads(args.threads)
    MODELS.preload()
    face = Path(tempfile.mkdtemp()) / "astronaut.png"
    Image.fromarray(data.astronaut()).crop((150, 20, 330, 200)).save(face)
    print(f"{machine()}\nseconds, median (interquartile range) of {args.repeats}\n")
    print("| step | x4 | x8 |")
    print("|---|---|---|")
    rows: dict[str, list[str]] = {}
    for scale in (4, 8):
        def upload():
            s = restore(str(face), scale, SIMULATE, FACE, False, "light", None)
            restore_view(s)
            graph_view(s, 0, 0)
            return s

        rows.setdefault("upload -> restorations + first graph", []).append(summary(timed(upload, args.repeats)))
        s = upload()
        thresholds = iter([0.5 + 0.01 * i for i in range(1000)])

        def graph_tab(t: float, pixel=None):
            """What the Neighbour graph tab's update runs: re-inspect where the settings changed, draw the
            window view, overview, heatmap and statistics, figures serialised as Gradio does."""
            if pixel is not None:
                s.graph_pixel = pixel
            v = graph_view(s, 1, 0, replace(DEFAULT_GRAPH, threshold=t))
            return v.overview.to_json(), v.heatmap.to_json()

        rows.setdefault("threshold change -> graph redrawn", []).append(summary(timed(
            lambda: graph_tab(next(thresholds)), args.repeats)))
        pixels = iter([(i % s.lr.height, (5 * i) % s.lr.width) for i in range(1000)])
        rows.setdefault("click on the face -> window graph redrawn", []).append(summary(timed(
            lambda: graph_tab(0.85, next(pixels)), args.repeats)))
        rows.setdefault("threshold sweep (21 values) + figure", []).append(summary(timed(
            lambda: threshold_view(s, DEFAULT_GRAPH, "0.3, 0.85"), max(2, args.repeats // 2))))
        rows.setdefault("threshold sweep over the 2 examples and this face (21 values + graph off)", []).append(
            summary(timed(lambda: threshold_faces_view(s, DEFAULT_GRAPH), max(2, args.repeats // 2))))

        def attention_tab(fresh: bool = False):
            """What the Attention tab draws when shown after a threshold change or a new face, figures
            serialised as Gradio does."""
            if fresh:  # a new face: every compared model is inspected
                s.inspection, s.attention_inspections = None, {}
            settings = replace(DEFAULT_GRAPH, threshold=next(thresholds))
            depth = depth_view(s, settings)
            figures = (attention_view(s, 1, 1, 0, settings), rollout_view(s, "mean", settings), depth.distance,
                       depth.mass)
            face_picker(s, s.query)
            return [f.to_json() for f in figures]

        rows.setdefault("Attention tab, new face (3 models inspected, 4 figures)", []).append(summary(timed(
            lambda: attention_tab(fresh=True), args.repeats)))
        rows.setdefault("threshold changed, then the Attention tab shown -> redrawn", []).append(summary(timed(
            attention_tab, args.repeats)))
        queries = iter([(i % s.lr.height, (3 * i) % s.lr.width) for i in range(1000)])

        def query_click():
            s.query = next(queries)
            settings = replace(DEFAULT_GRAPH, threshold=0.5)
            figures = (attention_view(s, 1, 1, 0, settings), rollout_view(s, "mean", settings))
            face_picker(s, s.query)
            return [f.to_json() for f in figures]

        rows.setdefault("query click -> rollout + block view", []).append(summary(timed(query_click, args.repeats)))
        lr = to_tensor(s.lr)
        row, col = lam_window(s, 16)
        rows.setdefault("LAM tab: every model it compares, side by side, with its figures", []).append(summary(timed(
            lambda: lam_view(s, 16), max(2, args.repeats // 2))))
        rows.setdefault("  (models compared)", []).append(", ".join(lam_models(s)))
        for name, batch in [(f"LAM, one model, batched ({LAM_BATCH} a batch, as the app)", LAM_BATCH),
                            ("LAM, one model, one path point at a time", 1)]:
            rows.setdefault(name, []).append(summary(timed(
                lambda: lam.local_attribution_map(s.model, lr, row, col, batch_size=batch,
                                                  precision=LAM_PRECISION), max(2, args.repeats // 2))))
    for name, cells in rows.items():
        print(f"| {name} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
