"""What the app keeps: the shipped models, loaded once and shared by every visitor, and one visitor's
session (kept in gr.State, so no visitor sees another's face or results); how long it keeps a session, and
the limits a public Space needs."""
from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
from PIL import Image

import gvtnet
from gvtnet import GVTNet
from gvtnet.compat import return_freed_memory
from gvtnet.weights import MAX_CHECKPOINT_BYTES

from .compat import forget_session, session_hashes

ASSETS = Path(__file__).resolve().parents[1] / "assets"
MODEL_CARD = ASSETS / "MODEL_CARD.md"
ABLATION_RESULTS = ASSETS.parent / "docs" / "ablation-results.json"

# Limits (docs/PERFORMANCE.md, Reliability). Gradio's max_file_size applies to every upload, so it is the
# larger cap, the checkpoints' (gvtnet.weights also caps their parameters); photos are capped in tabs/inputs.py.
MAX_IMAGE_BYTES = 50_000_000
MAX_UPLOAD_BYTES = MAX_CHECKPOINT_BYTES
# A visitor's session and uploaded model are released when the tab closes (see `Visitors`), else an hour
# after they last changed (gr.State's time to live).
SESSION_TTL_S = 3600
# Gradio keeps a record of each session (a copy of the page's config with the last value of every output:
# about 2 MB here) until this many exist; those of visitors who left are dropped at once (`Visitors`).
SESSION_CAPACITY = 500

log = logging.getLogger(__name__)


class Models:
    """The shipped weights in `assets/`: gvtnet-<preset>-x<scale>.safetensors and its SwinIR baseline
    swinir-<preset>-x<scale>.safetensors. Each file is loaded on first use as a frozen snapshot
    (`gvtnet.freeze`: safe for every visitor's thread at once) and then shared read-only: per-request graph
    settings go through `model.variant`, which never touches the shared model."""

    def __init__(self, assets: Path = ASSETS):
        self.assets = assets
        self._loaded: dict[str, GVTNet] = {}
        self._lock = threading.Lock()  # two first visitors must not load the same file twice

    def presets(self) -> list[str]:
        """Presets with shipped GVTNet weights, e.g. ['light']."""
        found = (re.fullmatch(r"gvtnet-(.+)-x\d+\.safetensors", p.name) for p in self.assets.glob("gvtnet-*"))
        return sorted({m.group(1) for m in found if m})

    def shipped(self) -> dict[str, GVTNet]:
        """Every shipped file, by name, loaded (once) as a frozen snapshot."""
        return {path.name: self._get(path.name) for path in sorted(self.assets.glob("*.safetensors"))}

    def preload(self) -> None:
        """Load every shipped file now, so that the first visitor does not wait for it."""
        self.shipped()

    def gvtnet(self, preset: str, scale: int) -> GVTNet:
        model = self._get(f"gvtnet-{preset}-x{scale}.safetensors")
        if model is None:
            raise FileNotFoundError(f"no shipped GVTNet weights for preset '{preset}' at x{scale}")
        return model

    def baseline(self, preset: str, scale: int) -> GVTNet | None:
        """The SwinIR baseline trained like the preset, or None where none is shipped."""
        return self._get(f"swinir-{preset}-x{scale}.safetensors")

    def no_graph(self, preset: str, scale: int) -> GVTNet | None:
        """GVTNet without its graph (strided windows, depthwise q/k/v, Swin-type blocks only), fine-tuned from
        the shipped GVTNet as docs/ABLATION.md describes; None where none is shipped."""
        return self._get(f"strided-{preset}-x{scale}.safetensors")

    def _get(self, name: str) -> GVTNet | None:
        with self._lock:
            if name not in self._loaded:
                path = self.assets / name
                if not path.is_file():
                    return None
                self._loaded[name] = gvtnet.freeze(gvtnet.load_model(path))
            return self._loaded[name]


MODELS = Models()


@dataclass
class Session:
    """One visitor's face and what was computed on it.

    hr: the 128x128 original face (simulate mode) or None (a real low-resolution input); lr: the network's
    input; model / baseline_model: the GVTNet used (shared or the visitor's upload) and the SwinIR baseline;
    sr / bicubic / baseline: restorations at the SR size. inspection: the GVTNet's graphs and
    attention under `graph_settings` (a gvtnet.GraphSettings), recomputed only when those change;
    attention_inspections: those of the models the Attention tab compares that do not depend on the settings;
    drawn: what each tab last drew for this face ({tab title: its inputs}), so that showing a tab again
    redraws nothing. graph_pixel: the LR
    pixel clicked on the graph view (its window and node are looked up in each group); query: the
    attention query (LR pixel); lam_centre: the LAM window's centre (SR pixel). others / others_sr: uploaded
    models of other architectures (gvtnet.load_sr_model) compared beside GVTNet, by name, and their
    restorations."""

    hr: Image.Image | None
    lr: Image.Image
    scale: int
    model: GVTNet
    baseline_model: GVTNet | None
    sr: Image.Image
    bicubic: Image.Image
    baseline: Image.Image | None
    inspection: object | None = None
    graph_settings: object | None = None
    drawn: dict = field(default_factory=dict)
    attention_inspections: dict = field(default_factory=dict)
    others: dict = field(default_factory=dict)
    others_sr: dict = field(default_factory=dict)
    graph_pixel: tuple[int, int] | None = None
    query: tuple[int, int] = (0, 0)
    lam_centre: tuple[int, int] = (0, 0)
    notices: list[str] = field(default_factory=list)

    @property
    def face(self) -> Image.Image:
        """What the figures draw on: the original where known, else the restoration."""
        return self.hr if self.hr is not None else self.sr


class VisitorLeft(gr.Error):
    """Raised at a long job's progress step once its visitor has gone."""

    def __init__(self, what: str):
        super().__init__(f"{what} stopped: the visitor left", print_exception=False)


class Visitors:
    """Visitors who have left (their tab closed or reloaded: Gradio's unload event), so that their state is
    released at once and their long jobs stop. Gradio lets a running function finish after its visitor has
    gone (only generators stop, at their next yield), and keeps a closed tab's gr.State for an hour."""

    SWEEP_S = 5.0  # how often state that a left visitor's finishing job wrote back is dropped again

    def __init__(self, remember_s: float = SESSION_TTL_S):
        self.remember_s = remember_s
        self._left: dict[str, float] = {}  # session hash -> when it left
        self._lock = threading.Lock()
        self._blocks: gr.Blocks | None = None

    def leave(self, blocks: gr.Blocks, session_hash: str) -> None:
        """The visitor `session_hash` has gone: drop its gr.State values and Gradio's record of the session
        (a copy of the page's config holding the last value of every output, figures included) now, and
        again whenever a job of theirs that was still running writes them back (see `_sweep`)."""
        now = time.monotonic()
        with self._lock:
            self._left = {h: t for h, t in self._left.items() if now - t < self.remember_s}
            self._left[session_hash] = now
            if self._blocks is None:
                threading.Thread(target=self._sweep, daemon=True, name="visitors-sweep").start()
            self._blocks = blocks
        self._drop(session_hash)

    def _drop(self, session_hash: str) -> None:
        forget_session(self._blocks, session_hash)
        return_freed_memory()

    def _sweep(self) -> None:
        while True:
            time.sleep(self.SWEEP_S)
            with self._lock:
                left = list(self._left)
            held = session_hashes(self._blocks)
            for h in left:
                if h in held:
                    self._drop(h)

    def check(self, session_hash: str | None, what: str, done: int, total: int) -> None:
        """Call at each progress step of a long job: raises VisitorLeft once the visitor has gone."""
        if session_hash in self._left:
            log.warning("%s stopped after %d of %d steps: visitor %s left", what, done, total, session_hash)
            raise VisitorLeft(what)


VISITORS = Visitors()
