"""The examples, made from images that ship with scikit-image and matplotlib (nothing is downloaded) and
written once per machine as lossless PNG files for gr.Examples: two face crops, real low-resolution faces
from LFW, and a composed photo of several faces for the Photo tab."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import matplotlib.cbook
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps
from skimage import data

from gvtnet.images import degrade

EXAMPLE_DIR = Path(tempfile.gettempdir()) / "gvtnet-explorer-examples"
# Square boxes (left, top, right, bottom) around each head, as in tests/conftest.py.
CROPS = {"astronaut": (150, 20, 330, 200), "grace-hopper": (145, 95, 385, 335)}
# Faces of scikit-image's lfw_subset (real 25x25 grayscale photographs; its first 100 images are faces).
LFW_FACES = (1, 18, 31)
# The composed photo: (head, side in px, left, top, mirrored) on a 480x224 canvas, the heads' squares
# overlapping a little, as people standing close together do.
GROUP_SIZE = (480, 224)
GROUP = (("astronaut", 136, 16, 44, False), ("grace-hopper", 128, 140, 64, False),
         ("astronaut", 144, 256, 36, True))
GROUP_SCALE = 4  # the example photo is the composition downscaled by this, faces about 32 px


def _source(name: str) -> Image.Image:
    if name == "astronaut":
        return Image.fromarray(data.astronaut())
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        return Image.open(f).convert("RGB")


def lfw_face(index: int) -> Image.Image:
    """Face `index` of scikit-image's lfw_subset: 25x25, grayscale ('L')."""
    return Image.fromarray((data.lfw_subset()[index] * 255 + 0.5).astype(np.uint8), "L")


def group_photo() -> tuple[Image.Image, list[tuple[int, int, int, int]]]:
    """(photo, boxes): the heads of GROUP on a blurred cafe table (scikit-image's coffee), each through a
    soft oval so that no square edge shows, and each head's square box (left, top, right, bottom)."""
    photo = Image.fromarray(data.coffee()).resize(GROUP_SIZE, Image.BICUBIC).filter(ImageFilter.GaussianBlur(3))
    boxes = []
    for name, side, left, top, mirrored in GROUP:
        head = _source(name).crop(CROPS[name]).resize((side, side), Image.BICUBIC)
        head = ImageOps.mirror(head) if mirrored else head
        oval = Image.new("L", (side, side))
        ImageDraw.Draw(oval).ellipse((side // 12, 0, side - side // 12, side + side // 6), fill=255)
        photo.paste(head, (left, top), oval.filter(ImageFilter.GaussianBlur(side / 24)))
        boxes.append((left, top, left + side, top + side))
    return photo, boxes


def _write(path: Path, make) -> str:
    if not path.is_file():
        # written under a private name and renamed, so two app processes starting together never read a
        # half-written example
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.png")
        make().save(tmp, format="PNG")
        tmp.replace(path)
    return str(path)


def example_files() -> list[str]:
    """Paths of the example face crops, written on first use."""
    EXAMPLE_DIR.mkdir(parents=True, exist_ok=True)
    return [_write(EXAMPLE_DIR / f"{name}.png", lambda name=name, box=box: _source(name).crop(box))
            for name, box in CROPS.items()]


def lfw_files() -> list[str]:
    """Paths of the real low-resolution LFW faces (25x25 grayscale), written on first use."""
    EXAMPLE_DIR.mkdir(parents=True, exist_ok=True)
    return [_write(EXAMPLE_DIR / f"lfw-{i}.png", lambda i=i: lfw_face(i)) for i in LFW_FACES]


def group_file() -> str:
    """Path of the composed photo, downscaled by GROUP_SCALE (a real low-resolution photo to restore)."""
    EXAMPLE_DIR.mkdir(parents=True, exist_ok=True)
    return _write(EXAMPLE_DIR / f"group-x{GROUP_SCALE}.png", lambda: degrade(group_photo()[0], GROUP_SCALE))
