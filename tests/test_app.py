"""The app: its callbacks directly, then its API through gradio_client against a live server."""
from __future__ import annotations

import io
import re
import struct
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, to_array
from gvtnet.images import bicubic_upscale, degrade
from gvtnet.metrics import psnr


@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


def save_png(img: Image.Image, path: Path) -> str:
    img.save(path, format="PNG")
    return str(path)


# ----------------------------------------------------------------------------------------------------
# Callbacks, without a server


def test_prepare_simulate_and_real(tmp_path, astronaut_face):
    from app.tabs.inputs import CENTRE, REAL, SIMULATE, prepare

    path = save_png(astronaut_face, tmp_path / "face.png")
    hr, lr, _ = prepare(path, 8, SIMULATE, CENTRE)
    assert hr.size == (128, 128) and lr.size == (16, 16)
    assert np.array_equal(to_array(hr), to_array(astronaut_face))
    hr, lr, notices = prepare(path, 4, REAL, CENTRE)  # a real low-resolution input is kept as it is
    assert hr is None and lr.size == (128, 128) and notices == []
    big = save_png(astronaut_face.resize((180, 180), Image.BICUBIC), tmp_path / "big.png")
    hr, lr, notices = prepare(big, 8, REAL, CENTRE)  # above REAL_MAX_SIDE: reduced, and said once why
    assert lr.size == (128, 128) and len(notices) == 1 and "180 px input was reduced to 128 px" in notices[0]


def test_real_low_resolution_faces_restore_at_their_own_size(tmp_path):
    """An LFW example (25 px) at x8 and a Photo-tab face (41 px) at x4: not cut to 16 or 32 px as before."""
    from app.examples import lfw_files
    from app.tabs.inputs import CENTRE, REAL
    from app.tabs.restore import NO_ORIGINAL, restore, status_line

    face = save_png(Image.new("RGB", (41, 41), (150, 110, 90)), tmp_path / "face-2.png")
    for path, side, scale in ((lfw_files()[0], 25, 8), (face, 41, 4)):  # the two cases
        s = restore(path, scale, REAL, CENTRE, "", "light", None)
        assert s.lr.size == (side, side) and s.sr.size == (scale * side, scale * side) and s.notices == []
        line = status_line(s)
        assert f"{side}x{side} input restored at x{scale} to {scale * side}x{scale * side} as it is" in line
        assert line.endswith(NO_ORIGINAL) and "reduced" not in line


def test_a_visitors_mistake_is_one_log_line_without_a_traceback(caplog):
    import gradio as gr

    from app.tabs.inputs import UserError, no_face

    with caplog.at_level("INFO", logger="app"), pytest.raises(gr.Error) as e:
        no_face()
    assert isinstance(e.value, UserError) and e.value.print_exception is False and e.value.duration <= 6
    assert [r.getMessage() for r in caplog.records] == [f"user error: {e.value.message}"]


def test_non_face_image_works_with_a_notice(tmp_path):
    from app.tabs.inputs import FACE, SIMULATE, prepare

    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 200, 3), dtype=np.uint8))
    hr, lr, notices = prepare(save_png(noise, tmp_path / "noise.png"), 4, SIMULATE, FACE)
    assert hr.size == (128, 128) and any("No face found" in n for n in notices)


def test_grayscale_stays_grayscale(tmp_path, hopper_face):
    from app.tabs.inputs import CENTRE, SIMULATE
    from app.tabs.restore import restore, restore_view

    s = restore(save_png(hopper_face.convert("L"), tmp_path / "gray.png"), 4, SIMULATE, CENTRE, False, "light", None)
    view = restore_view(s)
    assert s.sr.mode == "L" and Image.open(view.gvtnet).mode == "L"
    assert Image.open(view.vs_original[1]).mode == "L"


def test_clicks_select_and_ignore_none(tmp_path, astronaut_face):
    from app.context import values
    from app.tabs.attention import select_query
    from app.tabs.inputs import CENTRE, SIMULATE, face_picker, picker_cell
    from app.tabs.lam import lam_picker, lam_window, place_lam
    from app.tabs.neighbour_graph import graph_view, select_graph_pixel
    from app.tabs.restore import restore

    s = restore(save_png(astronaut_face, tmp_path / "face.png"), 4, SIMULATE, CENTRE, False, "light", None)
    assert select_graph_pixel(s, None).graph_pixel is None
    assert select_graph_pixel(s, [None, None]).graph_pixel is None
    assert picker_cell(s) == 12  # 32 LR px drawn 384 px wide
    s = select_graph_pixel(s, [383, 0])  # top-right corner of the large face
    assert s.graph_pixel == (0, 31)
    face, caption, overview, heat, stats = values(graph_view(s, 0, 0))
    assert Image.open(face).size == (384, 384)
    node = int(s.inspection.graph(0).node_map[0, 31])
    assert f"**node {node}**" in caption and f"window {s.inspection.window_at(0, 0, 31)}**" in caption
    assert stats[0][:2] == ["nodes", 64] and len(overview.data) == 1 and len(heat.layout.shapes) == 1
    assert select_query(s, [64, 32]).query == (2, 5)
    assert select_query(s, None).query == (2, 5)
    picker = Image.open(face_picker(s, s.query))
    assert picker.size == (384, 384)
    assert picker.getpixel((5 * 12 - 2, 2 * 12 + 6)) == (0, 255, 102)  # the query's LR pixel outlined
    assert place_lam(s, None).lam_centre == (64, 64)
    # the LAM picker is the 128 px restoration drawn 384 px wide (3 px per SR pixel), like the graph's face
    assert Image.open(lam_picker(s, 16)).size == (384, 384)
    assert place_lam(s, [383, 383]).lam_centre == (127, 127)
    assert lam_window(s, 16) == (112, 112)  # kept inside the image
    assert place_lam(s, [0.25 * 384, 0.75 * 384]).lam_centre == (96, 32)


def test_selected_pixel_keeps_its_place_across_groups(tmp_path, astronaut_face):
    """The selection is the clicked pixel: in every group its node is the one covering that pixel (group 1
    rolls by 6, so a fixed node index would jump across the face)."""
    from analysis import graphs
    from app.tabs.inputs import CENTRE, SIMULATE
    from app.tabs.neighbour_graph import graph_view, select_graph_pixel
    from app.tabs.restore import restore

    s = restore(save_png(astronaut_face, tmp_path / "face.png"), 4, SIMULATE, CENTRE, False, "light", None)
    s = select_graph_pixel(s, [12 * 2 + 5, 12 * 1 + 5])  # LR pixel (1, 2), near the top-left
    nodes = []
    for group in (0, 1, 0):
        caption = graph_view(s, group, 0).caption
        ins = s.inspection
        nodes.append(int(ins.graph(group).node_map[1, 2]))
        assert f"**node {nodes[-1]}**" in caption
        window = ins.window_at(group, 1, 2)
        assert graphs.node_positions(ins, group, window)[nodes[-1]].tolist() == [1, 2]  # drawn on the click
    assert nodes[0] == nodes[2] != nodes[1]


def test_graph_off_and_window_scope_in_the_view(tmp_path, astronaut_face):
    from app.context import DEFAULT_GRAPH
    from app.tabs.inputs import CENTRE, SIMULATE
    from app.tabs.neighbour_graph import graph_view
    from app.tabs.restore import restore

    s = restore(save_png(astronaut_face, tmp_path / "face.png"), 4, SIMULATE, CENTRE, False, "light", None)
    on = graph_view(s, 1, 0)
    off = graph_view(s, 1, 0, replace(DEFAULT_GRAPH, use_graph=False))
    assert dict((r[0], r[1]) for r in off.stats)["density"] == 1 and "The graph is off" in off.caption
    assert dict((r[0], r[1]) for r in on.stats)["density"] < 1
    assert s.inspection.graph(1).adjacency.all()
    window = graph_view(s, 1, 0, replace(DEFAULT_GRAPH, graph_scope="window"), edges="kept")
    assert s.inspection.scope == "window" and "each window has a graph of its own" in window.caption
    assert "the 0 edges kept" not in window.caption and "(cyan" in window.caption


def test_threshold_sweep_over_the_example_faces(tmp_path, astronaut_face):
    from app.context import DEFAULT_GRAPH
    from app.tabs.inputs import CENTRE, SIMULATE
    from app.tabs.restore import restore
    from app.tabs.threshold import SWEEP_THRESHOLDS, threshold_faces_view

    s = restore(save_png(astronaut_face, tmp_path / "face.png"), 8, SIMULATE, CENTRE, False, "light", None)
    fig, rows = threshold_faces_view(s, DEFAULT_GRAPH)
    assert len(rows) == len(SWEEP_THRESHOLDS) + 1 and rows[-1][0] == "graph off"
    own = rows[[r[0] for r in rows].index(0.85)]
    assert own[1:3] == [0, 0]  # the model's own T changes nothing
    assert "3 faces" in fig.layout.title.text  # the two examples and this one


def test_graph_api_callback_with_a_pixel(tmp_path, hopper_face):
    import gradio as gr

    from app.tabs.api import api_graph

    path = save_png(hopper_face, tmp_path / "face.png")
    plain = api_graph(path, 4, 0.85, "model's own", "released", 1, 2)
    assert plain["window"] == 0 and "node" not in plain and np.array(plain["adjacency"]).shape == (64, 64)
    res = api_graph(path, 4, 0.85, "model's own", "released", 1, 2, row=30, col=3)
    assert (res["row"], res["col"]) == (30, 3) and [30, 3] in res["window_pixels"]
    assert res["adjacency"] == plain["adjacency"]  # 'group' scope: every window shares the graph
    own = api_graph(path, 4, 0.85, "model's own", "released", 1, 2, row=30, col=3, scope="window")
    assert own["window"] == res["window"] and own["adjacency"] != plain["adjacency"]
    assert res["window_pixels"][res["node"]] == [30, 3]
    off = api_graph(path, 4, 0.85, "model's own", "released", 1, 2, graph_off=True)
    assert np.array(off["adjacency"]).all() and off["use_graph"] is False
    with pytest.raises(gr.Error, match="outside"):
        api_graph(path, 4, 0.85, "model's own", "released", 1, 2, row=32, col=0)
    with pytest.raises(gr.Error, match="both row and col"):
        api_graph(path, 4, 0.85, "model's own", "released", 1, 2, row=3)


def test_lam_api_callback_refuses_bad_windows(tmp_path, hopper_face):
    import gradio as gr

    from app.tabs.api import api_lam

    path = save_png(hopper_face, tmp_path / "face.png")
    for window in (0, -4, 129):  # the x8 restoration is 128 px
        with pytest.raises(gr.Error, match=f"A {window} px window does not fit the 128x128 restoration"):
            api_lam(path, 8, 0, 0, window)
    for row, col in ((128, 0), (0, -1)):
        with pytest.raises(gr.Error, match=rf"SR pixel \({row}, {col}\) is outside the 128x128 restoration"):
            api_lam(path, 8, row, col, 8)
    with pytest.raises(gr.Error, match="Give row, col"):
        api_lam(path, 8, 0, None, 8)


@pytest.mark.parametrize("grey", [False, True], ids=["colour", "grey"])
def test_restore_and_threshold_report_one_psnr_and_one_rounding(tmp_path, astronaut_face, grey):
    """Restore's table and the Threshold tab's sweep give the same PSNR for the same face and model: Y-PSNR
    of the RGB images, as gvtnet.evaluate and the model card report it, a grey face included (whose plain
    grey PSNR is 1.3 dB lower). Each column has one rounding: PSNR 2 decimals, SSIM 4, trailing zeros
    kept (the astronaut's x4 SSIM is 0.8550, which rounding alone shows as 0.855 beside 0.8539)."""
    from analysis import threshold
    from app.context import DEFAULT_GRAPH
    from app.tabs.inputs import FACE, SIMULATE
    from app.tabs.restore import metrics, restore
    from gvtnet.evaluate import face_metrics
    from gvtnet.inference import to_tensor

    face = astronaut_face.convert("L") if grey else astronaut_face
    s = restore(save_png(face, tmp_path / "face.png"), 4, SIMULATE, FACE, "", "light", None)
    table = {name: (p, q) for name, p, q in metrics(s)}
    assert set(table) == {"bicubic", "GVTNet", "SwinIR"}
    for p, q in table.values():
        assert re.fullmatch(r"\d+\.\d{2}", p) and re.fullmatch(r"0\.\d{4}", q), (p, q)
    rgb = [np.asarray(img.convert("RGB"))[None] for img in (s.sr, s.hr)]
    assert float(table["GVTNet"][0]) == pytest.approx(face_metrics(*rgb)[0, 2], abs=0.005)
    # the Threshold tab's figure (app.tabs.threshold.threshold_view), at the model's own T only
    fig = threshold.sweep_figure(threshold.sweep(s.model, to_tensor(s.lr), [DEFAULT_GRAPH.threshold], hr=s.hr))
    panel = next(a.text for a in fig.layout.annotations if "vs HR" in a.text)
    assert "PSNR-Y" in panel
    curve = next(t for t in fig.data if t.name and "vs HR" in t.name)
    assert curve.y[0] == pytest.approx(float(table["GVTNet"][0]), abs=0.02)  # the same output, to float error


def test_bad_thresholds_and_checkpoint(tmp_path):
    import gradio as gr

    from app.tabs.model import load_checkpoint
    from app.tabs.threshold import parse_thresholds

    assert parse_thresholds("0.2, 0.85") == [0.2, 0.85]
    for text in ("abc", "1.5", ""):
        with pytest.raises(gr.Error):
            parse_thresholds(text)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not weights")
    with pytest.raises(gr.Error, match="Cannot use this checkpoint"):
        load_checkpoint(str(bad))


def test_model_tab_shows_the_recorded_ablation():
    """The Model tab's tables hold docs/ablation-results.json's numbers, computed here from the records
    themselves: bicubic's means, the shipped GVTNet row's mean over seeds with its seed range, its step from
    the row above (dense graph) paired by seed, and the fine-tuned pair's face-by-face difference."""
    import json
    from statistics import fmean

    from app.state import ABLATION_RESULTS
    from app.tabs.model import ablation_figure, ablation_summary

    results = json.loads(ABLATION_RESULTS.read_text())
    table = [[c.strip() for c in line.strip("|").split("|")] for line in ablation_summary().splitlines()
             if line.startswith("|")]

    def row(text: str) -> list[str]:
        return next(cells for cells in table if any(text in c for c in cells))

    def mean(run: str, key: str = "psnr_y") -> float:
        return fmean(results[run][key])

    assert row("bicubic")[4:6] == [f"{mean('bicubic'):.3f}", f"{mean('bicubic', 'ssim_y'):.4f}"]
    seeds = [s for s in range(4) if f"gvtnet-s{s}" in results]
    assert len(seeds) >= 2
    shipped = row("GVTNet light as shipped")
    per_seed = [mean(f"gvtnet-s{s}") for s in seeds]
    assert shipped[4] == f"{fmean(per_seed):.3f} ({min(per_seed):.3f}-{max(per_seed):.3f})"
    assert shipped[3] == f"{len(seeds)} of 4"
    step = fmean(mean(f"gvtnet-s{s}") - mean(f"dense-graph-s{s}") for s in seeds)
    assert shipped[6].startswith(f"{step:+.3f} [") and f"({len(seeds)} seeds; detects " in shipped[6]
    removed = row("minus with graph, face by face")
    faces = [a - b for a, b in zip(results["ft-strided"]["psnr_y"], results["ft-gvtnet"]["psnr_y"])]
    assert removed[1].startswith(f"{fmean(faces):+.3f} (")
    assert f"higher on {sum(d > 0 for d in faces) / len(faces):.0%} of faces" in removed[1]
    fig = Image.open(ablation_figure())
    assert fig.format == "PNG" and fig.width > 400


def test_python_app_py_runs_one_torch_thread_per_job():
    """app.py, as `python app.py` and a Space run it, sets one torch thread before it builds the app (the
    queue runs jobs side by side), whatever was set before; build and launch are replaced by reports."""
    code = ("import runpy, types, torch, app; torch.set_num_threads(2); "
            "app.build_app = lambda: print('built with', torch.get_num_threads(), 'threads') or "
            "types.SimpleNamespace(launch=lambda **kw: print('launched', sorted(kw))); "
            "runpy.run_path('app.py', run_name='__main__')")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "built with 1 threads" in run.stdout and "'css'" in run.stdout and "'max_file_size'" in run.stdout


def test_examples_are_faces():
    from app.examples import example_files
    from gvtnet.faces import find_face

    for path in example_files():
        img = Image.open(path)
        assert img.format == "PNG" and img.width == img.height
        assert find_face(img) is not None


# ----------------------------------------------------------------------------------------------------
# The API, through gradio_client


@pytest.mark.server
@pytest.mark.parametrize("scale", [4, 8])
@pytest.mark.parametrize("face", ["astronaut_face", "hopper_face"])
def test_upscale_endpoint(client, tmp_path, request, face, scale):
    from gradio_client import handle_file

    hr = request.getfixturevalue(face)
    out = client.predict(handle_file(save_png(hr, tmp_path / "face.png")), scale, "simulate", "centre",
                         api_name="/upscale")
    sr = Image.open(out)
    assert sr.format == "PNG" and sr.size == (128, 128) and sr.mode == "RGB"
    bicubic = bicubic_upscale(degrade(hr, scale), scale)
    assert psnr(to_array(sr), to_array(hr)) > psnr(to_array(bicubic), to_array(hr))


@pytest.mark.server
def test_upscale_endpoint_finds_the_face_in_a_big_photo(client, tmp_path, astronaut):
    from gradio_client import handle_file

    big = astronaut.resize((1600, 1600), Image.BICUBIC)  # a big photo is downscaled, not refused
    out = client.predict(handle_file(save_png(big, tmp_path / "big.png")), 4, api_name="/upscale")
    assert Image.open(out).size == (128, 128)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bad_files(tmp_path) -> dict[str, tuple[Path, str]]:
    """name -> (file, words the error must contain)."""
    buf = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(buf, format="PNG")
    files = {
        "garbage": (b"\x00\x01 this is not an image" * 40, "not an image"),
        "truncated": (buf.getvalue()[: len(buf.getvalue()) // 2], "truncated"),
        "tiny": (None, "too small"),
        # a valid PNG header announcing 100000 x 100000 pixels (40 GB decoded): refused before decoding
        "bomb": (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
                 + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _png_chunk(b"IEND", b""), "too large"),
    }
    out = {}
    for name, (data, words) in files.items():
        path = tmp_path / f"{name}.png"
        if data is None:
            Image.new("RGB", (4, 4)).save(path)
        else:
            path.write_bytes(data)
        out[name] = (path, words)
    return out


@pytest.mark.server
def test_bad_inputs_get_clear_errors(client, tmp_path):
    from gradio_client import handle_file

    for name, (path, words) in bad_files(tmp_path).items():
        with pytest.raises(Exception) as err:
            client.predict(handle_file(str(path)), 4, api_name="/upscale")
        assert words in str(err.value), f"{name}: {err.value}"


@pytest.mark.server
def test_graph_and_lam_endpoints(client, tmp_path, hopper_face):
    from gradio_client import handle_file

    face = handle_file(save_png(hopper_face, tmp_path / "face.png"))
    res = client.predict(face, 8, 0.5, "∞", "released", 1, 2, api_name="/graph")
    assert res["stats"]["nodes"] == 64 and res["threshold"] == 0.5 and res["minkowski_p"] == "inf"
    a = np.array(res["adjacency"])
    assert a.shape == (64, 64) and set(np.unique(a)) <= {0, 1}
    at = client.predict(face, 8, 0.5, "∞", "released", 1, 2, 5, 9, False, "window", api_name="/graph")
    assert (at["row"], at["col"]) == (5, 9) and at["window_pixels"][at["node"]] == [5, 9]
    assert at["graph_scope"] == "window" and np.array(at["adjacency"]).shape == (64, 64)
    res = client.predict(face, 8, 120, 0, 8, api_name="/lam")
    from app.tabs.restore import NO_GRAPH

    assert set(res) == {"GVTNet", "SwinIR", NO_GRAPH}  # at x8 the graph-free GVTNet ships too
    assert res["GVTNet"]["di"] > 0 and (res["GVTNet"]["row"], res["GVTNet"]["col"]) == (120, 0)


@pytest.mark.server
@pytest.mark.slow
def test_eight_concurrent_clients(app_url, tmp_path, astronaut_face):
    """Eight visitors sending the same image at once, in a loop for a bounded time: every request answers
    with the same, complete PNG (identical results race on Gradio's content-addressed cache)."""
    from gradio_client import Client, handle_file

    path = save_png(astronaut_face, tmp_path / "face.png")
    deadline = time.monotonic() + 30
    results, errors = [], []

    def visitor():
        try:
            c = Client(app_url, verbose=False)
            while True:
                out = c.predict(handle_file(path), 8, api_name="/upscale")
                results.append(Path(out).read_bytes())
                if time.monotonic() > deadline:
                    break
        except Exception as e:  # noqa: BLE001 - any failure is the test's finding
            errors.append(repr(e))

    threads = [threading.Thread(target=visitor) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert not errors and len(results) >= 8
    pixels = {Image.open(io.BytesIO(b)).tobytes() for b in results}
    assert len(pixels) == 1
