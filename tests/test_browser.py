"""End to end in headless Chromium (Debian's, driven by Playwright): the page loads, an example restores,
choosing the mirror self-ensemble restores it again, the graph follows the threshold slider, a click on the
large face selects a window, LAM reports a diffusion index, and two visitors keep their own results.
Screenshots go to test-artifacts/."""
from __future__ import annotations

import time

import pytest

from conftest import ARTIFACTS, SLOW

# Each drives Chromium against `python app.py` on a free port.
pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow]


def open_page(browser, url, init_script: str | None = None):
    """A fresh visitor's page, once the app has drawn; `init_script` runs before the app's own scripts."""
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    if init_script:
        page.add_init_script(init_script)
    page.goto(url)
    page.get_by_text("GVTNet Explorer").first.wait_for(timeout=SLOW)
    return page


def settle(page):
    """Wait until every image on the page has loaded and no output shows a progress indicator."""
    page.wait_for_function("[...document.images].every(i => i.complete && i.naturalWidth > 0) && "
                           "[...document.querySelectorAll('[data-testid=status-tracker]')]"
                           ".every(e => e.classList.contains('hide'))", timeout=SLOW)


def new_restoration(page, old: str | None) -> str:
    """Wait until the GVTNet restoration shows an image other than `old`; returns its src."""
    page.wait_for_function("old => { const i = document.querySelector('#sr img'); "
                           "return i && i.src && i.src !== old; }", arg=old, timeout=SLOW)
    return page.locator("#sr img").get_attribute("src")


def pick_example(page, index: int) -> str:
    """Click example `index`; returns the src of the GVTNet restoration once it shows."""
    old = page.locator("#sr img").get_attribute("src") if page.locator("#sr img").count() else None
    page.locator("button.gallery-item").nth(index).click()
    return new_restoration(page, old)


def restored(browser, url, tab: str | None = None):
    """A fresh visitor's page with the first example restored and every view settled, on `tab` if given."""
    page = open_page(browser, url)
    pick_example(page, 0)
    settle(page)
    if tab:
        page.get_by_role("tab", name=tab).click()
    return page


def test_restore_graph_and_lam(browser, app_url):
    ARTIFACTS.mkdir(exist_ok=True)
    page = open_page(browser, app_url)
    page.screenshot(path=ARTIFACTS / "browser-0-loaded.png", full_page=True)
    timings = {}
    start = time.perf_counter()
    src = pick_example(page, 0)
    timings["example click -> SR shown"] = time.perf_counter() - start
    assert src.endswith(".png")
    settle(page)
    page.screenshot(path=ARTIFACTS / "browser-1-restored.png", full_page=True)

    page.get_by_label("Mirror", exact=False).check()  # the face is restored again
    new_restoration(page, src)
    settle(page)

    page.get_by_role("tab", name="Neighbour graph").click()
    stats = page.locator("#graph-stats")
    page.wait_for_function("() => { const t = document.querySelector('#graph-stats'); "
                           "return t && t.innerText.includes('density'); }", timeout=SLOW)
    page.locator("#graph-face img").wait_for(timeout=SLOW)
    page.locator("#graph-overview .js-plotly-plot").wait_for(timeout=SLOW)
    timings["example click -> graph shown"] = time.perf_counter() - start
    settle(page)
    before = stats.inner_text()
    page.screenshot(path=ARTIFACTS / "browser-2-graph.png", full_page=True)
    start = time.perf_counter()
    page.locator("#threshold input[type=range]").fill("0.3")
    page.wait_for_function("old => { const t = document.querySelector('#graph-stats').innerText; "
                           "return t.includes('density') && t !== old; }", arg=before, timeout=SLOW)
    timings["threshold moved -> statistics redrawn"] = time.perf_counter() - start
    settle(page)
    page.screenshot(path=ARTIFACTS / "browser-3-graph-T0.3.png", full_page=True)

    page.get_by_role("tab", name="LAM").click()
    start = time.perf_counter()
    page.get_by_role("button", name="Run LAM").click()
    page.locator("#lam-di").get_by_text("DI =").first.wait_for(timeout=SLOW)
    timings["Run LAM -> DI shown (GVTNet and SwinIR, x4, 16 px)"] = time.perf_counter() - start
    (ARTIFACTS / "browser-timings.txt").write_text("".join(f"{k}: {v:.2f} s\n" for k, v in timings.items()))
    assert "GVTNet" in page.locator("#lam-di").inner_text()
    settle(page)
    page.screenshot(path=ARTIFACTS / "browser-4-lam.png", full_page=True)


def test_two_visitors_keep_their_own_results(browser, app_url):
    first, second = open_page(browser, app_url), open_page(browser, app_url)
    mine = pick_example(first, 0)
    theirs = pick_example(second, 1)
    assert mine != theirs
    assert first.locator("#sr img").get_attribute("src") == mine


def test_attention_tab_compares_models_and_follows_a_click(browser, app_url):
    page = restored(browser, app_url, "Attention")
    rollout = page.locator("#rollout .js-plotly-plot")
    rollout.wait_for(timeout=SLOW)
    for name in ("GVTNet", "GVTNet, graph off", "SwinIR"):  # one rollout each, and a line each over depth
        rollout.get_by_text(name, exact=False).first.wait_for(timeout=SLOW)
        page.locator("#attention-distance .legend").get_by_text(name, exact=True).wait_for(timeout=SLOW)
    page.locator("#attention-mass .js-plotly-plot").wait_for(timeout=SLOW)
    settle(page)
    title = page.locator("#rollout .gtitle").text_content()
    page.screenshot(path=ARTIFACTS / "browser-5-attention.png", full_page=True)
    picker = page.locator("#attention-picker img")
    box = picker.bounding_box()
    natural = picker.evaluate("i => [i.naturalWidth, i.naturalHeight]")
    fit = min(box["width"] / natural[0], box["height"] / natural[1])  # the image is drawn contained, centred
    x, y = (box["width"] - natural[0] * fit) / 2 + 0.3 * natural[0] * fit, \
        (box["height"] - natural[1] * fit) / 2 + 0.7 * natural[1] * fit
    start = time.perf_counter()
    picker.click(position={"x": x, "y": y})
    page.wait_for_function("old => { const t = document.querySelector('#rollout .gtitle'); "
                           "return t && t.textContent !== old; }", arg=title, timeout=SLOW)
    elapsed = time.perf_counter() - start
    with open(ARTIFACTS / "browser-timings.txt", "a") as f:
        f.write(f"query click -> rollout redrawn: {elapsed:.2f} s\n")
    new_title = page.locator("#rollout .gtitle").text_content()
    row, col = (int(v) for v in new_title.split("(")[1].split(")")[0].split(","))
    assert abs(row - 0.7 * 32) <= 1 and abs(col - 0.3 * 32) <= 1  # the x4 face is 32 LR px a side
    settle(page)
    page.screenshot(path=ARTIFACTS / "browser-6-attention-query.png", full_page=True)


def test_photo_tab_boxes_every_face_and_a_chosen_face_becomes_the_face(browser, app_url):
    from app.examples import GROUP, group_file

    page = open_page(browser, app_url)
    page.get_by_role("tab", name="Photo").click()
    start = time.perf_counter()
    page.locator("#group-photo input[type=file]").set_input_files(group_file())
    page.locator("#photo-boxes img").wait_for(timeout=SLOW)
    page.locator("#photo-notes").get_by_text(f"{len(GROUP)} faces found").wait_for(timeout=SLOW)
    timings = {"photo uploaded -> faces boxed": time.perf_counter() - start}
    slider = page.locator("#photo-slider img")
    slider.first.wait_for(timeout=SLOW)
    assert slider.count() == 2 and all(slider.nth(i).get_attribute("src").endswith(".png") for i in range(2))
    thumbs = page.locator("#photo-faces img")
    thumbs.nth(len(GROUP) - 1).wait_for(timeout=SLOW)
    settle(page)
    page.screenshot(path=ARTIFACTS / "browser-7-photo.png", full_page=True)
    # choosing a face restores it as the face of the other tabs
    start = time.perf_counter()
    thumbs.nth(1).click()
    page.get_by_role("tab", name="Restore").click()
    new_restoration(page, None)
    timings["face chosen -> restored in the Restore tab"] = time.perf_counter() - start
    assert page.get_by_label("Real low-resolution input", exact=False).is_checked()  # restored as it is
    assert page.locator("#photo img").count() == 1  # the face is the left column's input
    with open(ARTIFACTS / "browser-timings.txt", "a") as f:
        f.write("".join(f"{k}: {v:.2f} s\n" for k, v in timings.items()))
    settle(page)
    page.screenshot(path=ARTIFACTS / "browser-8-photo-face.png", full_page=True)


def image_point(img, fx: float, fy: float) -> tuple[dict, float]:
    """({x, y} position in the <img> element of the point at fractions (fx, fy) of the picture, which is
    drawn centred, contained or scaled down as CSS object-fit says), and the picture's on-screen scale."""
    box = img.bounding_box()
    *natural, fit_rule = img.evaluate("i => [i.naturalWidth, i.naturalHeight, getComputedStyle(i).objectFit]")
    fit = min(box["width"] / natural[0], box["height"] / natural[1])
    fit = min(fit, 1.0) if fit_rule == "scale-down" else fit
    return ({"x": (box["width"] - natural[0] * fit) / 2 + fx * natural[0] * fit,
             "y": (box["height"] - natural[1] * fit) / 2 + fy * natural[1] * fit}, fit)


def test_graph_face_click_selects_a_window(browser, app_url):
    """The large face is the click target: a click selects the window and node under it, outlined and
    drawn on the face, and the caption and statistics follow."""
    import io
    import urllib.request

    import numpy as np
    from PIL import Image

    page = restored(browser, app_url, "Neighbour graph")
    face = page.locator("#graph-face img")
    caption = page.locator("#graph-caption")
    caption.get_by_text("window").first.wait_for(timeout=SLOW)
    settle(page)
    before, src = caption.inner_text(), face.get_attribute("src")
    # x4: 32 LR px, each 12 px of the 384 px picture; a click at 10% lands on LR pixel (3, 3), which is
    # window 3*4 + 3 = 15 and node 0 of group 0 (strided windows, no roll)
    position, fit = image_point(face, 0.1, 0.1)
    assert 384 * fit >= 384 - 1e-9  # at least 384 px on screen
    start = time.perf_counter()
    face.click(position=position)
    page.wait_for_function("old => { const i = document.querySelector('#graph-face img'); "
                           "return i && i.src && i.src !== old; }", arg=src, timeout=SLOW)
    elapsed = time.perf_counter() - start
    settle(page)
    text = caption.inner_text()
    assert text != before
    assert "window 15 of 16" in text and "node 0 ringed" in text
    new_src = face.get_attribute("src")
    assert new_src != src
    with urllib.request.urlopen(new_src) as r:
        drawn = np.asarray(Image.open(io.BytesIO(r.read())).convert("RGB")).astype(int)
    # the window's pixels are outlined in yellow: LR pixels (3 + 4j, 3 + 4i), one per patch (the clicked
    # one, (3, 3), is ringed green)
    for r, c in ((7, 19), (11, 3), (31, 31)):
        edge = drawn[r * 12, c * 12 : c * 12 + 12]  # the cell's top border (lines may cross a pixel or two)
        yellow = (edge[:, 0] > 200) & (edge[:, 1] > 180) & (edge[:, 2] < 120)
        assert yellow.sum() >= 8, (r, c, edge)
    # a second click, with nothing else queued: what a visitor clicking around waits for
    position, _ = image_point(face, 0.9, 0.5)
    start = time.perf_counter()
    face.click(position=position)
    page.wait_for_function("old => { const i = document.querySelector('#graph-face img'); "
                           "return i && i.src && i.src !== old; }", arg=new_src, timeout=SLOW)
    again = time.perf_counter() - start
    with open(ARTIFACTS / "browser-timings.txt", "a") as f:
        f.write(f"graph face click -> window view redrawn: {elapsed:.2f} s (first), {again:.2f} s (second)\n")
    page.screenshot(path=ARTIFACTS / "browser-9-graph-window.png", full_page=True)
