"""Visitors at once: some running LAM (the app's slowest call), others /upscale, all through gradio_client,
and one in the browser running LAM from the page, against `python app.py` started on a free port.

    python -m benchmarks.load [--lam 8] [--upscale 8] [--seconds 120] [--scale 4] [--no-browser]

Each client calls its endpoint in a loop until the time is up (the last calls are waited for). Reports the
calls answered and failed per endpoint (connection errors apart), their latency, the server's peak resident
memory (sampled every 0.25 s, and the kernel's high-water mark), and the queue positions the browser visitor
was shown while waiting.
"""
from __future__ import annotations

import argparse
import contextlib
import re
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

CONNECTION_ERRORS = ("ConnectError", "RemoteProtocolError", "ReadError", "ConnectionError", "ReadTimeout",
                     "Connection refused", "Server disconnected")


@dataclass
class Tally:
    seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, seconds: float | None, error: str | None = None):
        with self.lock:
            if error is None:
                self.seconds.append(seconds)
            else:
                self.errors.append(error)

    @property
    def connection_errors(self) -> list[str]:
        return [e for e in self.errors if any(c in e for c in CONNECTION_ERRORS)]

    def summary(self) -> str:
        s = sorted(self.seconds)
        lat = (f"median {statistics.median(s):.1f} s, max {s[-1]:.1f} s" if s else "no answers")
        return (f"{len(s)} answered, {len(self.errors)} failed ({len(self.connection_errors)} connection "
                f"errors); {lat}")


@dataclass
class LoadResult:
    tallies: dict[str, Tally]
    peak_rss_mb: float
    high_water_mb: float
    start_rss_mb: float
    queue_seen: list[str]
    browser_lam: str | None  # the DI text the page showed, or None
    alive: bool

    def failures(self) -> int:
        return sum(len(t.errors) for t in self.tallies.values())

    def report(self) -> str:
        lines = [f"{name}: {t.summary()}" for name, t in self.tallies.items()]
        lines.append(f"server memory: {self.start_rss_mb:.0f} MB at the start, peak {self.peak_rss_mb:.0f} MB "
                     f"sampled, high-water mark {self.high_water_mb:.0f} MB; alive after: {self.alive}")
        if self.browser_lam is not None or self.queue_seen:
            lines.append(f"browser visitor: queue positions shown {self.queue_seen or 'none'}; LAM answer: "
                         f"{self.browser_lam!r}")
        return "\n".join(lines)


def face_file(folder: Path) -> str:
    """The astronaut's face (scikit-image's photo), as a visitor would send it."""
    from skimage import data

    path = folder / "astronaut.png"
    Image.fromarray(data.astronaut()).crop((150, 20, 330, 200)).save(path)
    return str(path)


class Start:
    """Every client connects first (each fetches the app's config), then all start calling together and
    stop after `seconds`, or once the browser visitor has its answer if that comes later."""

    def __init__(self, parties: int, seconds: float):
        self.deadline = float("inf")
        self.barrier = threading.Barrier(parties, action=lambda: setattr(self, "deadline", time.monotonic() + seconds))
        self.visitor_done = threading.Event()

    def running(self) -> bool:
        return time.monotonic() < self.deadline or not self.visitor_done.is_set()


def client_loop(url: str, endpoint: str, args: tuple, start: Start, tally: Tally):
    from gradio_client import Client, handle_file

    try:
        client = Client(url, verbose=False)
    except Exception as e:  # noqa: BLE001 - a client that cannot connect is a failure to report
        tally.add(None, f"connect: {type(e).__name__}: {e}"[:300])
        start.barrier.wait()
        return
    start.barrier.wait()
    try:
        while start.running():
            t = time.monotonic()
            try:
                client.predict(handle_file(args[0]), *args[1:], api_name=endpoint)
                tally.add(time.monotonic() - t)
            except Exception as e:  # noqa: BLE001 - every failure is counted and reported
                tally.add(None, f"{type(e).__name__}: {e}"[:300])
    finally:
        client.close()


def browser_visitor(url: str, start: Start, queue_seen: list[str], answer: list[str]):
    """One visitor in headless Chromium: restores an example, runs LAM from the page while the API load
    fills the LAM queue, and records every queue position the page shows until the LAM answers."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw, _done(start.visitor_done):
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.goto(url)
            page.get_by_text("GVTNet Explorer").first.wait_for(timeout=300_000)
            page.locator("button.gallery-item").first.click()
            page.wait_for_function("() => { const i = document.querySelector('#sr img'); return i && i.src; }",
                                   timeout=300_000)
            page.get_by_role("tab", name="LAM").click()
            page.get_by_role("button", name="Run LAM").click()
            end = time.monotonic() + 900
            while time.monotonic() < end:
                text = page.locator("#lam-di").inner_text() if page.locator("#lam-di").count() else ""
                if "DI =" in text:
                    answer.append(text)
                    break
                for q in re.findall(r"queue:\s*\d+\s*/\s*\d+", page.locator("body").inner_text()):
                    if q not in queue_seen:
                        queue_seen.append(q)
                time.sleep(0.2)
        finally:
            browser.close()


@contextlib.contextmanager
def _done(event: threading.Event):
    try:
        yield
    finally:
        event.set()


def run_load(server, lam_clients: int, upscale_clients: int, seconds: float, scale: int = 4,
             browser: bool = True) -> LoadResult:
    """`lam_clients` calling /lam and `upscale_clients` calling /upscale for `seconds`, with one browser
    visitor running LAM from the page (if `browser`), against a running benchmarks.server.Server."""
    face = face_file(Path(tempfile.mkdtemp()))
    tallies = {"/lam": Tally(), "/upscale": Tally()}
    jobs = [("/lam", (face, scale, 40, 40, 16))] * lam_clients + [("/upscale", (face, scale))] * upscale_clients
    start = Start(len(jobs) + 1, seconds)
    threads = [threading.Thread(target=client_loop, args=(server.url, ep, a, start, tallies[ep])) for ep, a in jobs]
    start_rss = server.memory_mb()[0]
    peak = [start_rss]
    stop = threading.Event()

    def sample():
        while not stop.wait(0.25):
            try:
                peak[0] = max(peak[0], server.memory_mb()[0])
            except (FileNotFoundError, ProcessLookupError):
                return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for t in threads:
        t.start()
    start.barrier.wait()
    queue_seen: list[str] = []
    answer: list[str] = []
    visitor = threading.Thread(target=browser_visitor, args=(server.url, start, queue_seen, answer))
    if browser:
        visitor.start()
    else:
        start.visitor_done.set()
    for t in threads:
        t.join()
    if browser:
        visitor.join()
    stop.set()
    sampler.join()
    return LoadResult(tallies, peak[0], server.memory_mb()[1], start_rss, queue_seen,
                      answer[0] if answer else None, server.alive())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lam", type=int, default=8, help="clients calling /lam")
    p.add_argument("--upscale", type=int, default=8, help="clients calling /upscale")
    p.add_argument("--seconds", type=float, default=120)
    p.add_argument("--scale", type=int, default=4, choices=[4, 8])
    p.add_argument("--no-browser", action="store_true", help="no browser visitor (needs /usr/bin/chromium)")
    args = p.parse_args()

    from benchmarks.server import ROOT, serve

    with serve(ROOT / "test-artifacts") as server:
        res = run_load(server, args.lam, args.upscale, args.seconds, args.scale, not args.no_browser)
    print(f"{args.lam} clients on /lam and {args.upscale} on /upscale for {args.seconds:.0f} s at x{args.scale}")
    print(res.report())
    raise SystemExit(0 if res.alive and not res.failures() else 1)


if __name__ == "__main__":
    main()
