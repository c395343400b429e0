"""End to end in headless Chromium (Debian's, driven by Playwright): the page loads, an example restores,
choosing the mirror self-ensemble restores it again, the graph follows the threshold slider, LAM reports a
diffusion index, and two visitors keep their own results. Screenshots go to test-artifacts/."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from conftest import ARTIFACTS

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
SLOW = 120_000  # ms: the machine may be busy


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (install Debian's chromium to run the browser tests)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def open_page(browser, url):
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
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
    stats.get_by_text("density").first.wait_for(timeout=SLOW)
    page.locator("#graph .js-plotly-plot").wait_for(timeout=SLOW)
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
