"""How far each block looks, over many faces, for every block of GVTNet, of the same weights with the graph
off, and of the SwinIR baseline: the reach among the kept keys (`attention.attention_distance`, each row
renormalised) and, apart from it, the softmax weight the graph cut (`attention.mass_cut`) and each row's
total after the graph; and, for faces not a multiple of the window size, the share of attention that falls
on the mirror padding.

    python -m analysis.studies.distances --weights assets/gvtnet-light-x4.safetensors \
        --baseline assets/swinir-light-x4.safetensors --data ../shared/data/celeba-test-1000 --faces 20
    python -m analysis.studies.distances ... --lr-size 27        # real-LR faces of 27 px: padded to 32

Faces are the folder's first images (sorted), centre squares resized to 128 px and bicubic-downscaled by
the model's scale, as in evaluation (or to --lr-size px). Prints Markdown tables.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from gvtnet.data import image_files
from gvtnet.images import HR_SIZE, ImageError, center_square, degrade, open_image
from gvtnet.inference import to_tensor
from gvtnet.sr_models import has_graph
from gvtnet.weights import load_model

from ..attention import KIND_NAMES, attention_distance, attention_mass, block_label
from ..inspection import inspect


def compared_models(model, baseline=None) -> dict:
    """{name: model}: GVTNet, the same weights with the graph off (if it has graph blocks) and the SwinIR
    baseline, all as variants, so that capturing never touches the models passed in."""
    models = {"GVTNet": model.variant()}
    if has_graph(model):
        models["GVTNet, graph off"] = model.variant(use_graph=False)
    if baseline is not None:
        models["SwinIR"] = baseline.variant()
    return models


MASS_FIELDS = ("row_sum", "removed", "padding")


def depth_profile(models: dict, faces: list[torch.Tensor], progress: bool = True) -> dict[str, dict]:
    """{name: {'distance': (faces, blocks, heads) reach among the kept keys in LR px, and per face query
    (faces, blocks, heads, queries) the `attention.AttentionMass` fields 'row_sum', 'removed' and
    'padding'}}; faces: (1, 3, h, w) LR tensors in [0, 1]."""
    out = {name: {k: [] for k in ("distance", *MASS_FIELDS)} for name in models}
    for lr in tqdm(faces, desc="faces", disable=not progress):
        for name, model in models.items():
            ins = inspect(model, lr)
            out[name]["distance"].append(np.stack([attention_distance(ins, b.group, b.block) for b in ins.blocks]))
            masses = [attention_mass(ins, b.group, b.block) for b in ins.blocks]
            for k in MASS_FIELDS:
                out[name][k].append(np.stack([getattr(m, k) for m in masses]))
    return {name: {k: np.stack(v) for k, v in d.items()} for name, d in out.items()}


def table(values: dict[str, np.ndarray], blocks: list, cell) -> str:
    """Markdown: one row per block of `blocks` (GVTNet's), cell(v) of each model's values[:, block], then
    the same over all blocks of each of GVTNet's kinds (block positions line up when depths match)."""
    names = list(values)
    lines = ["| block | GVTNet's kind | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for i, b in enumerate(blocks):
        cells = " | ".join(cell(v[:, i]) for v in values.values())
        lines.append(f"| {block_label(b)} | {KIND_NAMES[b.kind]} | {cells} |")
    kinds = np.array([b.kind for b in blocks])
    for kind in sorted(set(kinds), reverse=True):
        lines.append(f"| all of GVTNet's {KIND_NAMES[kind]} positions | | "
                     + " | ".join(cell(v[:, kinds == kind]) for v in values.values()) + " |")
    return "\n".join(lines)


def mean_and_spread(values: np.ndarray, digits: int) -> str:
    """'mean ± sd' of values (faces, ...): the mean over everything, ± the standard deviation over faces of
    each face's mean."""
    return f"{values.mean():.{digits}f} ± {values.reshape(len(values), -1).mean(1).std():.{digits}f}"


def lr_face_list(folder: str, count: int, scale: int, lr_size: int | None) -> list[torch.Tensor]:
    """(1, 3, h, w) LR faces: the first `count` readable images of `folder`, as in evaluation."""
    faces = []
    for path in image_files(folder):
        if len(faces) == count:
            break
        try:
            hr = center_square(open_image(path).convert("RGB"), HR_SIZE)
        except ImageError:  # unreadable: skipped, as evaluation does
            continue
        lr = hr.resize((lr_size, lr_size), Image.BICUBIC) if lr_size else degrade(hr, scale)
        faces.append(to_tensor(lr))
    return faces


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, help="GVTNet weights")
    p.add_argument("--baseline", help="the SwinIR baseline's weights")
    p.add_argument("--data", required=True, help="a folder of face images")
    p.add_argument("--faces", type=int, default=20, help="how many (the first, sorted)")
    p.add_argument("--lr-size", type=int, help="LR side in px (default: 128 / the model's scale)")
    args = p.parse_args(argv)
    model = load_model(args.weights)
    models = compared_models(model, load_model(args.baseline) if args.baseline else None)
    faces = lr_face_list(args.data, args.faces, model.cfg.upscale, args.lr_size)
    if not faces:
        raise SystemExit(f"no readable images in {args.data}")
    prof = depth_profile(models, faces)
    blocks = inspect(models["GVTNet"], faces[0]).blocks
    side = faces[0].shape[-1]
    print(f"{args.weights}, {len(faces)} faces of {args.data} at {side} px LR.\n\nReach among the kept keys: mean "
          f"attention distance with each row renormalised to sum 1, LR pixels (mean over heads, queries and "
          f"faces ± standard deviation over faces):\n")
    print(table({n: d["distance"] for n, d in prof.items()}, blocks, lambda v: mean_and_spread(v, 2)))
    print("\nSoftmax weight the graph cut from each row (mean over heads, queries and faces ± standard deviation "
          "over faces):\n")
    print(table({n: d["removed"] for n, d in prof.items()}, blocks, lambda v: mean_and_spread(v, 3)))
    print("\nTotal weight of each attention row after the graph, mean over queries, heads and faces (smallest "
          "and largest row):\n")
    print(table({n: d["row_sum"] for n, d in prof.items()}, blocks,
                lambda v: f"{v.mean():.2f} ({v.min():.2f}-{v.max():.2f})"))
    padded = model.padded_size(side, side)
    if padded != (side, side):
        print(f"\nShare of each attention row on keys in the mirror padding ({side} px padded to {padded[0]}): "
              f"mean over queries, heads and faces (largest of any one row):\n")
        print(table({n: d["padding"] for n, d in prof.items()}, blocks, lambda v: f"{v.mean():.2f} ({v.max():.2f})"))


if __name__ == "__main__":
    main()
