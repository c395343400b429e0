"""Whole photos with the shipped light x4 weights: scikit-image's 512x512 astronaut through the face model
as if it were one face (what `python -m gvtnet.upscale_files astronaut.png` did before --photo) against
gvtnet.restore_photo (every face found, restored and blended back), and the face detection alone; then
the app's composed photo (three faces, 120x56) through restore_photo and through the Photo tab's callback.

    python -m benchmarks.bench_photo [--threads 2] [--repeats 3]

Medians with the interquartile range, in seconds.
"""
from __future__ import annotations

import argparse
import statistics

import torch
from PIL import Image
from skimage import data

from benchmarks.timing import machine, summary, timed


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="torch threads (the CLI uses all cores; the app 1)")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    import gvtnet
    from app.examples import group_file
    from app.tabs.photo import photo_view
    from gvtnet.faces import find_faces

    torch.set_num_threads(args.threads)
    model = gvtnet.load_model("assets/gvtnet-light-x4.safetensors")
    astronaut = Image.fromarray(data.astronaut())
    group = Image.open(group_file()).convert("RGB")
    print(f"{machine()}\nseconds, median (interquartile range) of {args.repeats}\n")
    rows = {
        "astronaut 512x512: the face model over the whole photo (gvtnet.upscale)":
            timed(lambda: gvtnet.upscale(model, astronaut), args.repeats),
        "astronaut 512x512: gvtnet.restore_photo": timed(lambda: gvtnet.restore_photo(model, astronaut), args.repeats),
        "astronaut 512x512: gvtnet.faces.find_faces alone": timed(lambda: find_faces(astronaut), args.repeats),
        "composed photo 120x56, 3 faces: gvtnet.restore_photo":
            timed(lambda: gvtnet.restore_photo(model, group), args.repeats),
        "composed photo 120x56, 3 faces: the Photo tab's callback (with PNG files)":
            timed(lambda: photo_view(group_file(), 4, "", "light", None), args.repeats),
    }
    print("| step | seconds |")
    print("|---|---|")
    for name, times in rows.items():
        print(f"| {name} | {summary(times)} |")
    whole, photo = (statistics.median(rows[k]) for k in list(rows)[:2])
    print(f"\nrestore_photo takes {photo / whole:.2f}x the time of the whole-photo pass on the astronaut")


if __name__ == "__main__":
    main()
