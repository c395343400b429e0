"""Super-resolve image files and folders from the command line, writing PNG.

    python -m gvtnet.upscale_files FILES_OR_FOLDERS... --weights assets/gvtnet-light-x4.safetensors --out DIR
    python -m gvtnet.upscale_files photos/ --photo ...    # whole photos: every face restored, the rest bicubic

Without --photo each image is one face, restored whole; an image larger than a face (over HR_SIZE px a
side) is restored as a photo all the same: the face model run over a whole photo takes it for one giant
face, which is slow and restores nothing. Folders are searched recursively and their structure is kept
under DIR.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from .images import HR_SIZE, ImageError, open_image
from .inference import add_ensemble_option, upscale
from .photo import restore_photo
from .weights import load_model


def input_output_paths(paths: list[Path]) -> list[tuple[Path, Path]]:
    """(file, its output name relative to the output folder, without suffix) for every file named and
    every image file (by extension, hidden ones aside) under every folder named, recursively."""
    suffixes = {s for s, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
    found = []
    for path in paths:
        if path.is_dir():
            found += [(f, f.relative_to(path).with_suffix("")) for f in sorted(path.rglob("*"))
                      if f.is_file() and f.suffix.lower() in suffixes
                      and not any(part.startswith(".") for part in f.relative_to(path).parts)]
        else:
            found.append((path, Path(path.stem)))
    return found


def main(argv=None):
    p = argparse.ArgumentParser(description="Super-resolve images with GVTNet (writes PNG).")
    p.add_argument("inputs", nargs="+", type=Path, help="image files and folders (searched recursively)")
    p.add_argument("--weights", required=True, type=Path)
    p.add_argument("--preset", help="preset of a released-code checkpoint (default: inferred)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--photo", action="store_true",
                   help="whole photos: restore every face found and upscale the rest by bicubic")
    p.add_argument("--overwrite", action="store_true", help="write into an output folder that is not empty")
    add_ensemble_option(p)
    args = p.parse_args(argv)
    if args.out.exists() and not (args.out.is_dir() and (args.overwrite or not any(args.out.iterdir()))):
        p.error(f"{args.out} already exists{'' if args.out.is_dir() else ' and is not a folder'}: choose "
                f"another --out{', or pass --overwrite to write into it' if args.out.is_dir() else ''}")
    files = input_output_paths(args.inputs)
    if not files:
        p.error("no image files found in " + ", ".join(map(str, args.inputs)))
    model = load_model(args.weights, args.preset)
    scale = model.cfg.upscale
    written, faces, as_photos, skipped = 0, 0, 0, 0
    seen: set[Path] = set()
    for src, name in tqdm(files, desc="upscaling", unit="image"):
        dst = args.out / name.parent / f"{name.name}_x{scale}.png"
        if dst in seen:  # photo.jpg and photo.png in one folder
            dst = dst.with_name(f"{name.name}-{src.suffix.lstrip('.')}_x{scale}.png")
        seen.add(dst)
        try:
            img = open_image(src, keep_alpha=True)
            if args.photo or max(img.size) > HR_SIZE:
                result = restore_photo(model, img, ensemble=args.self_ensemble)
                out = result.photo
                for note in result.notes:
                    tqdm.write(f"{src}: {note}")
                faces += sum(f.sr is not None for f in result.faces)
                as_photos += 1
            else:
                out = upscale(model, img, args.self_ensemble)
        except ImageError as e:
            skipped += 1
            tqdm.write(f"skipped {src}: {e}")
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        out.save(dst, format="PNG")
        written += 1
    photos = f" ({as_photos} as whole photos, {faces} faces restored)" if as_photos else ""
    print(f"{written} of {len(files)} images upscaled x{scale}{photos}, {skipped} skipped, into {args.out}")
    raise SystemExit(1 if skipped else 0)


if __name__ == "__main__":
    main()
