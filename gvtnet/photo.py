"""Whole photos: every face found, restored at its own resolution and blended back into a bicubic upscale
of the photo through a feathered mask, so that no seam shows.

    result = restore_photo(model, "group.jpg")      # result.photo: the photo at the model's scale
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image
from skimage.color import rgb2gray
from skimage.filters import sobel

from .faces import MARGIN, Box, find_faces
from .images import HR_SIZE, MAX_PIXELS, ImageError, bicubic_upscale, opaque, open_image
from .inference import super_resolve, to_image, to_tensor

MIN_FACE = 8  # px a side: a smaller face holds too little to restore
# px a side: a face this large already has the detail the model's restorations have (its training
# faces are HR_SIZE px), so the bicubic background is enough.
MAX_FACE = HR_SIZE
# The mask fades over the margin find_face puts around the face (a sixth of the box on each side), so
# the face itself is pasted whole and its surroundings pass smoothly into the background.
FEATHER = (1 - 1 / MARGIN) / 2


@dataclass
class PhotoFace:
    """One face of a photo. box: (left, top, right, bottom) in the input photo's pixels; lr: that crop;
    sr: its restoration (scale x the crop), or None where the face was left to the background (note says
    why)."""

    box: Box
    lr: Image.Image
    sr: Image.Image | None
    note: str = ""


@dataclass
class PhotoResult:
    """photo: the restored photo, scale x the input, in the input's mode (RGB, L, RGBA or LA); bicubic:
    the same photo upscaled by bicubic alone (the background the faces were blended into); faces: every
    face, numbered from 1 in this order; notes: what a person should know (faces left alone, none
    found)."""

    photo: Image.Image
    bicubic: Image.Image
    scale: int
    faces: list[PhotoFace]
    notes: list[str] = field(default_factory=list)

    @property
    def boxes(self) -> list[Box]:
        return [f.box for f in self.faces]

    def seam_ratios(self) -> list[float | None]:
        """Per face, the gradient along its paste boundary in the restored photo over the same band in
        the bicubic one (1: no seam beyond the background's own edges); None for a face left alone. Where
        the boundary crosses another restored face, that face's sharper detail is no seam, so the band
        leaves it out."""
        restored, bicubic = np.asarray(self.photo), np.asarray(self.bicubic)
        boxes = [tuple(v * self.scale for v in f.box) if f.sr is not None else None for f in self.faces]
        out = []
        for i, box in enumerate(boxes):
            others = [b for j, b in enumerate(boxes) if b is not None and j != i]
            out.append(None if box is None else boundary_gradient(restored, box, others=others) / max(
                boundary_gradient(bicubic, box, others=others), 1e-6))
        return out


def restore_photo(model: torch.nn.Module, photo, boxes: list[Box] | None = None, ensemble: str | None = None,
                  precision: str | None = None, progress: Callable[[int, int], None] | None = None) -> PhotoResult:
    """Upscale a photo (path, bytes, PIL image or array; EXIF orientation applied, alpha kept and upscaled
    by bicubic) by the model's scale: bicubic for the background, and every face (found by
    gvtnet.faces.find_faces, or the `boxes` given, (left, top, right, bottom) in photo pixels, clipped to
    the photo; one wholly outside it is left out, with a note) restored by the model at its own resolution
    and blended back with feather_mask. Overlapping faces are averaged by their masks rather than pasted
    over each other. Faces smaller than MIN_FACE or at least MAX_FACE px a side are left to the
    background, with a note. `ensemble`, `precision`: as in super_resolve; progress(done, total) follows
    the faces."""
    img = open_image(photo, keep_alpha=True)
    alpha = img.getchannel("A") if img.mode in ("RGBA", "LA") else None
    # Colour under transparent pixels is arbitrary (often black), and the bicubic and the model would draw
    # it into the visible edges: it is composited on white first, as open_image does without alpha.
    color = opaque(img)
    scale = model.cfg.upscale
    if color.width * color.height * scale * scale > MAX_PIXELS:
        raise ImageError(f"a {color.width}x{color.height} photo is too large to upscale x{scale} "
                         f"(at most {MAX_PIXELS // 1_000_000} million output pixels)")
    bicubic = bicubic_upscale(color, scale)
    notes = []
    if boxes is None:
        boxes = find_faces(color)
    else:
        clipped = [(b, _inside(b, color)) for b in boxes]
        notes += [f"the face box {tuple(b)} holds no pixel of the {color.width}x{color.height} photo: it is left out."
                  for b, c in clipped if c is None]
        boxes = [c for _, c in clipped if c is not None]
    device = next(model.parameters()).device
    model.eval()
    faces, patches = [], []
    for i, box in enumerate(boxes, 1):
        lr = color.crop(box)
        side = min(lr.size)
        note = (f"face {i} ({side} px) is too small to restore (under {MIN_FACE} px)" if side < MIN_FACE else
                f"face {i} ({side} px) is large enough not to need restoring ({MAX_FACE} px or more)"
                if side >= MAX_FACE else "")
        sr = None
        if note:
            notes.append(note + ": it is left to the bicubic background.")
        else:
            sr = to_image(super_resolve(model, to_tensor(lr).to(device), ensemble, precision), color.mode)
            left, top, right, bottom = (v * scale for v in box)
            # the photo's own border is no seam: the mask fades only towards edges inside the photo
            fade = (top > 0, bottom < bicubic.height, left > 0, right < bicubic.width)
            patches.append((_channels(sr), feather_mask(sr.height, sr.width, FEATHER * side * scale, fade),
                            top, left))
        faces.append(PhotoFace(box, lr, sr, note))
        if progress is not None:
            progress(i, len(boxes))
    if not boxes:
        notes.append("No face found: the photo is upscaled by bicubic alone.")
    blended = blend_faces(_channels(bicubic), patches)
    arr = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    restored = Image.fromarray(arr[..., 0] if color.mode == "L" else arr)
    if alpha is not None:
        big_alpha = alpha.resize(bicubic.size, Image.BICUBIC)
        restored, bicubic = (Image.merge(color.mode + "A", (*im.split(), big_alpha)) for im in (restored, bicubic))
    return PhotoResult(restored, bicubic, scale, faces, notes)


def _inside(box, img: Image.Image) -> Box | None:
    """A given box as ints, clipped to the image; None where it holds no pixel of it. A box that is not
    one (not four finite numbers, or with left > right or top > bottom) raises ImageError."""
    try:
        left, top, right, bottom = (int(round(float(v))) for v in box)
    except (TypeError, ValueError, OverflowError) as e:
        raise ImageError(f"a face box is (left, top, right, bottom) in pixels, got {box!r}") from e
    if right < left or bottom < top:
        raise ImageError(f"a face box is (left, top, right, bottom) in pixels, got {box!r}: its edges are swapped")
    left, top = max(left, 0), max(top, 0)
    right, bottom = min(right, img.width), min(bottom, img.height)
    return (left, top, right, bottom) if right > left and bottom > top else None


def _channels(img: Image.Image) -> np.ndarray:
    """PIL L or RGB -> (h, w, C) float32 with C = 1 or 3, in 0..255."""
    arr = np.asarray(img, np.float32)
    return arr[..., None] if arr.ndim == 2 else arr


# ----------------------------------------------------------------------------------------------------
# The math: pure functions on arrays


def feather_mask(h: int, w: int, width: float, fade: tuple[bool, bool, bool, bool] = (True,) * 4) -> np.ndarray:
    """(h, w) float32 weights: 1 inside, falling to 0 at the edges (top, bottom, left, right) marked in
    `fade` over `width` px, along a smoothstep so that the blend has no kink either; edges not marked
    keep weight 1 up to the border."""
    width = max(float(width), 1.0)

    def ramp(n: int, near: bool, far: bool) -> np.ndarray:
        centres = np.arange(n) + 0.5  # a pixel's distance to the edge is taken from its centre
        # np.where keeps d an array where neither edge fades (a box spanning the photo's side)
        d = np.minimum(np.where(near, centres, np.inf), np.where(far, n - centres, np.inf))
        return np.clip(d / width, 0, 1)

    t = np.minimum(ramp(h, fade[0], fade[1])[:, None], ramp(w, fade[2], fade[3])[None, :])
    return (t * t * (3 - 2 * t)).astype(np.float32)


def blend_faces(background: np.ndarray, patches: list[tuple[np.ndarray, np.ndarray, int, int]]) -> np.ndarray:
    """background: (H, W, C); patches: (face (h, w, C), mask (h, w) in [0, 1], top, left), each inside the
    background. -> (H, W, C) float32: where faces overlap they are averaged, weighted by their masks, and
    the result covers the background by the strongest mask there (so that every face's fade still ends
    on the background, and no face is pasted over another)."""
    out = background.astype(np.float32, copy=True)
    if not patches:
        return out
    # work on the smallest rectangle holding every face: the rest stays the background untouched
    top = min(p[2] for p in patches)
    left = min(p[3] for p in patches)
    bottom = max(p[2] + p[1].shape[0] for p in patches)
    right = max(p[3] + p[1].shape[1] for p in patches)
    weighted = np.zeros((bottom - top, right - left, out.shape[2]), np.float32)
    total = np.zeros((bottom - top, right - left), np.float32)
    cover = np.zeros_like(total)
    for face, mask, t, l in patches:
        region = np.s_[t - top:t - top + mask.shape[0], l - left:l - left + mask.shape[1]]
        weighted[region] += mask[..., None] * face
        total[region] += mask
        cover[region] = np.maximum(cover[region], mask)
    faces = weighted / np.maximum(total, 1e-8)[..., None]
    bg = out[top:bottom, left:right]
    out[top:bottom, left:right] = bg + cover[..., None] * (faces - bg)
    return out


def boundary_gradient(img: np.ndarray, box: Box, width: int = 1, others: list[Box] = ()) -> float:
    """Mean gradient magnitude (Sobel, of the luma in [0, 1]) over the band of pixels within `width` px of
    the border of `box` = (left, top, right, bottom), on both sides (width 1: the pixel rows and columns
    either side of the border). img: (H, W) or (H, W, 3|4) uint8. Sides lying on the image's own border
    are left out (nothing was pasted across them), and so are the band's pixels inside any of the boxes
    `others`; 0 where nothing is left. A seam shows as a band whose gradient exceeds the same band's in
    the unpasted image."""
    img = np.asarray(img)
    gray = (rgb2gray(img[..., :3]) if img.ndim == 3 and img.shape[2] >= 3 else
            (img[..., 0] if img.ndim == 3 else img) / 255.0)
    H, W = gray.shape
    left, top, right, bottom = box
    # Sobel on a window around the box only (one pixel more, for the filter's own support)
    r0, r1 = max(top - width - 1, 0), min(bottom + width + 1, H)
    c0, c1 = max(left - width - 1, 0), min(right + width + 1, W)
    grad = sobel(gray[r0:r1, c0:c1])
    rows = np.arange(r0, r1)[:, None] + 0.5
    cols = np.arange(c0, c1)[None, :] + 0.5
    along_rows = (rows >= top - width) & (rows <= bottom + width)
    along_cols = (cols >= left - width) & (cols <= right + width)
    band = np.zeros(grad.shape, bool)
    if top > 0:
        band |= (np.abs(rows - top) <= width) & along_cols
    if bottom < H:
        band |= (np.abs(rows - bottom) <= width) & along_cols
    if left > 0:
        band |= (np.abs(cols - left) <= width) & along_rows
    if right < W:
        band |= (np.abs(cols - right) <= width) & along_rows
    for o_left, o_top, o_right, o_bottom in others:
        band &= ~((rows >= o_top) & (rows < o_bottom) & (cols >= o_left) & (cols < o_right))
    return float(grad[band].mean()) if band.any() else 0.0
