"""Shared test fixtures. Data from ../shared is research-only and never copied into the project: tests
that need it skip, with the reason, where it is absent (CI checks that it is present)."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import gvtnet

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FIXTURES = SHARED / "fixtures" / "released-gvtnet"
FACES_TRAIN = SHARED / "data" / "faces-train"
CELEBA_TEST = SHARED / "data" / "celeba-test-1000"
ASSETS = ROOT / "assets"
ARTIFACTS = ROOT / "test-artifacts"  # screenshots and server logs, for people to look at

torch.set_num_threads(2)


def need(path: Path) -> Path:
    """The path, or a skip with the reason; in CI (CI set) a missing path is a failure, not a skip."""
    if not path.exists():
        reason = f"{path} is absent (research data/fixtures live in ../shared beside the project)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture
def fixtures_dir() -> Path:
    return need(FIXTURES)


@pytest.fixture
def celeba_test() -> Path:
    return need(CELEBA_TEST)


@pytest.fixture
def faces_train() -> Path:
    return need(FACES_TRAIN)


@pytest.fixture(scope="session")
def astronaut() -> Image.Image:
    """skimage's astronaut (Eileen Collins), whole image, RGB."""
    from skimage import data

    return Image.fromarray(data.astronaut())


@pytest.fixture(scope="session")
def grace_hopper() -> Image.Image:
    import matplotlib.cbook

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        return Image.open(f).convert("RGB")


def face_crop(img: Image.Image, box: tuple[int, int, int, int], size: int = 128) -> Image.Image:
    return img.crop(box).resize((size, size), Image.BICUBIC)


@pytest.fixture(scope="session")
def astronaut_face(astronaut) -> Image.Image:
    """The astronaut's face, 128x128."""
    return face_crop(astronaut, (150, 20, 330, 200))


@pytest.fixture(scope="session")
def hopper_face(grace_hopper) -> Image.Image:
    """Grace Hopper's face, 128x128."""
    return face_crop(grace_hopper, (145, 95, 385, 335))


def to_array(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"))


def perturbed(preset: str, std: float = 0.05, only: str = "", **config):
    """An untrained model (seed 0, eval mode) whose parameters named with `only` in their name (all by
    default) are drawn from N(0, std): light presets start as exact bicubic, whose output does not depend
    on the body, and at initialisation the attention is near uniform. `config` overrides the preset."""
    torch.manual_seed(0)
    model = gvtnet.build_model(preset, **config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if only in name:
                p.normal_(0, std)
    return model


# ----------------------------------------------------------------------------------------------------
# A live server, as `python app.py` runs it


@contextlib.contextmanager
def running_app(timeout: float = 300):
    """`python app.py` on a free port (benchmarks/server.py); yields its URL once it answers, stops it
    afterwards. Its log goes to test-artifacts/."""
    from benchmarks.server import serve

    with serve(ARTIFACTS, timeout) as server:
        yield server.url


# Browser tests drive Debian's Chromium through Playwright (never a downloaded browser).
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
SLOW = 120_000  # ms a browser test waits for the page: the machine may be busy


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium, one per test module; skips, saying why, where Debian's chromium is absent."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (install Debian's chromium to run the browser tests)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def app_url():
    """One live app for the whole session, shared by the API and browser tests."""
    with running_app() as url:
        yield url
