"""The Photo tab: every face of a whole photo restored and blended back, and one of them chosen as the
face of the other tabs."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
from PIL import Image, ImageDraw, ImageFont

from gvtnet import GVTNet
from gvtnet.images import ImageError
from gvtnet.photo import PhotoResult, restore_photo

from ..context import PRIVATE, Context, values
from ..examples import group_file
from ..state import MODELS, SESSION_TTL_S
from .inputs import CENTRE, IMAGE, REAL, PhotoInput, open_upload, png

TITLE = "Photo"

# A photo is reduced so that its restoration is at most this many px a side: the before/after images stay
# quick to encode and to send, and a face that the reduction shrinks below the detector's reach is rare.
PHOTO_SIDE = 2048
RESTORED, LEFT = (0, 255, 102), (255, 160, 0)  # box colours: restored, left to the background


@dataclass(frozen=True)
class PhotoView:
    """What the Photo tab shows: boxes, the bicubic photo with every face boxed and numbered; notes
    (markdown); slider, (restored, bicubic); gallery [(file, caption)] and faces [(number, LR crop)] of the
    restored faces in the same order; download, the restored photo's file."""

    boxes: str
    notes: str
    slider: tuple[str, str]
    gallery: list
    download: str
    faces: list


def photo_view(path, scale, ensemble, preset, custom: GVTNet | None, progress=None) -> PhotoView:
    """Every face of an uploaded photo restored by the session's GVTNet (gvtnet.restore_photo);
    progress(done, total) follows the faces. What a visitor can get wrong (the photo, a scale without
    shipped weights) raises gr.Error with the reason."""
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
    return PhotoView(
        boxes=png(boxed(res), "faces-found"),
        notes=" ".join([found, *notes, *(n[0].upper() + n[1:] for n in res.notes)]),
        slider=(restored_png, png(res.bicubic, f"photo-bicubic-x{scale}")),
        gallery=[(png(f.sr, f"face-{i}"), f"{i}: {f.lr.width} px -> {f.sr.width} px") for i, f in restored],
        download=restored_png,
        faces=[(i, f.lr) for i, f in restored],
    )


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


def build(ctx: Context) -> None:
    gr.Markdown("Every face of a whole photo, restored and blended back into a bicubic upscale of it (scale, "
                "self-ensemble and model as in the rest of the app). Choose a face below to make it the face "
                "every other tab shows.")
    with gr.Row():
        with gr.Column(scale=1):
            photo = PhotoInput(label="Whole photo", elem_id="group-photo", sources=["upload", "clipboard"],
                               height=260, **IMAGE)
            gr.Examples([group_file()], inputs=photo, label="Composed photo (no download)")
        boxes = gr.Image(label="Faces found: green restored, orange left to the background", interactive=False,
                         height=320, scale=2, elem_id="photo-boxes", **IMAGE)
    notes = gr.Markdown(elem_id="photo-notes")
    slider = gr.ImageSlider(label="Restored | bicubic: drag the handle to compare", max_height=480,
                            elem_id="photo-slider", **IMAGE)
    gallery = gr.Gallery(label="Restored faces: click one to show it in every tab", columns=6, height="auto",
                         format="png", allow_preview=False, elem_id="photo-faces")
    download = gr.DownloadButton("Download the restored photo (PNG)")
    faces = gr.State([], time_to_live=SESSION_TTL_S)  # (number, LR crop) of each gallery face
    outputs = [boxes, notes, slider, gallery, download, faces]

    def on_photo(path, scale, ensemble, preset, custom, progress=gr.Progress()):
        if path is None:  # the photo was cleared
            return None, "", None, [], None, []
        return values(photo_view(path, scale, ensemble, preset, custom,
                                 lambda done, total: progress((done, total), desc="faces")))

    def on_choose(faces_, mode, crop, evt: gr.SelectData):
        # The face becomes the input of the left column, as it is (real mode, no crop), which restores it.
        # A setting already right is left alone: each change would restore the face once more.
        path, number = chosen_face(faces_, evt.index)
        gr.Info(f"Face {number} is now the face of the other tabs.")
        return path, REAL if mode != REAL else gr.update(), CENTRE if crop != CENTRE else gr.update()

    def wire():  # the Model tab's preset and uploads exist once every tab is built
        inputs = [photo, ctx.scale, ctx.ensemble, ctx.preset, ctx.custom]
        gr.on([photo.change, ctx.scale.change, ctx.ensemble.change, ctx.preset.change], on_photo, inputs, outputs,
              trigger_mode="always_last", **PRIVATE)
        for uploaded in ctx.uploads:
            uploaded.success(on_photo, inputs, outputs, **PRIVATE)

    ctx.after_build(wire)
    gallery.select(on_choose, [faces, ctx.mode, ctx.crop], [ctx.photo, ctx.mode, ctx.crop], **PRIVATE)
