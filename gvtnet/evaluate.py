"""Evaluation as the paper's Table II: PSNR/SSIM on RGB and on Y for weights and test folders.

    python -m gvtnet.evaluate --weights assets/gvtnet-light-x4.safetensors --data ../shared/data/celeba-test-1000
    python -m gvtnet.evaluate ... --graph-off    # also with the graph off at inference, paired face by face

A bicubic row is always included; results go to stdout as Markdown and optionally to --json.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.stats import bootstrap
from tqdm import tqdm

from .data import FacePairs, image_files
from .images import bicubic_upscale
from .inference import add_ensemble_option, freeze, super_resolve, to_uint8
from .metrics import psnr, ssim
from .model import GVTNet
from .weights import load_model


def face_metrics(sr: np.ndarray, hr: np.ndarray, crop: int = 0) -> np.ndarray:
    """(N, H, W, 3) uint8 arrays -> (N, 4) per-face PSNR-RGB, SSIM-RGB, PSNR-Y, SSIM-Y."""
    return np.array([(psnr(a, b, False, crop), ssim(a, b, False, crop), psnr(a, b, True, crop), ssim(a, b, True, crop))
                     for a, b in zip(sr, hr)])


def score(sr: np.ndarray, hr: np.ndarray, crop: int = 0) -> dict[str, float]:
    """Mean metrics over (N, H, W, 3) uint8 arrays."""
    m = face_metrics(sr, hr, crop).mean(axis=0)
    return {"psnr_rgb": float(m[0]), "ssim_rgb": float(m[1]), "psnr_y": float(m[2]), "ssim_y": float(m[3])}


@torch.no_grad()
def restore_pairs(model: torch.nn.Module | None, pairs: FacePairs, ensemble: str | None = None, batch: int = 16,
                  progress: bool = False) -> np.ndarray:
    """(N, H, W, 3) uint8 restorations of the pairs' LR faces by `model` (None: PIL bicubic)."""
    if model is None:
        lr = pairs.lr.permute(0, 2, 3, 1).numpy()
        return np.stack([np.asarray(bicubic_upscale(Image.fromarray(x), pairs.scale)) for x in lr])
    model = freeze(model) if isinstance(model, GVTNet) else model.eval()
    device = next(model.parameters()).device
    outs = []
    for i in tqdm(range(0, len(pairs), batch), desc="evaluating", disable=not progress, leave=False):
        lr = pairs.lr[i : i + batch].float().div(255).to(device)
        outs.append(to_uint8(super_resolve(model, lr, ensemble).cpu()))
    return np.concatenate(outs)


def evaluate_pairs(model: torch.nn.Module | None, pairs: FacePairs, crop: int = 0, ensemble: str | None = None,
                   batch: int = 16, progress: bool = False) -> dict[str, float]:
    """Mean metrics of `model` (None: PIL bicubic) on the pairs."""
    sr = restore_pairs(model, pairs, ensemble, batch, progress)
    return score(sr, pairs.hr.permute(0, 2, 3, 1).numpy(), crop)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", nargs="+", type=Path, default=[], help="safetensors or released checkpoints")
    p.add_argument("--data", nargs="+", type=Path, required=True, help="folders of HR test faces")
    p.add_argument("--scale", type=int, help="scale for a bicubic-only table (default: the weights')")
    p.add_argument("--crop", type=int, default=0, help="border pixels ignored (the paper's configs: scale)")
    add_ensemble_option(p)
    p.add_argument("--limit", type=int, default=0, help="use only the first N faces of each folder")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--graph-off", action="store_true",
                   help="also each GVTNet with its graph off at inference (every edge kept, same weights), and "
                        "the paired per-face PSNR-Y difference, off minus on, with a bootstrap 95%% interval")
    args = p.parse_args(argv)
    models = [(w.stem, load_model(w)) for w in args.weights]
    if args.graph_off:
        models += [(f"{n}, graph off", m.variant(use_graph=False)) for n, m in models if m.cfg.has_graph]
    scales = sorted({m.cfg.upscale for _, m in models} or {args.scale or 4})
    results = []
    for folder in args.data:
        files = image_files(folder)[: args.limit or None]
        for scale in scales:
            pairs = FacePairs.from_files(files, scale)
            rows = [("bicubic", None)] + [(n, m) for n, m in models if m.cfg.upscale == scale]
            per_face = {}
            for name, model in rows:
                ensemble = args.self_ensemble if model is not None else None
                label = name + {None: "", "d8": "+", "flip": "+flip"}[ensemble]
                sr = restore_pairs(model, pairs, ensemble, progress=True)
                per_face[name] = face_metrics(sr, pairs.hr.permute(0, 2, 3, 1).numpy(), args.crop)
                m = dict(zip(("psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y"), per_face[name].mean(0).tolist()))
                results.append({"data": folder.name, "scale": scale, "method": label, "faces": len(pairs), **m})
            for name in [n for n in per_face if f"{n}, graph off" in per_face]:
                d = per_face[f"{name}, graph off"][:, 2] - per_face[name][:, 2]
                ci = bootstrap((d,), np.mean, n_resamples=10_000, method="percentile", rng=np.random.default_rng(0))
                print(f"{folder.name} x{scale} {name}: graph off minus on, PSNR-Y {d.mean():+.4f} dB (95% CI over "
                      f"faces {ci.confidence_interval.low:+.4f} to {ci.confidence_interval.high:+.4f}), "
                      f"higher on {np.mean(d > 0):.0%} of {len(d)} faces")
    print("| data | scale | method | PSNR-Y | SSIM-Y | PSNR-RGB | SSIM-RGB |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['data']} | x{r['scale']} | {r['method']} | {r['psnr_y']:.2f} | {r['ssim_y']:.4f} | "
              f"{r['psnr_rgb']:.2f} | {r['ssim_rgb']:.4f} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
