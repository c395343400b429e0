"""Figures and tables that read, in headless Chromium against `python app.py` (as tests/test_browser.py):
the other models' box, the tables' words and numbers, the shipped models, the LAM picker and the LAM
figures without a label drawn over them. Screenshots go to test-artifacts/."""
from __future__ import annotations

import io
import urllib.request

import numpy as np
import pytest
from PIL import Image
from test_browser import image_point, open_page, restored, settle

from conftest import ARTIFACTS, ASSETS, SLOW

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow]


# Words and numbers of the table cells under `root` that the browser laid out over more than one line; a
# compound word may break at its hyphen ("whole-|face"), nothing else may.
BROKEN_WORDS = """root => {
  const out = [];
  for (const cell of root.querySelectorAll('td, th')) {
    const walk = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    while (walk.nextNode()) {
      const node = walk.currentNode, re = /\\S+/g;
      let m;
      while ((m = re.exec(node.textContent))) {
        if (/^[A-Za-z(]+(-[A-Za-z]+)+[,.;:)]*$/.test(m[0])) continue;
        const r = document.createRange();
        r.setStart(node, m.index);
        r.setEnd(node, m.index + m[0].length);
        const lines = new Set([...r.getClientRects()].filter(b => b.width > 0).map(b => Math.round(b.top)));
        if (lines.size > 1) out.push(m[0]);
      }
    }
  }
  return out;
}"""


def overlaps(a: dict, b: dict) -> bool:
    return a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"] and \
        a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"]


def nothing_drawn_over(page, selector: str) -> None:
    """No label badge or button of the figure's block lies over its picture."""
    img = page.locator(f"{selector} img")
    img.scroll_into_view_if_needed(timeout=SLOW)  # loaded lazily: below the fold it stays hidden
    img.wait_for(timeout=SLOW)
    box = img.bounding_box()
    for other in page.locator(f"{selector} label, {selector} button").all():
        # the block's own wrapper around the picture (a button holding the img) is the picture itself
        if other.is_visible() and not other.evaluate("e => !!e.querySelector('img')"):
            assert not overlaps(box, other.bounding_box()), (selector, other.inner_text())


def test_other_models_box_is_hidden_at_x4_and_natural_size_at_x8(browser, app_url):
    page = restored(browser, app_url)
    assert not page.locator("#others").is_visible()  # x4 ships no other model: no empty box
    page.get_by_label("x8").check()
    page.locator("#others img").first.wait_for(timeout=SLOW)
    settle(page)
    page.screenshot(path=ARTIFACTS / "figures-1-others-x8.png", full_page=True)
    imgs = page.locator("#others img")
    assert imgs.count() == 1
    *natural, fit = imgs.first.evaluate("i => [i.naturalWidth, i.naturalHeight, getComputedStyle(i).objectFit]")
    box = imgs.first.bounding_box()
    # drawn at its own size (object-fit none: neither magnified nor shrunk) in a box that holds all of it
    assert natural == [128, 128] and fit == "none" and box["width"] >= 128 and box["height"] >= 128
    assert "GVTNet, no graph (retrained)" in page.locator("#others").inner_text()


def test_tables_keep_every_word_and_number_whole(browser, app_url):
    page = restored(browser, app_url, "Neighbour graph")
    page.wait_for_function("() => { const t = document.querySelector('#graph-stats'); "
                           "return t && t.innerText.includes('density'); }", timeout=SLOW)
    settle(page)
    page.locator("#graph-stats").screenshot(path=ARTIFACTS / "figures-2-graph-stats.png")
    assert page.locator("#graph-stats").evaluate(BROKEN_WORDS) == []
    page.get_by_role("tab", name="Model").click()
    tables = page.locator("#ablation-tables")
    tables.locator("table").first.wait_for(timeout=SLOW)
    page.screenshot(path=ARTIFACTS / "figures-3-model.png", full_page=True)
    assert tables.locator("td").count() > 50
    assert tables.evaluate(BROKEN_WORDS) == []
    nothing_drawn_over(page, "#ablation-figure")


def test_model_tab_lists_the_shipped_models(browser, app_url):
    page = open_page(browser, app_url)
    page.get_by_role("tab", name="Model").click()
    listed = page.locator("#shipped-models")
    listed.get_by_text("Shipped models").wait_for(timeout=SLOW)
    text = listed.inner_text()
    for path in ASSETS.glob("*.safetensors"):
        assert path.name in text
    assert not page.get_by_label("Shipped preset", exact=False).is_visible()  # no choice of one


def test_lam_picker_is_large_and_places_the_window_where_clicked(browser, app_url):
    page = restored(browser, app_url, "LAM")
    picker = page.locator("#lam-picker img")
    picker.wait_for(timeout=SLOW)
    settle(page)
    src = picker.get_attribute("src")
    position, fit = image_point(picker, 0.25, 0.75)
    natural = picker.evaluate("i => i.naturalWidth")
    assert natural >= 384 and natural * fit >= 384 - 1  # the 128 px restoration, drawn 3x
    picker.click(position=position)
    page.wait_for_function("old => { const i = document.querySelector('#lam-picker img'); "
                           "return i && i.src && i.src !== old; }", arg=src, timeout=SLOW)
    with urllib.request.urlopen(picker.get_attribute("src")) as r:
        drawn = np.asarray(Image.open(io.BytesIO(r.read())).convert("RGB")).astype(int)
    red = (drawn[..., 0] > 200) & (drawn[..., 1] < 60) & (drawn[..., 2] < 60)
    rows, cols = np.nonzero(red)
    k = natural // 128
    # the 16 px window centred on SR pixel (96, 32): rows 88-103, columns 24-39
    assert abs(rows.min() / k - 88) <= 1 and abs(rows.max() / k - 104) <= 1
    assert abs(cols.min() / k - 24) <= 1 and abs(cols.max() / k - 40) <= 1
    page.get_by_role("button", name="Run LAM").click()
    page.locator("#lam-di").get_by_text("DI =").first.wait_for(timeout=SLOW)
    settle(page)
    page.screenshot(path=ARTIFACTS / "figures-4-lam.png", full_page=True)
    nothing_drawn_over(page, "#lam-spread")
