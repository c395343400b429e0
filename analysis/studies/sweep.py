"""Does the graph threshold T matter for a model? Sweep it over a folder of faces.

    python -m analysis.studies.sweep ../shared/data/celeba-test-1000 --weights assets/gvtnet-light-x4.safetensors \
        --limit 100

Each face is centre-cropped to 128 px and degraded by the model's scale; prints, per T and with the graph
off, the mean and spread over the faces of the PSNR change against the model's own T and of the edge
density (a Markdown table), and with --out writes the figure.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tqdm import tqdm

from gvtnet.data import FacePairs, image_files
from gvtnet.weights import load_model

from .. import threshold


def main(argv=None):
    p = argparse.ArgumentParser(description="Sweep the graph threshold T over a folder of faces: mean and spread "
                                            "of the PSNR change and of the edge density per T, graph off as reference.")
    p.add_argument("folder", type=Path, help="face images (each centre-cropped to 128 px and degraded)")
    p.add_argument("--weights", required=True, type=Path)
    p.add_argument("--thresholds", type=lambda v: [float(t) for t in v.split(",")],
                   default=[round(t, 2) for t in np.linspace(0, 1, 11)], help="comma-separated T values")
    p.add_argument("--limit", type=int, default=100, help="use the first N faces of the folder (sorted by name)")
    p.add_argument("--out", type=Path, help="write the figure to this PNG file")
    args = p.parse_args(argv)
    model = load_model(args.weights)
    pairs = FacePairs.from_files(image_files(args.folder)[: args.limit], model.cfg.upscale)
    with tqdm(total=len(args.thresholds) + 2, desc="settings") as bar:
        s = threshold.sweep_faces(model, pairs, args.thresholds, progress=lambda done, _: bar.update(done - bar.n))
    print(f"{s.faces} faces, own T = {s.own}; PSNR change (dB, Y) against the own setting, mean ± std\n")
    print("| T | PSNR change | edge density |\n|---|---|---|")
    for t, c, cs, d, ds in s.rows():
        print(f"| {t} | {c:+.3f} ± {cs:.3f} | {d:.3f} ± {ds:.3f} |")
    if args.out:
        threshold.faces_png(s).savefig(args.out, dpi=120)


if __name__ == "__main__":
    main()
