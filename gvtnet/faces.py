"""Finding a face to crop: scikit-image's LBP frontal-face cascade, so no model is downloaded."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

# Detection runs on a copy no larger than this (px, longest side): the cascade's cost grows with the
# area, and a face filling a photo is still found at this size.
DETECT_SIDE = 320
# The cascade's box is tight around eyes, nose and mouth; the crop takes in the whole head, as the
# training faces do.
MARGIN = 1.5


@lru_cache(maxsize=1)
def _cascade():
    from skimage.data import lbp_frontal_face_cascade_filename
    from skimage.feature import Cascade

    return Cascade(lbp_frontal_face_cascade_filename())


def find_face(img: Image.Image) -> tuple[int, int, int, int] | None:
    """Square box (left, top, right, bottom) around the largest frontal face in `img`, inside the image;
    None where no face is found."""
    gray = img.convert("L")
    scale = min(1.0, DETECT_SIDE / max(gray.size))
    if scale < 1:
        gray = gray.resize((max(1, round(gray.width * scale)), max(1, round(gray.height * scale))),
                           Image.BILINEAR)
    if min(gray.size) < 24:  # the cascade's own window
        return None
    found = _cascade().detect_multi_scale(np.asarray(gray, np.float64) / 255, scale_factor=1.2,
                                          step_ratio=1, min_size=(24, 24), max_size=(min(gray.size),) * 2,
                                          min_neighbor_number=4)
    if not found:
        return None
    d = max(found, key=lambda d: d["width"] * d["height"])
    cx, cy = (d["c"] + d["width"] / 2) / scale, (d["r"] + d["height"] / 2) / scale
    side = min(round(max(d["width"], d["height"]) / scale * MARGIN), img.width, img.height)
    # Slide the square back inside the image rather than shrink it, so the face stays whole.
    left = int(min(max(round(cx - side / 2), 0), img.width - side))
    top = int(min(max(round(cy - side / 2), 0), img.height - side))
    return left, top, left + side, top + side
