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
from .inputs import CENTRE, IMAGE, REAL, PhotoInput, UserError, check_size, open_upload, png

TITLE = "Photo"

# A photo is reduced so that its restoration is at most this many px a side: the before/after images stay
# quick to encode and to send, and a face that the reduction shrinks below the detector's reach is rare.
PHOTO_SIDE = 2048
RESTORED, LEFT = (0, 255, 102), (255, 160, 0)  # box colours: restored, left to the background


@dataclass(frozen=True)
class PhotoView:
    """What the Photo tab shows: boxes, the bicubic photo with every face boxed and numbered; notes
    (markdown); slider, (restored, bicubic); gallery [(file, caption)] and faces [(number, LR crop)] of the
    restored faces in the same order; download, the restored photo's file; found, every face's box
    (left, top, right, bottom) in the uploaded photo's pixels, numbered as on `boxes`, restored or not."""

    boxes: str
    notes: str
    slider: tuple[str, str]
    gallery: list
    download: str
    faces: list
    found: list


def parse_boxes(text: str) -> list[tuple[int, int, int, int]]:
    """Face boxes typed by a visitor: four whole numbers (left, top, right, bottom) per box, boxes separated
    by ';' or new lines; gr.Error saying how where the text is not that."""
    boxes = []
    for part in text.replace("\n", ";").split(";"):
        if not part.strip():
            continue
        try:
            box = tuple(int(round(float(v))) for v in part.replace("(", "").replace(")", "").split(","))
        except ValueError:
            box = ()
        if len(box) != 4 or box[2] <= box[0] or box[3] <= box[1]:
            raise UserError(f"'{part.strip()}' is not a face box: give left, top, right, bottom in the photo's "
                            "pixels (right > left, bottom > top), e.g. 40, 12, 72, 44; boxes separated by ';'.")
        boxes.append(box)
    return boxes


def photo_view(path, scale, ensemble, preset, custom: GVTNet | None, progress=None, boxes=None) -> PhotoView:
    """Every face of an uploaded photo restored by the session's GVTNet (gvtnet.restore_photo): those found,
    or the `boxes` given ((left, top, right, bottom) in the uploaded photo's pixels); progress(done, total)
    follows the faces. What a visitor can get wrong (the photo, a scale without shipped weights) raises
    gr.Error with the reason."""
    try:
        model = custom if custom is not None else MODELS.gvtnet(preset, int(scale))
    except FileNotFoundError as e:
        raise UserError(f"Cannot restore photos at x{int(scale)}: {e}.") from e
    scale = model.cfg.upscale
    img = open_upload(path, keep_alpha=True)
    check_size(img)  # as the main input does
    width = img.width
    notes = []
    if max(img.size) * scale > PHOTO_SIDE:
        img = img.copy()
        img.thumbnail((PHOTO_SIDE // scale, PHOTO_SIDE // scale), Image.BICUBIC)
        notes.append(f"The photo was reduced to {img.width}x{img.height}, so that its x{scale} restoration "
                     f"is at most {PHOTO_SIDE} px a side.")
    ratio = img.width / width  # the reduction above, if any
    if boxes is not None:
        boxes = [tuple(round(v * ratio) for v in b) for b in boxes]
    try:
        res = restore_photo(model, img, boxes=boxes, ensemble=ensemble or None, progress=progress)
    except ImageError as e:
        raise UserError(f"Cannot use this photo: {e}.") from e
    restored = [(i, f) for i, f in enumerate(res.faces, 1) if f.sr is not None]
    found = (f"{len(res.faces)} face{'s' if len(res.faces) != 1 else ''} {'found' if boxes is None else 'given'}, "
             f"{len(restored)} restored.")
    restored_png = png(res.photo, f"photo-x{scale}")
    return PhotoView(
        boxes=png(boxed(res), "faces-found"),
        notes=" ".join([found, *notes, *(n[0].upper() + n[1:] for n in res.notes)]),
        slider=(restored_png, png(res.bicubic, f"photo-bicubic-x{scale}")),
        gallery=[(png(f.sr, f"face-{i}"), f"{i}: {f.lr.width} px -> {f.sr.width} px") for i, f in restored],
        download=restored_png,
        faces=[(i, f.lr) for i, f in restored],
        found=[tuple(round(v / ratio) for v in f.box) for f in res.faces],
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
        raise UserError("Restore a photo first, then choose one of its faces.")
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
    chosen = gr.Markdown(elem_id="photo-chosen")  # which face the other tabs show: a line here, not a toast
    with gr.Row():
        kept = gr.CheckboxGroup(label="Faces to restore (numbered as above, box in the photo's pixels): untick a "
                                      "false face", elem_id="photo-kept", scale=2)
        added = gr.Textbox(label="Add face boxes the finder missed: left, top, right, bottom in the photo's pixels, "
                                 "';' between boxes", placeholder="40, 12, 72, 44", elem_id="photo-add", scale=2)
        rebox = gr.Button("Restore these faces", elem_id="photo-rebox", scale=1)
    download = gr.DownloadButton("Download the restored photo (PNG)")
    faces = gr.State([], time_to_live=SESSION_TTL_S)  # (number, LR crop) of each gallery face
    found = gr.State([], time_to_live=SESSION_TTL_S)  # every face's box, numbered as on the boxed photo
    outputs = [boxes, notes, slider, gallery, download, faces, found, kept, added, chosen]

    def shown(path, scale, ensemble, preset, custom, progress, boxes=None) -> list:
        """The outputs of the photo's faces restored (those found, or `boxes`), the face list reset to them."""
        v = photo_view(path, scale, ensemble, preset, custom, lambda done, total: progress((done, total), desc="faces"),
                       boxes=boxes)
        choices = [(f"{i}: {box}", i) for i, box in enumerate(v.found, 1)]
        return [*values(v), gr.update(choices=choices, value=[i for _, i in choices]), "", ""]

    def on_photo(path, scale, ensemble, preset, custom, progress=gr.Progress()):
        if path is None:  # the photo was cleared
            return None, "", None, [], None, [], [], gr.update(choices=[], value=[]), "", ""
        return shown(path, scale, ensemble, preset, custom, progress)

    def on_rebox(path, scale, ensemble, preset, custom, found_, kept_, added_, progress=gr.Progress()):
        if path is None:
            raise UserError("Upload a photo first, then choose its faces.")
        chosen_boxes = [tuple(found_[i - 1]) for i in kept_ or [] if 0 < i <= len(found_)] + parse_boxes(added_ or "")
        if not chosen_boxes:
            raise UserError("No face left to restore: tick a face above or add a box.")
        return shown(path, scale, ensemble, preset, custom, progress, boxes=chosen_boxes)

    def on_choose(faces_, mode, crop, evt: gr.SelectData):
        # The face becomes the input of the left column, as it is (real mode, no crop), which restores it once
        # (app/tabs/restore.py follows this event through ctx.loads).
        path, number = chosen_face(faces_, evt.index)
        lr = dict(faces_)[number]
        return (path, REAL if mode != REAL else gr.update(), CENTRE if crop != CENTRE else gr.update(),
                f"Face {number} ({lr.width}x{lr.height} px) is now the face of the other tabs, restored as it is.")

    def wire():  # the Model tab's preset and uploads exist once every tab is built
        inputs = [photo, ctx.scale, ctx.ensemble, ctx.preset, ctx.custom]
        gr.on([photo.change, ctx.scale.input, ctx.ensemble.input, ctx.preset.input], on_photo, inputs, outputs,
              trigger_mode="always_last", **PRIVATE)
        for uploaded in ctx.uploads:
            uploaded.success(on_photo, inputs, outputs, **PRIVATE)
        rebox.click(on_rebox, [*inputs, found, kept, added], outputs, **PRIVATE)

    ctx.after_build(wire)
    ctx.loads.append(gallery.select(on_choose, [faces, ctx.mode, ctx.crop], [ctx.photo, ctx.mode, ctx.crop, chosen],
                                    **PRIVATE))
