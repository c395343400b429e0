"""Whole photos (gvtnet.photo, gvtnet.upscale_files, the app's Photo tab): the blend's math by hand, then a photo
composed of real faces, downscaled and restored, against the composition."""
from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import gvtnet
from conftest import ASSETS, ROOT, perturbed
from gvtnet.faces import find_face, find_faces
from gvtnet.images import ImageError, bicubic_upscale, degrade
from gvtnet.inference import super_resolve, to_image, to_tensor
from gvtnet.metrics import psnr
from gvtnet.photo import MIN_FACE, blend_faces, boundary_gradient, feather_mask


@pytest.fixture(scope="module")
def model_x4():
    return gvtnet.load_model(ASSETS / "gvtnet-light-x4.safetensors")


@pytest.fixture(scope="module")
def tiny_model():
    """An untrained light x4 GVTNet whose faces differ from bicubic (its upsampler perturbed: untrained
    light models are exact bicubic)."""
    return perturbed("light-x4", 0.02, only="upsampler.")


@pytest.fixture(scope="module")
def portrait(astronaut_face):
    """A 48x110 portrait whose head is wider than the photo: the face found spans its whole width."""
    photo = Image.new("RGB", (48, 110), (128, 128, 128))
    photo.paste(astronaut_face.resize((60, 60), Image.BICUBIC), (-6, 25))
    return photo


@pytest.fixture(scope="module")
def group():
    """(the composed photo, its heads' boxes), as the app's example makes it."""
    from app.examples import group_photo

    return group_photo()


@pytest.fixture(scope="module")
def group_x4(model_x4, group):
    """(composition cropped to a multiple of 4, its x4 downscale, restore_photo of that)."""
    hr, _ = group
    lr = degrade(hr, 4)
    return hr.crop((0, 0, lr.width * 4, lr.height * 4)), lr, gvtnet.restore_photo(model_x4, lr)


def iou(a, b) -> float:
    w = max(min(a[2], b[2]) - max(a[0], b[0]), 0)
    h = max(min(a[3], b[3]) - max(a[1], b[1]), 0)
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])
    return w * h / (area(a) + area(b) - w * h)


# ----------------------------------------------------------------------------------------------------
# The math


def test_feather_mask_by_hand():
    m = feather_mask(10, 8, 2, fade=(True, True, True, False))
    assert m.shape == (10, 8) and m.dtype == np.float32
    # a pixel's distance to an edge is from its centre: 0.5 -> t = 0.25 -> 3t^2 - 2t^3 = 0.15625
    assert m[0, 3] == pytest.approx(0.15625) and m[1, 3] == pytest.approx(0.84375)
    assert m[2:8, 2:].min() == 1  # inside, and up to the right edge, which is not faded
    assert m[5, 0] == pytest.approx(0.15625) and m[5, 7] == 1
    assert np.array_equal(m, m[::-1])  # top and bottom fade alike


def test_feather_mask_where_neither_edge_of_a_side_fades():
    # a box spanning the photo's width or height: that side keeps weight 1 across
    assert np.array_equal(feather_mask(5, 7, 3, fade=(False,) * 4), np.ones((5, 7), np.float32))
    m = feather_mask(6, 4, 2, fade=(True, True, False, False))
    assert m.shape == (6, 4) and (m == m[:, :1]).all() and m[0, 0] == pytest.approx(0.15625) and m[3, 0] == 1


def test_blend_faces_averages_overlaps_and_keeps_the_background():
    bg = np.full((6, 10, 1), 100.0, np.float32)
    ones = np.ones((4, 4), np.float32)
    dark = (np.full((4, 4, 1), 0.0, np.float32), ones, 1, 1)  # columns 1-4
    light = (np.full((4, 4, 1), 200.0, np.float32), ones, 1, 3)  # columns 3-6
    out = blend_faces(bg, [dark, light])
    assert np.array_equal(out, blend_faces(bg, [light, dark]))  # no face is pasted over another
    assert out[2, 1, 0] == 0 and out[2, 6, 0] == 200  # each face alone
    assert out[2, 3, 0] == out[2, 4, 0] == 100  # the overlap: the mean of 0 and 200
    assert (out[0] == 100).all() and (out[5] == 100).all() and out[2, 9, 0] == 100  # the background
    weak = (np.full((4, 4, 1), 0.0, np.float32), ones * 0.25, 1, 1)
    assert blend_faces(bg, [weak])[2, 2, 0] == 75  # a weak mask covers the background a quarter


def test_boundary_gradient_sees_a_hard_paste_and_ignores_the_photo_border():
    flat = np.full((40, 40), 120, np.uint8)
    box = (10, 10, 30, 30)
    assert boundary_gradient(flat, box) == pytest.approx(0, abs=1e-12)
    pasted = flat.copy()
    pasted[10:30, 10:30] = 200
    assert boundary_gradient(pasted, box) > 0.1  # a step of 80/255 along the border
    assert boundary_gradient(pasted, (0, 0, 40, 40)) == 0  # no side inside the image: nothing pasted across
    assert boundary_gradient(pasted, box, others=[(0, 0, 40, 40)]) == 0  # all of the band inside another face
    # the band's left and right strips alone (another face covers the top and bottom ones) see the same step
    sides = boundary_gradient(pasted, box, others=[(0, 0, 40, 12), (0, 28, 40, 40)])
    assert sides == pytest.approx(boundary_gradient(pasted, box), rel=0.3)
    # the measure only looks at the band: a step far inside the box does not count
    inner = flat.copy()
    inner[15:25, 15:25] = 200
    assert boundary_gradient(inner, box) == pytest.approx(0, abs=1e-12)
    rgb = np.repeat(pasted[..., None], 3, axis=2)
    assert boundary_gradient(rgb, box) == pytest.approx(boundary_gradient(pasted, box), rel=1e-3)


# ----------------------------------------------------------------------------------------------------
# Real faces


def test_composed_photo_every_face_found_restored_and_blended(group, group_x4):
    hr, lr, res = group_x4
    _, truth = group
    assert res.photo.size == res.bicubic.size == hr.size and res.photo.mode == "RGB"
    assert np.array_equal(np.asarray(res.bicubic), np.asarray(bicubic_upscale(lr, 4)))
    # every head found, once: each composed box (in LR pixels) matched by one found box
    truth_lr = [tuple(v / 4 for v in b) for b in truth]
    assert len(res.boxes) == len(truth)
    assert all(max(iou(t, b) for b in res.boxes) > 0.4 for t in truth_lr), (res.boxes, truth_lr)
    assert all(f.sr is not None and f.sr.size == (f.lr.width * 4, f.lr.height * 4) for f in res.faces)
    restored, bicubic, original = np.asarray(res.photo), np.asarray(res.bicubic), np.asarray(hr)
    for left, top, right, bottom in truth:
        region = np.s_[top:bottom, left:right]
        assert psnr(restored[region], original[region]) > psnr(bicubic[region], original[region]) + 0.5
    # outside every face box the photo is the bicubic one exactly
    outside = np.ones(restored.shape[:2], bool)
    for left, top, right, bottom in res.boxes:
        outside[top * 4:bottom * 4, left * 4:right * 4] = False
    assert np.array_equal(restored[outside], bicubic[outside])
    # no seam: along each paste boundary the gradient is the bicubic photo's, where a hard paste is not
    ratios = res.seam_ratios()
    assert all(r <= 1.05 for r in ratios), ratios
    hard_ratios = []
    sr_boxes = [tuple(v * 4 for v in b) for b in res.boxes]
    for face, box in zip(res.faces, sr_boxes):
        hard = res.bicubic.copy()
        hard.paste(face.sr, box[:2])
        others = [b for b in sr_boxes if b != box]
        hard_ratios.append(boundary_gradient(np.asarray(hard), box, others=others) /
                           boundary_gradient(bicubic, box, others=others))
    assert all(h > r for h, r in zip(hard_ratios, ratios)) and max(hard_ratios) > 1.2, (hard_ratios, ratios)


def test_x8_faces_given_as_boxes_beat_bicubic_without_seams(group):
    # at x8 the composed heads are 16-18 px, below what the cascade finds reliably: their boxes are given
    model = gvtnet.load_model(ASSETS / "gvtnet-light-x8.safetensors")
    hr, truth = group
    lr = degrade(hr, 8)
    res = gvtnet.restore_photo(model, lr, boxes=[tuple(round(v / 8) for v in b) for b in truth])
    restored, bicubic = np.asarray(res.photo), np.asarray(res.bicubic)
    original = np.asarray(hr.crop((0, 0, lr.width * 8, lr.height * 8)))
    for left, top, right, bottom in truth:
        region = np.s_[top:min(bottom, original.shape[0]), left:right]
        assert psnr(restored[region], original[region]) > psnr(bicubic[region], original[region]) + 0.5
    assert all(r <= 1.05 for r in res.seam_ratios()), res.seam_ratios()


def test_grayscale_stays_grayscale(model_x4, group_x4):
    _, lr, res = group_x4
    gray = gvtnet.restore_photo(model_x4, lr.convert("L"), boxes=res.boxes[:1])
    assert gray.photo.mode == gray.bicubic.mode == "L" and gray.photo.size == res.photo.size
    assert gray.faces[0].sr.mode == "L"


def test_alpha_kept_and_exif_orientation_applied(model_x4, group_x4):
    _, lr, res = group_x4
    rgba = lr.convert("RGBA")
    alpha = Image.linear_gradient("L").resize(lr.size)
    rgba.putalpha(alpha)
    out = gvtnet.restore_photo(model_x4, rgba, boxes=res.boxes[:1])
    assert out.photo.mode == "RGBA"
    big_alpha = alpha.resize(out.photo.size, Image.BICUBIC)
    assert np.array_equal(np.asarray(out.photo.getchannel("A")), np.asarray(big_alpha))
    # a JPEG whose EXIF says "rotate 90 degrees clockwise" (orientation 6) comes out upright
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    lr.save(buf, format="JPEG", quality=95, exif=exif)
    upright = gvtnet.restore_photo(model_x4, buf.getvalue(), boxes=[])
    assert upright.photo.size == (lr.height * 4, lr.width * 4)


def test_faces_too_small_or_large_are_left_with_a_note(model_x4, group):
    hr, _ = group
    res = gvtnet.restore_photo(model_x4, hr, boxes=[(0, 0, 6, 6), (300, 40, 440, 180)])
    assert [f.sr for f in res.faces] == [None, None]
    assert "too small" in res.notes[0] and "large enough" in res.notes[1]
    assert np.array_equal(np.asarray(res.photo), np.asarray(res.bicubic))
    outside = gvtnet.restore_photo(model_x4, hr, boxes=[(500, 0, 600, 100)])
    assert outside.faces == [] and "holds no pixel of the 480x224 photo: it is left out" in outside.notes[0]
    for box in [(1, 2, 3), (30, 0, 10, 20), (0, 0, float("inf"), 9)]:
        with pytest.raises(ImageError, match="left, top, right, bottom"):
            gvtnet.restore_photo(model_x4, hr, boxes=[box])


def test_faces_spanning_the_photo_are_restored(model_x4, portrait):
    res = gvtnet.restore_photo(model_x4, portrait)
    (left, top, right, bottom), = res.boxes
    assert (left, right) == (0, 48) and res.faces[0].sr is not None
    # given boxes: the whole photo, its full width, its full height, and one crossing its corner
    res = gvtnet.restore_photo(model_x4, portrait, boxes=[(0, 0, 48, 110), (0, 30, 48, 70), (10, -5, 40, 120),
                                                         (30, 90, 70, 130)])
    assert res.boxes == [(0, 0, 48, 110), (0, 30, 48, 70), (10, 0, 40, 110), (30, 90, 48, 110)]
    assert all(f.sr is not None for f in res.faces) and res.photo.size == (192, 440)
    whole = gvtnet.restore_photo(model_x4, portrait, boxes=[(0, 0, 48, 110)])
    sr = np.asarray(to_image(super_resolve(model_x4, to_tensor(portrait))), np.int16)
    assert np.abs(np.asarray(whole.photo, np.int16) - sr).max() <= 1  # the face is pasted whole: no fade


box_side = st.integers(1, 40)
box_corner = st.integers(-10, 20)  # about a third of the boxes then fall outside the photo, a third are restored
boxes_anywhere = st.lists(st.tuples(box_corner, box_corner, box_side, box_side).map(
    lambda b: (b[0], b[1], b[0] + b[2], b[1] + b[3])), max_size=3)


@settings(max_examples=25, deadline=None, database=None)
@given(width=st.integers(8, 24), height=st.integers(8, 24), boxes=boxes_anywhere)
def test_any_boxes_keep_the_background_outside_them(tiny_model, width, height, boxes):
    """Boxes inside, across the border of or wholly outside a small photo: none crashes, each one outside
    is left out with a note, and every pixel outside the boxes is the bicubic background's."""
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8))
    res = gvtnet.restore_photo(tiny_model, photo, boxes=boxes)
    clipped = [(max(l, 0), max(t, 0), min(r, width), min(b, height)) for l, t, r, b in boxes]
    kept = [(l, t, r, b) for l, t, r, b in clipped if r > l and b > t]
    assert res.boxes == kept
    assert [f.sr is not None for f in res.faces] == [min(r - l, b - t) >= MIN_FACE for l, t, r, b in kept]
    assert sum("holds no pixel" in n for n in res.notes) == len(boxes) - len(kept)
    assert res.photo.size == (width * 4, height * 4)
    restored, bicubic = np.asarray(res.photo), np.asarray(res.bicubic)
    assert np.array_equal(bicubic, np.asarray(bicubic_upscale(photo, 4)))
    outside = np.ones(restored.shape[:2], bool)
    for l, t, r, b in kept:
        outside[t * 4:b * 4, l * 4:r * 4] = False
    assert np.array_equal(restored[outside], bicubic[outside])


def test_transparent_black_does_not_darken_the_edges(model_x4):
    """A white square on transparent black: its colour stays white up to its edges (the black under the
    transparency is not drawn in), and the alpha is kept where the mode is."""
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[8:24, 8:24] = 255
    img = Image.fromarray(rgba, "RGBA")
    res = gvtnet.restore_photo(model_x4, img, boxes=[(4, 4, 28, 28)])
    assert res.photo.mode == res.bicubic.mode == "RGBA" and res.faces[0].sr is not None
    alpha = np.asarray(res.photo.getchannel("A"))
    assert np.array_equal(alpha, np.asarray(img.getchannel("A").resize(res.photo.size, Image.BICUBIC)))
    edge = (alpha > 0) & (alpha < 255)
    assert edge.any()
    for out in (res.photo, res.bicubic):
        assert np.asarray(out)[..., :3][edge].mean() > 250  # 125 with the black drawn in
    assert to_tensor(img).min() == 1  # a tensor for any model: composited on white too
    assert np.asarray(gvtnet.upscale(model_x4, img))[edge].mean() > 250


def test_find_faces_includes_find_face(group):
    photo = degrade(group[0], 2)
    boxes = find_faces(photo)
    assert boxes == sorted(boxes) and len(boxes) == 3
    largest = find_face(photo)  # on a copy of its own size: one of the faces find_faces has
    assert max(iou(largest, b) for b in boxes) > 0.5


# ----------------------------------------------------------------------------------------------------
# The command line


def test_cli_folders_photos_broken_files_and_overwrite(tmp_path, group_x4, capsys):
    from gvtnet.upscale_files import main

    _, lr, _ = group_x4
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    lr.save(src / "sub" / "group.png")
    lr.crop((0, 0, 32, 32)).save(src / "face.jpg")
    (src / "sub" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (src / "notes.txt").write_text("not an image, not looked at")
    out = tmp_path / "out"
    args = [str(src), "--weights", str(ASSETS / "gvtnet-light-x4.safetensors"), "--out", str(out), "--photo"]
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 1  # one file skipped
    printed = capsys.readouterr()
    assert f"skipped {src / 'sub' / 'broken.png'}" in printed.out + printed.err
    assert "2 of 3 images upscaled x4 (2 as whole photos, 3 faces restored), 1 skipped" in printed.out
    assert f"{src / 'face.jpg'}: No face found" in printed.out  # a corner of a face is no face
    written = Image.open(out / "sub" / "group_x4.png")
    assert written.format == "PNG" and written.size == (lr.width * 4, lr.height * 4)
    assert Image.open(out / "face_x4.png").size == (128, 128)
    # without --photo an image no larger than a face is one face, restored whole, as gvtnet.upscale does
    with pytest.raises(SystemExit) as e:
        main([str(src / "face.jpg"), *args[1:4], str(tmp_path / "single")])
    assert e.value.code == 0
    model = gvtnet.load_model(ASSETS / "gvtnet-light-x4.safetensors")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "single" / "face_x4.png")),
                          np.asarray(gvtnet.upscale(model, src / "face.jpg")))
    with pytest.raises(SystemExit) as e:  # the folder now holds results
        main(args)
    assert e.value.code == 2 and "--overwrite" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(args + ["--overwrite"])
    assert e.value.code == 1


def test_python_m_gvtnet_upscale_files_does_not_warn():
    run = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", "gvtnet.upscale_files", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "Warning" not in run.stderr and "--photo" in run.stdout


# ----------------------------------------------------------------------------------------------------
# The app's Photo tab, its callbacks without a server


def test_photo_tab_callbacks_and_choosing_a_face(tmp_path):
    from app.examples import GROUP, group_file
    from app.tabs.inputs import CENTRE, REAL
    from app.tabs.photo import chosen_face, photo_view
    from app.tabs.restore import restore

    v = photo_view(group_file(), 4, "", "light", None)
    assert v.notes.startswith(f"{len(GROUP)} faces found, {len(GROUP)} restored")
    boxes = Image.open(v.boxes)
    restored, bicubic = (Image.open(p) for p in v.slider)
    assert boxes.size == restored.size == bicubic.size and v.download == v.slider[0]
    assert len(v.gallery) == len(v.faces) == len(GROUP)
    path, number = chosen_face(v.faces, 1)
    assert number == 2 and np.array_equal(np.asarray(Image.open(path)), np.asarray(v.faces[1][1]))
    s = restore(path, 4, REAL, CENTRE, "", "light", None)  # what choosing it does to the session
    assert s.hr is None and s.lr.size == v.faces[1][1].size  # at its own size, as the Photo tab restored it
    import gradio as gr

    with pytest.raises(gr.Error, match="Restore a photo first"):
        chosen_face([], 0)


def test_photo_tab_on_a_face_spanning_the_photo_and_a_scale_without_weights(tmp_path, portrait):
    import gradio as gr

    from app.tabs.photo import photo_view

    path = tmp_path / "portrait.png"
    portrait.save(path)
    v = photo_view(str(path), 4, "", "light", None)
    assert v.notes.startswith("1 face found, 1 restored") and Image.open(v.download).size == (192, 440)
    with pytest.raises(gr.Error, match="Cannot restore photos at x2: no shipped GVTNet weights"):
        photo_view(str(path), 2, "", "light", None)


def test_real_low_resolution_examples_are_lfw_faces_restored_as_they_are():
    from skimage import data

    from app.examples import LFW_FACES, lfw_files
    from app.tabs.inputs import CENTRE, REAL
    from app.tabs.restore import restore

    lfw = data.lfw_subset()
    for index, path in zip(LFW_FACES, lfw_files()):
        img = Image.open(path)
        assert img.format == "PNG" and img.mode == "L" and img.size == (25, 25)
        assert np.abs(np.asarray(img) / 255 - lfw[index]).max() <= 0.5 / 255 + 1e-9
    s = restore(path, 4, REAL, CENTRE, "", "light", None)
    assert s.hr is None and s.lr.size == (25, 25) and s.sr.size == (100, 100) and s.sr.mode == "L"


def test_photo_tab_refuses_what_the_main_input_refuses(tmp_path):
    import gradio as gr

    from app.tabs.inputs import prepare
    from app.tabs.photo import photo_view

    path = tmp_path / "tiny.png"
    Image.new("RGB", (1, 1), (120, 80, 40)).save(path)
    messages = []
    for call in (lambda: prepare(str(path), 4, "real", "centre"), lambda: photo_view(str(path), 4, "", "light", None)):
        with pytest.raises(gr.Error) as e:
            call()
        messages.append(e.value.message)
    assert messages[0] == messages[1] and "too small (1x1)" in messages[0]


def test_photo_tab_restores_the_boxes_the_visitor_keeps_and_adds():
    import gradio as gr

    from app.examples import GROUP, group_file
    from app.tabs.photo import parse_boxes, photo_view

    v = photo_view(group_file(), 4, "", "light", None)
    assert len(v.found) == len(GROUP)
    own = parse_boxes("2, 2, 30, 30;\n(60, 10, 90, 40)")
    assert own == [(2, 2, 30, 30), (60, 10, 90, 40)]
    w = photo_view(group_file(), 4, "", "light", None, boxes=v.found[1:] + own[:1])
    assert w.notes.startswith(f"{len(GROUP)} faces given") and w.found == v.found[1:] + own[:1]
    assert [n for n, _ in w.faces] == [1, 2, 3]
    for bad in ("1, 2, 3", "10, 10, 5, 20", "a, b, c, d"):
        with pytest.raises(gr.Error, match="is not a face box"):
            parse_boxes(bad)
