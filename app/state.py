"""What the app keeps: the shipped models, loaded once and shared by every visitor, and one visitor's
session (kept in gr.State, so no visitor sees another's face or results)."""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

import gvtnet
from gvtnet import GVTNet

# One torch thread per request: on a small, shared CPU, several threads per forward pass spin against each
# other and against the other requests (measured 30x slower under load); the queue runs requests side by side.
torch.set_num_threads(1)

ASSETS = Path(__file__).resolve().parents[1] / "assets"
MODEL_CARD = ASSETS / "MODEL_CARD.md"


class Models:
    """The shipped weights in `assets/`: gvtnet-<preset>-x<scale>.safetensors and its SwinIR baseline
    swinir-<preset>-x<scale>.safetensors. Each file is loaded on first use and then shared read-only:
    per-request graph settings go through `model.variant`, which never touches the shared model."""

    def __init__(self, assets: Path = ASSETS):
        self.assets = assets
        self._loaded: dict[str, GVTNet] = {}
        self._lock = threading.Lock()  # two first visitors must not load the same file twice

    def presets(self) -> list[str]:
        """Presets with shipped GVTNet weights, e.g. ['light']."""
        found = (re.fullmatch(r"gvtnet-(.+)-x\d+\.safetensors", p.name) for p in self.assets.glob("gvtnet-*"))
        return sorted({m.group(1) for m in found if m})

    def preload(self) -> None:
        """Load every shipped file now, so that the first visitor does not wait for it."""
        for path in sorted(self.assets.glob("*.safetensors")):
            self._get(path.name)

    def gvtnet(self, preset: str, scale: int) -> GVTNet:
        model = self._get(f"gvtnet-{preset}-x{scale}.safetensors")
        if model is None:
            raise FileNotFoundError(f"no shipped GVTNet weights for preset '{preset}' at x{scale}")
        return model

    def baseline(self, preset: str, scale: int) -> GVTNet | None:
        """The SwinIR baseline trained like the preset, or None where none is shipped."""
        return self._get(f"swinir-{preset}-x{scale}.safetensors")

    def _get(self, name: str) -> GVTNet | None:
        with self._lock:
            if name not in self._loaded:
                path = self.assets / name
                if not path.is_file():
                    return None
                self._loaded[name] = gvtnet.load_model(path)
            return self._loaded[name]


MODELS = Models()


@dataclass
class Session:
    """One visitor's face and what was computed on it.

    hr: the 128x128 original face (simulate mode) or None (a real low-resolution input); lr: the network's
    input; model / baseline_model: the GVTNet used (shared or the visitor's upload) and the SwinIR baseline;
    sr / bicubic / baseline: restorations at the SR size. inspection: the GVTNet's graphs and
    attention under the graph settings `graph_key`, recomputed only when those change. node: the patch
    selected on the graph view; query: the attention query (LR pixel); lam_centre: the LAM window's centre
    (SR pixel)."""

    hr: Image.Image | None
    lr: Image.Image
    scale: int
    model: GVTNet
    baseline_model: GVTNet | None
    sr: Image.Image
    bicubic: Image.Image
    baseline: Image.Image | None
    inspection: object | None = None
    graph_key: tuple | None = None
    node: int | None = None
    query: tuple[int, int] = (0, 0)
    lam_centre: tuple[int, int] = (0, 0)
    notices: list[str] = field(default_factory=list)

    @property
    def face(self) -> Image.Image:
        """What the figures draw on: the original where known, else the restoration."""
        return self.hr if self.hr is not None else self.sr
