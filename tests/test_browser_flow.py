"""The app as a new user meets it, in headless Chromium (Debian's, driven by Playwright): each action restores
the face once (counted from the server log's "restore N:" lines) and says each thing once, in a status line
rather than stacked toasts; a new face leaves no previous face's figure, table or error in any tab; real
low-resolution faces are restored at their own size; the Photo tab refuses what the main input refuses and
lets the visitor choose the face boxes. Screenshots go to test-artifacts/flow-*.png."""
from __future__ import annotations

import re
import time
from urllib.parse import urlparse

import pytest
from PIL import Image
from test_browser import open_page

from conftest import ARTIFACTS, SLOW

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow]

# Every toast the page shows, recorded as it appears (Gradio removes them after their duration)
WATCH_TOASTS = """
window.__toasts = [];
const seen = new WeakSet();
setInterval(() => {
  for (const e of document.querySelectorAll('[data-testid=toast-text]'))
    if (!seen.has(e)) { seen.add(e); window.__toasts.push(e.innerText.trim()); }
}, 50);
"""


class ServerLog:
    """The app's log (benchmarks/server.py writes it to test-artifacts/server-<port>.log), read from a mark."""

    def __init__(self, url: str):
        self.path = ARTIFACTS / f"server-{urlparse(url).port}.log"
        self.mark()

    def mark(self) -> None:
        self.offset = self.path.stat().st_size

    def since(self) -> str:
        with open(self.path, errors="replace") as f:
            f.seek(self.offset)
            return f.read()

    def restores(self) -> list[str]:
        """The restore lines since the mark ("restore N: file, xS, mode, WxH input")."""
        return re.findall(r"restore \d+: (.*)", self.since())


def toasts(page) -> list[str]:
    """The toasts shown since the last call."""
    return page.evaluate("() => window.__toasts.splice(0)")


def settle(page, quiet_s: float = 1.5):
    """Wait until every image has loaded and no output shows a progress indicator, for quiet_s in a row (a
    chain of events leaves short gaps between its steps)."""
    deadline = time.monotonic() + SLOW / 1000
    quiet_since = None
    while time.monotonic() < deadline:
        busy = page.evaluate("() => ![...document.images].every(i => i.complete || i.offsetParent === null) || "
                             "[...document.querySelectorAll('[data-testid=status-tracker]')]"
                             ".some(e => !e.classList.contains('hide') && e.offsetParent !== null && "
                             "!/error/i.test(e.innerText))")
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            return
        time.sleep(0.2)
    raise TimeoutError("the page did not settle")


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"flow-{name}.png", full_page=True)


def tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()


def src(page, selector: str) -> str | None:
    img = page.locator(f"{selector} img")
    return img.first.get_attribute("src") if img.count() else None


def error_badges(page) -> int:
    """Visible red 'Error' badges of outputs (Gradio's status tracker after a failed event)."""
    return page.evaluate("() => [...document.querySelectorAll('[data-testid=status-tracker]')]"
                         ".filter(e => e.offsetParent !== null && /error/i.test(e.className + ' ' + e.innerText))"
                         ".length")


def example(page, index: int) -> None:
    """Click example `index` of the left column: the face crops' gallery (0-1)."""
    page.locator("button.gallery-item").nth(index).click()


def lfw_example(page, index: int) -> None:
    """Click row `index` of the real low-resolution LFW examples' table."""
    page.get_by_role("row").filter(has_text="Real low-resolution input").nth(index).click()


def test_a_new_users_tour(browser, app_url):
    """Every tab in the order a new user opens them, with the counts of restores and toasts of each action,
    and no previous face's figure, table or error left after a new face."""
    log = ServerLog(app_url)
    page = open_page(browser, app_url, WATCH_TOASTS)
    shot(page, "0-loaded")

    # Actions that need a face, before one is chosen: one short message each, one log line, no traceback
    tab(page, "LAM")
    page.get_by_role("button", name="Run LAM").click()
    page.get_by_text("Pick a face first").first.wait_for(timeout=SLOW)
    tab(page, "Threshold effects")
    page.get_by_role("button", name="Run the sweep").click()
    page.wait_for_function("() => window.__toasts.length >= 2", timeout=SLOW)
    settle(page)
    shot(page, "1-errors-before-a-face")
    assert [t for t in toasts(page) if "Pick a face first" in t] and not log.restores()
    errors = log.since()
    assert errors.count("user error: Pick a face first") == 2 and "Traceback" not in errors
    assert error_badges(page) >= 1  # what a new face must clear

    # A face crop: one restore, no toast; the errors are gone
    tab(page, "Restore")
    log.mark()
    example(page, 0)
    page.locator("#sr img").wait_for(timeout=SLOW)
    settle(page)
    shot(page, "2-restored")
    assert len(log.restores()) == 1, log.restores()
    assert toasts(page) == []
    assert "from the 128 px original" in page.locator("#restore-status").inner_text()
    for name in ("Threshold effects", "LAM"):
        tab(page, name)
        assert error_badges(page) == 0, name
    first_sr = src(page, "#sr")

    # Photo, Neighbour graph, Attention, Threshold, LAM, Model: each drawn once for this face
    tab(page, "Photo")
    shot(page, "3-photo")
    tab(page, "Neighbour graph")
    page.locator("#graph-overview .js-plotly-plot").wait_for(timeout=SLOW)
    settle(page)
    shot(page, "4-graph")
    old_graph = src(page, "#graph-face")
    tab(page, "Attention")
    page.locator("#attention-mass .js-plotly-plot").wait_for(timeout=SLOW)
    settle(page)
    shot(page, "5-attention")
    old_picker = src(page, "#attention-picker")
    tab(page, "Threshold effects")
    page.get_by_role("button", name="Run the sweep").click()
    page.locator("#threshold-sweep .js-plotly-plot").wait_for(timeout=SLOW)
    settle(page)
    shot(page, "6-threshold")
    tab(page, "LAM")
    page.get_by_role("button", name="Run LAM").click()
    page.locator("#lam-di").get_by_text("DI =").first.wait_for(timeout=SLOW)
    settle(page)
    shot(page, "7-lam")
    tab(page, "Model")
    page.get_by_text("Shipped 'light' weights").first.wait_for(timeout=SLOW)
    shot(page, "8-model")
    assert len(log.restores()) == 1 and toasts(page) == []

    # A real low-resolution LFW face at x8, chosen from the Restore tab, and the Neighbour graph tab opened
    # at once: one restore, at the face's own 25 px; no figure of the previous face in any tab meanwhile
    tab(page, "Restore")
    page.get_by_label("x8").check()
    settle(page)
    log.mark()
    lfw_example(page, 0)
    tab(page, "Neighbour graph")
    seen = set()
    deadline = time.monotonic() + SLOW / 1000
    while time.monotonic() < deadline:
        seen.add(src(page, "#graph-face"))
        if page.locator("#graph-caption").get_by_text("window").count() and \
                page.locator("#graph-overview .js-plotly-plot").count() and old_graph not in seen and \
                src(page, "#graph-face") is not None:
            break
        time.sleep(0.05)
    settle(page)
    seen.add(src(page, "#graph-face"))
    shot(page, "9-lfw-graph")
    assert old_graph not in seen  # the previous face's graph was never shown
    plot = page.locator("#graph-overview .js-plotly-plot")
    box, svg = page.locator("#graph-overview").bounding_box(), plot.locator(".main-svg").first.bounding_box()
    assert svg["width"] >= box["width"] - 40, (svg, box)  # drawn at the tab's full width, not clipped
    restores = log.restores()
    assert len(restores) == 1 and "x8, real, 25x25 input" in restores[0], restores
    assert toasts(page) == []

    tab(page, "Restore")
    settle(page)
    shot(page, "10-lfw-restore")
    status = page.locator("#restore-status").inner_text()
    assert "25x25 input restored at x8 to 200x200 as it is" in status and "no original" in status
    assert not page.get_by_text("GVTNet | original").is_visible()
    assert not page.get_by_text("Against the original").is_visible()
    assert src(page, "#sr") != first_sr
    with page.expect_download() as dl:
        page.get_by_text("Download the restoration").click()
    assert Image.open(dl.value.path()).size == (200, 200)

    for name in ("Attention", "Threshold effects", "LAM"):  # nothing of the previous face anywhere
        tab(page, name)
        settle(page)
        shot(page, f"11-lfw-{name.split()[0].lower()}")
    tab(page, "Attention")
    assert src(page, "#attention-picker") not in (None, old_picker)
    tab(page, "Threshold effects")
    assert page.locator("#threshold-sweep .js-plotly-plot").count() == 0  # the sweep's curves were cleared
    tab(page, "LAM")
    assert "DI =" not in page.locator("#lam-di").inner_text()
    assert page.locator(".tabitem:visible [data-testid=status-tracker]").count() == 0 or error_badges(page) == 0
    assert len(log.restores()) == 1 and toasts(page) == []
    assert "Traceback" not in log.since()


def test_photo_tab_a_chosen_face_restores_once_at_its_own_size_and_boxes_can_be_chosen(browser, app_url, tmp_path):
    from app.examples import GROUP, group_file

    log = ServerLog(app_url)
    page = open_page(browser, app_url, WATCH_TOASTS)
    tab(page, "Photo")
    # the main input's limits: a 1x1 photo is refused with the same message
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (1, 1), (120, 80, 40)).save(tiny)
    page.locator("#group-photo input[type=file]").set_input_files(str(tiny))
    page.wait_for_function("() => window.__toasts.some(t => t.includes('too small'))", timeout=SLOW)
    assert any("The image is too small (1x1): at least 16 px a side is needed" in t for t in toasts(page))
    assert page.locator("#photo-slider img").count() == 0
    assert "user error: The image is too small (1x1)" in log.since() and "Traceback" not in log.since()
    shot(page, "20-photo-tiny")

    page.locator("#group-photo input[type=file]").set_input_files(group_file())
    page.locator("#photo-notes").get_by_text(f"{len(GROUP)} faces found").wait_for(timeout=SLOW)
    thumbs = page.locator("#photo-faces img")
    thumbs.nth(len(GROUP) - 1).wait_for(timeout=SLOW)
    settle(page)
    shot(page, "21-photo")
    caption = page.locator("#photo-faces").inner_text()
    side = int(re.search(r"2: (\d+) px", caption).group(1))
    log.mark()
    toasts(page)
    thumbs.nth(1).click()
    page.locator("#photo-chosen").get_by_text("Face 2").wait_for(timeout=SLOW)
    tab(page, "Restore")
    page.locator("#sr img").wait_for(timeout=SLOW)
    settle(page)
    shot(page, "22-photo-face-restored")
    restores = log.restores()
    assert len(restores) == 1 and f"x4, real, {side}x{side} input" in restores[0], restores
    assert toasts(page) == []
    assert f"{side}x{side} input restored at x4 to {4 * side}x{4 * side} as it is" in \
        page.locator("#restore-status").inner_text()

    # drop face 1, add a box of our own: those are restored
    tab(page, "Photo")
    page.locator("#photo-kept label").filter(has_text="1: (").locator("input").uncheck()
    page.locator("#photo-add textarea, #photo-add input").first.fill("2, 2, 30, 30")
    page.get_by_role("button", name="Restore these faces").click()
    page.locator("#photo-notes").get_by_text(f"{len(GROUP)} faces given").wait_for(timeout=SLOW)
    settle(page)
    shot(page, "23-photo-boxes")
    labels = page.locator("#photo-kept").inner_text()
    assert "(2, 2, 30, 30)" in labels
    assert len(log.restores()) == 1  # choosing boxes restores the photo, not the face of the other tabs
