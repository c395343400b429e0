"""The two example faces, made from images that ship with scikit-image and matplotlib (nothing is
downloaded) and written once per machine as lossless PNG files for gr.Examples."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import matplotlib.cbook
from PIL import Image
from skimage import data

EXAMPLE_DIR = Path(tempfile.gettempdir()) / "gvtnet-explorer-examples"
# Square boxes (left, top, right, bottom) around each head, as in tests/conftest.py.
CROPS = {"astronaut": (150, 20, 330, 200), "grace-hopper": (145, 95, 385, 335)}


def _source(name: str) -> Image.Image:
    if name == "astronaut":
        return Image.fromarray(data.astronaut())
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        return Image.open(f).convert("RGB")


def example_files() -> list[str]:
    """Paths of the example face crops, written on first use."""
    EXAMPLE_DIR.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, box in CROPS.items():
        path = EXAMPLE_DIR / f"{name}.png"
        if not path.is_file():
            # written under a private name and renamed, so two app processes starting together never
            # read a half-written example
            tmp = path.with_name(f".{name}.{os.getpid()}.png")
            _source(name).crop(box).save(tmp, format="PNG")
            tmp.replace(path)
        paths.append(str(path))
    return paths
