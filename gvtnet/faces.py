"""Finding faces to crop: scikit-image's LBP frontal-face cascade, so no model is downloaded."""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image

# Detection runs on a copy no larger than this (px, longest side): the cascade's cost grows with the
# area, and a face filling a photo is still found at this size.
DETECT_SIDE = 320
# The cascade's box is tight around eyes, nose and mouth; the crop takes in the whole head, as the
# training faces do.
MARGIN = 1.5
WINDOW = 24  # the cascade's own window (px): smaller faces are not found
# find_faces scans a copy of at most this many pixels (a few seconds on a CPU), enlarging small photos so
# that small faces reach the cascade's window.
DETECT_PIXELS = 1_500_000

Box = tuple[int, int, int, int]


@lru_cache(maxsize=1)
def _cascade():
    from skimage.data import lbp_frontal_face_cascade_filename
    from skimage.feature import Cascade

    return Cascade(lbp_frontal_face_cascade_filename())


def _detect(img: Image.Image, factor: float) -> list[tuple[float, float, float]]:
    """(centre x, centre y, side) in `img` pixels of each face the cascade finds on `img` resized by
    `factor`."""
    gray = img.convert("L")
    if factor != 1:
        gray = gray.resize((max(1, round(gray.width * factor)), max(1, round(gray.height * factor))),
                           Image.BILINEAR if factor < 1 else Image.BICUBIC)
    if min(gray.size) < WINDOW:
        return []
    found = _cascade().detect_multi_scale(np.asarray(gray, np.float64) / 255, scale_factor=1.2,
                                          step_ratio=1, min_size=(WINDOW, WINDOW),
                                          max_size=(min(gray.size),) * 2, min_neighbor_number=4)
    return [((d["c"] + d["width"] / 2) / factor, (d["r"] + d["height"] / 2) / factor,
             max(d["width"], d["height"]) / factor) for d in found]


def _square(img: Image.Image, cx: float, cy: float, tight: float) -> Box:
    """The head's square box (with MARGIN) around a tight face box centred on (cx, cy), inside `img`."""
    side = min(round(tight * MARGIN), img.width, img.height)
    # Slide the square back inside the image rather than shrink it, so the face stays whole.
    left = int(min(max(round(cx - side / 2), 0), img.width - side))
    top = int(min(max(round(cy - side / 2), 0), img.height - side))
    return left, top, left + side, top + side


def find_face(img: Image.Image) -> Box | None:
    """Square box (left, top, right, bottom) around the largest frontal face in `img`, inside the image;
    None where no face is found."""
    found = _detect(img, min(1.0, DETECT_SIDE / max(img.size)))
    return _square(img, *max(found, key=lambda f: f[2])) if found else None


def find_faces(img: Image.Image, min_side: int = 16) -> list[Box]:
    """Square boxes (left, top, right, bottom), in the form find_face returns, around every frontal face
    in `img`, left to right. Faces whose box is at least `min_side` px are sought: a small photo is
    enlarged for the cascade, a large one reduced to DETECT_PIXELS (which raises the smallest face found).
    A detection mostly inside a larger one (a forehead or a cheek found again) is dropped, and so is one
    the cascade does not find again on its surroundings resampled 0.8x (most false ones: texture that
    looks like a face on one pixel grid only)."""
    factor = min(WINDOW * MARGIN / min_side, math.sqrt(DETECT_PIXELS / (img.width * img.height)))
    kept: list[tuple[float, float, float]] = []
    for face in sorted(_detect(img, factor), key=lambda f: -f[2]):
        if all(_overlap(face, k) < 0.5 for k in kept) and _found_again(img, face, 0.8 * factor):
            kept.append(face)
    return sorted((_square(img, *f) for f in kept), key=lambda b: (b[0], b[1]))


def _found_again(img: Image.Image, face: tuple[float, float, float], factor: float) -> bool:
    """Whether the cascade finds a face of about the same place and size on the square of twice the
    face's side around it, resized by `factor`."""
    cx, cy, side = face
    left, top = max(round(cx - side), 0), max(round(cy - side), 0)
    region = img.crop((left, top, min(round(cx + side), img.width), min(round(cy + side), img.height)))
    return any(_overlap(face, (x + left, y + top, s)) >= 0.5 and 0.6 < s / side < 1.6
               for x, y, s in _detect(region, factor))


def _overlap(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    """Intersection of two tight boxes (centre x, centre y, side) over the smaller one's area."""
    ix = min(a[0] + a[2] / 2, b[0] + b[2] / 2) - max(a[0] - a[2] / 2, b[0] - b[2] / 2)
    iy = min(a[1] + a[2] / 2, b[1] + b[2] / 2) - max(a[1] - a[2] / 2, b[1] - b[2] / 2)
    return max(ix, 0) * max(iy, 0) / min(a[2], b[2]) ** 2
