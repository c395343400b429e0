"""The Photo tab: every face of a whole photo restored and blended back, and one of them chosen as the
face of the other tabs."""
from __future__ import annotations

import gradio as gr
from PIL import Image, ImageDraw, ImageFont

from gvtnet import GVTNet
from gvtnet.images import ImageError
from gvtnet.photo import PhotoResult, restore_photo

from ..state import MODELS
from .inputs import open_upload, png

# A photo is reduced so that its restoration is at most this many px a side: the before/after images stay
# quick to encode and to send, and a face that the reduction shrinks below the detector's reach is rare.
PHOTO_SIDE = 2048
RESTORED, LEFT = (0, 255, 102), (255, 160, 0)  # box colours: restored, left to the background


def photo_view(path, scale, ensemble, preset, custom: GVTNet | None, progress=None) -> dict:
    """Every face of an uploaded photo restored by the session's GVTNet (gvtnet.restore_photo);
    progress(done, total) follows the faces. Returns files and values for the Photo tab: 'boxes' (the
    bicubic photo with every face boxed and numbered), 'slider' (restored, bicubic), 'gallery' [(file,
    caption)] and 'faces' [(number, LR crop)] of the restored faces in the same order, 'notes' (markdown),
    'download'. What a visitor can get wrong (the photo, a scale without shipped weights) raises gr.Error
    with the reason."""
    try:
        model = custom if custom is not None else MODELS.gvtnet(preset, int(scale))
    except FileNotFoundError as e:
        raise gr.Error(f"Cannot restore photos at x{int(scale)}: {e}.") from e
    scale = model.cfg.upscale
    img = open_upload(path, keep_alpha=True)
    notes = []
    if max(img.size) * scale > PHOTO_SIDE:
        img = img.copy()
        img.thumbnail((PHOTO_SIDE // scale, PHOTO_SIDE // scale), Image.BICUBIC)
        notes.append(f"The photo was reduced to {img.width}x{img.height}, so that its x{scale} restoration "
                     f"is at most {PHOTO_SIDE} px a side.")
    try:
        res = restore_photo(model, img, ensemble=ensemble or None, progress=progress)
    except ImageError as e:
        raise gr.Error(f"Cannot use this photo: {e}.") from e
    restored = [(i, f) for i, f in enumerate(res.faces, 1) if f.sr is not None]
    found = f"{len(res.faces)} face{'s' if len(res.faces) != 1 else ''} found, {len(restored)} restored."
    restored_png = png(res.photo, f"photo-x{scale}")
    return {
        "boxes": png(boxed(res), "faces-found"),
        "slider": (restored_png, png(res.bicubic, f"photo-bicubic-x{scale}")),
        "gallery": [(png(f.sr, f"face-{i}"), f"{i}: {f.lr.width} px -> {f.sr.width} px") for i, f in restored],
        "faces": [(i, f.lr) for i, f in restored],
        "notes": " ".join([found, *notes, *(n[0].upper() + n[1:] for n in res.notes)]),
        "download": restored_png,
    }


def boxed(res: PhotoResult) -> Image.Image:
    """The bicubic photo with each face's box drawn and numbered: RESTORED or LEFT to the background."""
    img = res.bicubic.convert("RGB")
    draw = ImageDraw.Draw(img)
    width = max(2, max(img.size) // 300)
    font = ImageFont.load_default(size=max(12, max(img.size) // 40))
    for i, f in enumerate(res.faces, 1):
        colour = RESTORED if f.sr is not None else LEFT
        left, top, right, bottom = (v * res.scale for v in f.box)
        draw.rectangle((left, top, right - 1, bottom - 1), outline=colour, width=width)
        draw.text((left + 2 * width, top + width), str(i), fill=colour, font=font, stroke_width=2,
                  stroke_fill=(0, 0, 0))
    return img


def chosen_face(faces: list[tuple[int, Image.Image]], index: int) -> tuple[str, int]:
    """(file of the LR crop, face number) of the restored face at `index` of the gallery, for the face
    input."""
    if not faces or not 0 <= int(index) < len(faces):
        raise gr.Error("Restore a photo first, then choose one of its faces.")
    number, lr = faces[int(index)]
    return png(lr, f"face-{number}"), number
