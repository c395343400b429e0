"""Many short visits, one after another, each uploading a checkpoint, and the server's memory after each.

    python -m benchmarks.sessions [--visits 200] [--embed-dim 180]

Each visit opens the page in a fresh headless-Chromium context, restores an example, uploads a checkpoint
of random weights (GVTNet light-x8 widened to `--embed-dim` with depths 6, 6, 6, 6 and 6 heads: 8.2 M
parameters, 33 MB, at the default) on the Model tab, waits until the face is restored with it, and closes the tab. A
server that kept each visitor's session and model would grow by about the checkpoint's size per visit;
the app releases them when the tab closes (app/state.py `Visitors`).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

import gvtnet

ARGS = ["--no-sandbox", "--disable-gpu"]
TIMEOUT_MS = 300_000


def checkpoint(folder: Path, embed_dim: int = 180) -> Path:
    """A GVTNet x8 checkpoint of random weights, `embed_dim` wide, depths 6, 6, 6, 6."""
    torch.manual_seed(0)
    model = gvtnet.build_model("light-x8", embed_dim=embed_dim, depths=(6, 6, 6, 6), num_heads=6)
    path = folder / f"gvtnet-x8-e{embed_dim}.safetensors"
    gvtnet.save_model(model, path)
    return path


def visit(browser, url: str, ckpt: Path) -> float:
    """One short visit (see the module docstring); returns its seconds."""
    start = time.monotonic()
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.goto(url)
        page.get_by_text("GVTNet Explorer").first.wait_for(timeout=TIMEOUT_MS)
        page.locator("button.gallery-item").first.click()
        page.wait_for_function("() => { const i = document.querySelector('#sr img'); return i && i.src; }",
                               timeout=TIMEOUT_MS)
        page.get_by_role("tab", name="Model").click()
        page.locator("input[type=file][accept*='.safetensors']").set_input_files(str(ckpt))
        page.get_by_text("Uploaded checkpoint").first.wait_for(timeout=TIMEOUT_MS)
    finally:
        context.close()
    return time.monotonic() - start


def run_sessions(server, browser, visits: int, ckpt: Path, settle_s: float = 1.0, progress=None) -> list[float]:
    """Resident memory (MB) of the server after each of `visits` visits (see `visit`) in a Playwright
    browser."""
    rss = []
    for i in progress(range(visits)) if progress else range(visits):
        visit(browser, server.url, ckpt)
        time.sleep(settle_s)  # the tab's close reaches the server as its heartbeat ends
        rss.append(server.memory_mb()[0])
        if (i + 1) % 20 == 0 or i == 0:
            print(f"  after visit {i + 1}: {rss[-1]:.0f} MB", flush=True)
    return rss


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--visits", type=int, default=200)
    p.add_argument("--embed-dim", type=int, default=180)
    args = p.parse_args()

    from playwright.sync_api import sync_playwright
    from tqdm import tqdm

    from benchmarks.server import ROOT, serve

    ckpt = checkpoint(Path(tempfile.mkdtemp()), args.embed_dim)
    mb = ckpt.stat().st_size / 1e6
    with serve(ROOT / "test-artifacts") as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        start = server.memory_mb()[0]
        t = time.monotonic()
        rss = run_sessions(server, browser, args.visits, ckpt, progress=lambda it: tqdm(it, desc="visits"))
        minutes = (time.monotonic() - t) / 60
        alive = server.alive()
        peak = server.memory_mb()[1]
    print(f"{args.visits} visits in {minutes:.1f} min, each uploading a {mb:.0f} MB checkpoint; server resident "
          f"memory: {start:.0f} MB before, {rss[0]:.0f} MB after the first visit, max {max(rss):.0f} MB, "
          f"{rss[-1]:.0f} MB after the last (high-water mark {peak:.0f} MB); kept, the models alone would "
          f"add about {args.visits * mb:.0f} MB; alive after: {alive}")


if __name__ == "__main__":
    main()
