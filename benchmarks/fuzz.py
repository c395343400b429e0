"""Hostile and odd image files, from real photos, sent to a live app the way visitors send them.

    python -m benchmarks.fuzz [--cases 320] [--seed 0] [--browser] [--out fuzz-results.json]

`cases(n, seed)` builds the files: the real photos that ship with scikit-image and matplotlib, saved in many
formats and modes (palette, 1-bit, 16-bit, float, CMYK, alpha, animated GIF/WebP, EXIF-rotated), then mutated:
truncated, bytes flipped, saved under the wrong extension, headers declaring huge dimensions, and files that
are no photo at all (SVG, HEIC renamed to .jpg, PDF, text, empty). Each goes through /upscale with
gradio_client and, with --browser, through the Photo input of the page in headless Chromium (the in-app
upload path); every answer must be an image or one of the app's clear messages, and the server must be
alive after all of them. Prints a summary; --out writes every case's outcome.
"""
from __future__ import annotations

import argparse
import io
import json
import random
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

# What the app says about a file it cannot use (app/tabs/inputs.py `prepare`); anything else is a failure.
CLEAR_MESSAGES = ("Cannot use this image:", "The image is too small", "photos up to")


@dataclass
class Case:
    name: str
    data: bytes
    suffix: str  # the file name's extension, which may lie
    expect: str  # "image", "message" or "either"

    def write(self, folder: Path) -> Path:
        path = folder / f"{self.name}{self.suffix}"
        path.write_bytes(self.data)
        return path


# ----------------------------------------------------------------------------------------------------
# The generator


def photos() -> dict[str, Image.Image]:
    """Real photos shipped with the installed libraries (nothing downloaded)."""
    import matplotlib.cbook
    from skimage import data

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = Image.open(f).convert("RGB")
    return {"astronaut": Image.fromarray(data.astronaut()), "hopper": hopper,
            "coffee": Image.fromarray(data.coffee()), "chelsea": Image.fromarray(data.chelsea()),
            "camera": Image.fromarray(data.camera())}


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width: int, height: int, zero_bytes: int) -> bytes:
    """An RGB PNG of the declared size whose pixel data is `zero_bytes` zeros, deflated."""
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(bytes(min(1 << 20, zero_bytes - i))) for i in range(0, zero_bytes, 1 << 20)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _jpeg_with_size(jpeg: bytes, width: int, height: int) -> bytes:
    """The JPEG with the dimensions of its first SOF marker replaced."""
    i = 2
    while i < len(jpeg) - 9:
        marker, length = jpeg[i + 1], struct.unpack(">H", jpeg[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            return jpeg[: i + 5] + struct.pack(">HH", height, width) + jpeg[i + 9 :]
        i += 2 + length
    raise ValueError("no SOF marker")


def variants(img: Image.Image) -> dict[str, tuple[bytes, str]]:
    """Valid encodings of one photo: name -> (bytes, extension)."""
    small = img.copy()
    small.thumbnail((320, 320))
    rgba = small.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(small.size))
    gray16 = Image.fromarray(np.asarray(small.convert("L"), np.uint16) * 257)  # uint16: mode I;16
    frames = [small.rotate(a) for a in (0, 5, 10)]
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees
    out = {
        "png": (encode(small, "PNG"), ".png"),
        "jpeg": (encode(small, "JPEG", quality=85), ".jpg"),
        "jpeg-progressive": (encode(small, "JPEG", progressive=True), ".jpg"),
        "jpeg-cmyk": (encode(small.convert("CMYK"), "JPEG"), ".jpg"),
        "jpeg-exif-rotated": (encode(small, "JPEG", exif=exif), ".jpg"),
        "webp": (encode(small, "WEBP", quality=80), ".webp"),
        "webp-lossless-alpha": (encode(rgba, "WEBP", lossless=True), ".webp"),
        "bmp": (encode(small, "BMP"), ".bmp"),
        "tiff": (encode(small, "TIFF"), ".tiff"),
        "tiff-float": (encode(small.convert("F"), "TIFF"), ".tif"),
        "gif": (encode(small, "GIF"), ".gif"),
        "png-rgba": (encode(rgba, "PNG"), ".png"),
        "png-palette": (encode(small.convert("P", palette=Image.ADAPTIVE, colors=16), "PNG"), ".png"),
        "png-palette-transparent": (encode(small.convert("P", palette=Image.ADAPTIVE, colors=64), "PNG",
                                           transparency=0), ".png"),
        "png-1bit": (encode(small.convert("1"), "PNG"), ".png"),
        "png-gray-alpha": (encode(rgba.convert("LA"), "PNG"), ".png"),
        "png-16bit-gray": (encode(gray16, "PNG"), ".png"),
        "tiff-16bit-gray": (encode(gray16, "TIFF"), ".tiff"),
        "gif-animated": (encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0),
                         ".gif"),
        "webp-animated": (encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100), ".webp"),
        "png-animated": (encode(frames[0], "PNG", save_all=True, append_images=frames[1:]), ".png"),
        "ppm": (encode(small, "PPM"), ".ppm"),
        "tga": (encode(small, "TGA"), ".tga"),
        "ico": (encode(small, "ICO"), ".ico"),
    }
    return out


def fixed_cases(photo: Image.Image) -> list[Case]:
    """Files whose answer is known: no photo at all, bombs, sizes at the limits."""
    jpeg = encode(photo.resize((256, 256)), "JPEG")
    svg = (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="4000" height="4000">'
           b'<circle cx="2000" cy="2000" r="1500" fill="peachpuff"/></svg>')
    heic = struct.pack(">I", 24) + b"ftypheic" + b"\x00\x00\x00\x00mif1heic" + bytes(range(256)) * 8
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (2200, 2200, 3), np.uint8))
    gif_bomb = (b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x00\x00\x00"
                + b",\x00\x00\x00\x00" + struct.pack("<HH", 65535, 65535) + b"\x00\x02\x02\x4c\x01\x00;")
    bmp_bomb = bytearray(encode(photo.resize((32, 32)), "BMP"))
    bmp_bomb[18:26] = struct.pack("<ii", 200_000, 200_000)
    return [
        Case("svg", svg, ".svg", "message"),
        Case("svg-as-png", svg, ".png", "message"),
        Case("heic-renamed", heic, ".jpg", "message"),
        Case("pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF", ".png",
             "message"),
        Case("text", b"hello, this is not a photo\n" * 20, ".jpg", "message"),
        Case("empty", b"", ".png", "message"),
        Case("zip", b"PK\x05\x06" + bytes(18), ".png", "message"),
        Case("png-bomb-100000px", _png(100_000, 100_000, 64), ".png", "message"),
        Case("png-zero-size", _png(0, 0, 0), ".png", "message"),
        Case("png-deflate-bomb", _png(8000, 8000, (8000 * 3 + 1) * 8000), ".png", "message"),
        Case("jpeg-65000px", _jpeg_with_size(jpeg, 65000, 65000), ".jpg", "message"),
        Case("gif-65535px", gif_bomb, ".gif", "message"),
        Case("bmp-200000px", bytes(bmp_bomb), ".bmp", "message"),
        Case("tiny-4px", encode(photo.resize((4, 4)), "PNG"), ".png", "message"),
        Case("thin-16x3000", encode(photo.resize((16, 3000)), "PNG"), ".png", "image"),
        Case("big-2200px-noise", encode(noise, "PNG"), ".png", "image"),
    ]


def mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One random damage: (what was done, the damaged bytes)."""
    kind = rng.choice(["truncate", "flip", "flip-header", "zero-run", "insert", "duplicate-tail"])
    n = len(data)
    if kind == "truncate":
        cut = rng.randint(1, max(1, n - 1))
        return f"truncate-{cut}", data[:cut]
    b = bytearray(data)
    if kind == "flip":
        for _ in range(rng.randint(1, 20)):
            i = rng.randrange(n)
            b[i] ^= 1 << rng.randrange(8)
    elif kind == "flip-header":
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(min(n, 64))] = rng.randrange(256)
    elif kind == "zero-run":
        i = rng.randrange(n)
        b[i : i + rng.randint(16, 4096)] = bytes(min(n - i, rng.randint(16, 4096)))
    elif kind == "insert":
        i = rng.randrange(n)
        b[i:i] = rng.randbytes(rng.randint(1, 256))
    else:
        b += b[-rng.randint(1, min(n, 4096)):]
    return kind, bytes(b)


_WRONG = {".png": ".jpg", ".jpg": ".png", ".webp": ".png", ".gif": ".jpg", ".bmp": ".png", ".tiff": ".jpg",
          ".tif": ".png", ".ppm": ".jpg", ".tga": ".png", ".ico": ".png"}


def cases(n: int = 320, seed: int = 0) -> Iterator[Case]:
    """`n` cases (at least the fixed ones and every valid variant once), the same for the same seed."""
    rng = random.Random(seed)
    pics = photos()
    valid = [(f"{p}-{v}", data, ext) for p, img in pics.items() for v, (data, ext) in variants(img).items()]
    fixed = fixed_cases(pics["hopper"])
    out = fixed + [Case(name, data, ext, "image") for name, data, ext in valid]
    out += [Case(f"{name}-as{_WRONG[ext]}", data, _WRONG[ext], "image") for name, data, ext in rng.sample(valid, 20)]
    i = 0
    while len(out) < n:
        name, data, ext = rng.choice(valid)
        kind, damaged = mutate(data, rng)
        out.append(Case(f"{name}-{kind}-{i}", damaged, ext, "either"))
        i += 1
    # the fixed cases and a spread of the rest first, so that a small n still covers every kind
    yield from out[: len(fixed)]
    rest = out[len(fixed):]
    rng.shuffle(rest)
    yield from rest[: max(0, n - len(fixed))]


# ----------------------------------------------------------------------------------------------------
# Sending them


@dataclass
class Outcome:
    case: str
    path: str  # "api" or "page"
    kind: str  # "image", "message" or "failure"
    detail: str
    seconds: float

    def ok(self, expect: str) -> bool:
        return self.kind != "failure" and expect in (self.kind, "either")


def classify_error(text: str) -> tuple[str, str]:
    return ("message", text) if any(m in text for m in CLEAR_MESSAGES) else ("failure", text)


def via_api(client, case: Case, folder: Path) -> Outcome:
    """The case through /upscale (x4, simulate, face): a 128x128 PNG or a clear message."""
    from gradio_client import handle_file

    start = time.monotonic()
    try:
        out = client.predict(handle_file(str(case.write(folder))), 4, api_name="/upscale")
        img = Image.open(out)
        kind, detail = ("image", f"{img.format} {img.size}") if img.format == "PNG" and img.size == (128, 128) \
            else ("failure", f"unexpected output {img.format} {img.size}")
    except Exception as e:  # noqa: BLE001 - classified below
        kind, detail = classify_error(str(e))
    return Outcome(case.name, "api", kind, detail[:300], time.monotonic() - start)


def page_cases(all_cases: list[Case]) -> list[Case]:
    """The cases a browser sends at all: it uploads nothing for an empty file (the page stays as it was)."""
    return [c for c in all_cases if c.data]


class Page:
    """One visitor's page: sends each case through the Photo input and waits for the restoration or the
    error toast."""

    TIMEOUT_MS = 120_000

    def __init__(self, browser, url: str):
        self.page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        self.page.goto(url)
        self.page.get_by_text("GVTNet Explorer").first.wait_for(timeout=self.TIMEOUT_MS)
        self.input = self.page.locator("#photo input[type=file]")

    def send(self, case: Case, folder: Path) -> Outcome:
        page = self.page
        start = time.monotonic()
        old = page.locator("#sr img").get_attribute("src") if page.locator("#sr img").count() else None
        # earlier messages are dismissed first: the page shows a repeated message once, with a counter
        from playwright.sync_api import Error as PlaywrightError

        for close in page.locator(".toast-close").all():
            try:
                close.click(timeout=5_000)
            except PlaywrightError:  # the message timed out and went by itself first
                pass
        page.wait_for_function("() => !document.querySelector('.toast-body')", timeout=self.TIMEOUT_MS)
        self.input.set_input_files(str(case.write(folder)))
        new_toast = ".toast-body.error"
        try:
            page.wait_for_function(
                "([old, sel]) => { const i = document.querySelector('#sr img');"
                " return (i && i.src && i.src !== old) || document.querySelector(sel) !== null; }",
                arg=[old, new_toast], timeout=self.TIMEOUT_MS)
        except Exception as e:  # noqa: BLE001 - a page that never answers is the finding
            return Outcome(case.name, "page", "failure", f"no answer: {e}"[:300], time.monotonic() - start)
        if page.locator(new_toast).count():
            kind, detail = classify_error(page.locator(new_toast).first.inner_text())
        else:
            kind, detail = "image", "restored"
        return Outcome(case.name, "page", kind, detail[:300], time.monotonic() - start)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=320)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--browser", action="store_true", help="also through the page (needs /usr/bin/chromium)")
    p.add_argument("--out", type=Path, default=None, help="write every outcome as JSON")
    args = p.parse_args()

    import tempfile

    from gradio_client import Client
    from tqdm import tqdm

    from benchmarks.server import ROOT, serve

    folder = Path(tempfile.mkdtemp(prefix="fuzz-"))
    all_cases = list(cases(args.cases, args.seed))
    outcomes: list[tuple[Case, Outcome]] = []
    with serve(ROOT / "test-artifacts") as server:
        client = Client(server.url, verbose=False)
        for case in tqdm(all_cases, desc="/upscale"):
            outcomes.append((case, via_api(client, case, folder)))
        if args.browser:
            from playwright.sync_api import sync_playwright

            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
                page = Page(browser, server.url)
                for case in tqdm(page_cases(all_cases), desc="page"):
                    outcomes.append((case, page.send(case, folder)))
                browser.close()
        alive = server.alive()
        rss, peak = server.memory_mb()
    bad = [(c, o) for c, o in outcomes if not o.ok(c.expect)]
    for path in ("api", "page"):
        got = [o for _, o in outcomes if o.path == path]
        if got:
            counts = {k: sum(o.kind == k for o in got) for k in ("image", "message", "failure")}
            times = sorted(o.seconds for o in got)
            print(f"{path}: {len(got)} cases: {counts['image']} images, {counts['message']} clear messages, "
                  f"{counts['failure']} failures; median {times[len(times) // 2]:.2f} s, max {times[-1]:.2f} s")
    print(f"not as expected: {len(bad)}; server alive after all: {alive}; server memory {rss:.0f} MB "
          f"(peak {peak:.0f} MB)")
    for c, o in bad:
        print(f"  {o.path} {c.name} (expected {c.expect}): {o.kind}: {o.detail}")
    if args.out:
        args.out.write_text(json.dumps([{**o.__dict__, "expect": c.expect} for c, o in outcomes], indent=1))
    raise SystemExit(0 if alive and not bad else 1)


if __name__ == "__main__":
    main()
