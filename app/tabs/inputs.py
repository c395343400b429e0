"""What several tabs share: the uploaded face read, cropped and degraded, a model's restoration of it, the
large face to click a pixel on, and the fresh files that every image handed to Gradio is written to."""
from __future__ import annotations

import logging
import math
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

import gradio as gr
from PIL import Image, ImageDraw

from analysis import graphs
from gvtnet import GVTNet
from gvtnet.faces import find_face
from gvtnet.images import HR_SIZE, ImageError, center_square, degrade, open_image
from gvtnet.inference import super_resolve, to_image, to_tensor
from gvtnet.photo import MAX_FACE

from ..state import MAX_IMAGE_BYTES, Session

log = logging.getLogger("app")

MIN_INPUT_SIDE = 16  # px: smaller images hold no face worth restoring
# Big photos are reduced to this side before the face is cropped: the face ends up 128 px anyway, and
# detection and cropping stay fast. (open_image refuses files too large to decode safely.)
WORK_SIDE = 1024
# A real low-resolution face is restored as it is up to this side, the Photo tab's too (gvtnet.photo
# restores faces up to it); a larger one is as detailed as the model's outputs, and is reduced to it, once
# said, since every view's cost grows with the pixels (LAM on a 64 px face takes minutes on two cores).
REAL_MAX_SIDE = MAX_FACE
SIMULATE, REAL = "simulate", "real"
FACE, CENTRE = "face", "centre"
P_CHOICES = {"model's own": None, "1": 1.0, "2": 2.0, "3": 3.0, "∞": math.inf}
IMAGE = dict(format="png", type="filepath")  # lossless: Gradio's default WebP would falsify any measurement


class PhotoInput(gr.Image):
    """gr.Image that passes the uploaded file on untouched. Gradio's own preprocessing opens the file with
    PIL first, so a damaged upload would fail there with a generic message instead of ours."""

    def preprocess(self, payload):
        if payload is None or payload.path is None:  # nothing, or a data: URL
            return super().preprocess(payload)
        return payload.path

    def get_block_name(self) -> str:
        return "image"  # the frontend's component


class UserError(gr.Error):
    """What a visitor can get wrong (a missing face, a bad file, a value out of range): shown as a short-lived
    message, logged as one line without a traceback (real faults keep theirs)."""

    DURATION_S = 6  # short-lived: a message never stays stacked over the tab bar

    def __init__(self, message: str):
        super().__init__(message, duration=self.DURATION_S, print_exception=False)
        log.info("user error: %s", message)


def no_face():
    """Refuse an action that needs a face before one was chosen."""
    raise UserError("Pick a face first: upload a photo, use the webcam, or click an example.")


def check_size(img: Image.Image) -> None:
    """Refuse an image too small to hold a face worth restoring (every input of the app: the face, the photo)."""
    if min(img.size) < MIN_INPUT_SIDE:
        raise UserError(f"The image is too small ({img.width}x{img.height}): at least {MIN_INPUT_SIDE} px a side "
                        "is needed.")

# Every image handed to Gradio is a new file of its own. Gradio caches returned PIL images under a hash of
# their bytes, so visitors restoring the same example at once would rewrite one file while another reads
# it; a fresh path per result is copied into the cache atomically instead.
_OUTPUT_ROOT = Path(tempfile.gettempdir()) / "gvtnet-explorer-outputs"
_KEEP_S = 600  # Gradio copies a result the moment it is returned; older files are only clutter
_CLEAN_EVERY_S = 60  # a scan of the folder per image would cost more than the image
_last_clean = [0.0]
_clean_lock = threading.Lock()


def _remove_old_outputs() -> None:
    now = time.time()
    with _clean_lock:
        if now - _last_clean[0] < _CLEAN_EVERY_S:
            return
        _last_clean[0] = now
    for old in _OUTPUT_ROOT.iterdir():
        try:
            if now - old.stat().st_mtime > _KEEP_S:
                shutil.rmtree(old, ignore_errors=True)
        except FileNotFoundError:  # another request removed it first
            pass


def png(img: Image.Image, name: str) -> str:
    """Write `img` losslessly to a fresh file called `name`.png and return its path."""
    _OUTPUT_ROOT.mkdir(parents=True, exist_ok=True)
    _remove_old_outputs()
    folder = _OUTPUT_ROOT / uuid.uuid4().hex
    folder.mkdir()
    path = folder / f"{name}.png"
    img.save(path, format="PNG")
    return str(path)


def open_upload(path: str | None, keep_alpha: bool = False) -> Image.Image:
    """The uploaded file as gvtnet.images.open_image reads it; gr.Error with the reason where it cannot
    be used."""
    if path is None:
        raise UserError("Upload a photo, take one with the webcam, or pick an example.")
    size = Path(path).stat().st_size if Path(path).is_file() else 0
    if size > MAX_IMAGE_BYTES:
        raise UserError(f"The file is {size / 1e6:.0f} MB: photos up to {MAX_IMAGE_BYTES / 1e6:.0f} MB are accepted.")
    try:
        return open_image(path, keep_alpha=keep_alpha)
    except ImageError as e:
        raise UserError(f"Cannot use this image: {e}.") from e


def prepare(path: str | None, scale: int, mode: str, crop: str) -> tuple[Image.Image | None, Image.Image, list[str]]:
    """(hr, lr, notices) from an uploaded file. simulate: hr is the 128x128 face and lr its bicubic
    downscale; real: hr is None and lr the square face as uploaded, at its own size (reduced only above
    REAL_MAX_SIDE, once said)."""
    img = open_upload(path)
    check_size(img)
    notices = []
    if max(img.size) > WORK_SIDE:
        img = img.copy()
        img.thumbnail((WORK_SIDE, WORK_SIDE), Image.BICUBIC)
    box = find_face(img) if crop == FACE else None
    if crop == FACE and box is None:
        notices.append("No face found: the centre square is used instead.")
    square = img.crop(box) if box else center_square(img, min(img.size))
    if mode == SIMULATE:
        if square.width < HR_SIZE:
            notices.append(f"The face is only {square.width} px wide, so the 'original' is itself an upscale.")
        hr = square if square.width == HR_SIZE else square.resize((HR_SIZE, HR_SIZE), Image.BICUBIC)
        return hr, degrade(hr, scale), notices
    side = min(square.width, REAL_MAX_SIDE)
    if side < square.width:
        notices.append(f"The {square.width} px input was reduced to {side} px: a face this large is already as "
                       "detailed as the model's outputs, and every view's cost grows with its pixels.")
        square = square.resize((side, side), Image.BICUBIC)
    return None, square, notices


def sr_image(model: GVTNet, lr: Image.Image, ensemble: str | None = None) -> Image.Image:
    """The model's restoration of `lr` (averaged over an `ensemble` of gvtnet.inference.ENSEMBLES, if given),
    grayscale if `lr` is."""
    out = super_resolve(model, to_tensor(lr), ensemble)
    return to_image(out, "L" if lr.mode == "L" else "RGB")


def picker_cell(s: Session) -> int:
    """Screen pixels per LR pixel of the large clickable faces (`face_picker`, the graph view)."""
    return graphs.cell_size((s.lr.height, s.lr.width))


def face_picker(s: Session, mark: tuple[int, int] | None = None) -> str:
    """The face as a large file to click on (nearest-upscaled, each LR pixel `picker_cell(s)` px, so that
    `lr_pixel` reads a click back), with the LR pixel `mark` outlined."""
    k = picker_cell(s)
    img = graphs.face_canvas(s.face, (s.lr.height, s.lr.width), k)
    if mark is not None:
        r, c = mark[0] * k, mark[1] * k
        ImageDraw.Draw(img).rectangle((c - 2, r - 2, c + k + 1, r + k + 1), outline=(0, 255, 102), width=3)
    return png(img, "face")


def lr_pixel(s: Session, xy) -> tuple[int, int] | None:
    """The LR pixel (row, col) under a click at xy = (x, y) on a large face (`face_picker`, the graph view);
    None for no position (Gradio sends None when the click did not land on the image)."""
    if not xy or xy[0] is None or xy[1] is None:
        return None
    cell = picker_cell(s)
    row = min(max(int(xy[1]) // cell, 0), s.lr.height - 1)
    col = min(max(int(xy[0]) // cell, 0), s.lr.width - 1)
    return row, col


def clamp(i, n: int) -> int:
    """i made a valid index of n items (sliders may hold values of a previous, larger model)."""
    return min(max(int(i), 0), n - 1)
