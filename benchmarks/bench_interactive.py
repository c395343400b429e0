"""What a visitor of the app waits for, with the shipped light weights, on one face.

    python -m benchmarks.bench_interactive [--threads 1] [--repeats 5]

Times the app's own callbacks in-process (no browser or HTTP): upload to restoration (GVTNet, SwinIR
baseline, bicubic) and the first neighbour graph; a threshold change (re-inspect at a new T and redraw);
a threshold sweep; LAM of one model, batched as the app runs it and one path point at a time as the
reference does. Medians with the interquartile range, in seconds.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from PIL import Image
from skimage import data

from benchmarks.timing import summary, timed


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="torch threads (the app uses 1 per request)")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()

    from analysis import lam
    from app import callbacks as cb
    from app.state import MODELS
    from gvtnet.inference import to_tensor

    torch.set_num_threads(args.threads)
    MODELS.preload()
    face = Path(tempfile.mkdtemp()) / "astronaut.png"
    Image.fromarray(data.astronaut()).crop((150, 20, 330, 200)).save(face)
    print(f"{args.threads} torch thread(s); seconds, median (interquartile range) of {args.repeats}\n")
    print("| step | x4 | x8 |")
    print("|---|---|---|")
    rows: dict[str, list[str]] = {}
    for scale in (4, 8):
        def upload():
            s = cb.restore(str(face), scale, cb.SIMULATE, cb.FACE, False, "light", None)
            cb.restore_view(s)
            cb.graph_view(s, 0, 0, 0.85, "model's own", "released")
            return s

        rows.setdefault("upload -> restorations + first graph", []).append(summary(timed(upload, args.repeats)))
        s = upload()
        thresholds = iter([0.5 + 0.01 * i for i in range(1000)])
        rows.setdefault("threshold change -> graph redrawn", []).append(summary(timed(
            lambda: cb.graph_view(s, 0, 0, next(thresholds), "model's own", "released"), args.repeats)))
        rows.setdefault("threshold sweep (21 values) + figure", []).append(summary(timed(
            lambda: cb.threshold_view(s, "model's own", "released", "0.3, 0.85"), max(2, args.repeats // 2))))
        lr = to_tensor(s.lr)
        row, col = cb.lam_window(s, 16)
        for name, batch in [("LAM, one model, batched (app)", 25), ("LAM, one model, one path point at a time", 1)]:
            rows.setdefault(name, []).append(summary(timed(
                lambda: lam.local_attribution_map(s.model, lr, row, col, batch_size=batch), max(2, args.repeats // 2))))
    for name, cells in rows.items():
        print(f"| {name} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
