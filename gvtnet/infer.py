"""Super-resolve image files from the command line.

    python -m gvtnet.infer FILES... --weights assets/gvtnet-light-x4.safetensors --out DIR
"""
from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from .images import ImageError
from .inference import add_ensemble_option, upscale
from .weights import load_model


def main(argv=None):
    p = argparse.ArgumentParser(description="Super-resolve images with GVTNet.")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--weights", required=True, type=Path)
    p.add_argument("--preset", help="preset of a released-code checkpoint (default: inferred)")
    p.add_argument("--out", required=True, type=Path)
    add_ensemble_option(p)
    args = p.parse_args(argv)
    model = load_model(args.weights, args.preset)
    args.out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for f in tqdm(args.files, desc="upscaling"):
        try:
            upscale(model, f, args.self_ensemble).save(args.out / f"{f.stem}_x{model.cfg.upscale}.png")
        except ImageError as e:
            failed += 1
            tqdm.write(f"skipped {f}: {e}")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
