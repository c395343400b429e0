"""LAM and DI against the reference's definitions (the LAM_Demo reference code, as documented in
../shared/docs/lam-reference.md)."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage
from torch import nn

import gvtnet
from analysis import lam
from conftest import perturbed
from gvtnet.images import bicubic_upscale, degrade
from gvtnet.inference import to_image, to_tensor
from gvtnet.model import WindowAttention


@pytest.fixture(scope="module")
def model():
    """A light x4 GVTNet whose output depends on its body (untrained light models are exact bicubic)."""
    return perturbed("light-x4", 0.02, only="upsampler.")


@pytest.fixture(scope="module")
def lr16(request):
    face = request.getfixturevalue("astronaut_face")
    return to_tensor(degrade(face, 8))  # (1, 3, 16, 16): a small input keeps the path cheap


def test_di_uniform_and_single_pixel():
    assert lam.diffusion_index(np.full((16, 16), 0.3)) == pytest.approx(100, abs=1e-6)
    one = np.zeros((16, 16))
    one[3, 7] = 1
    # the 1e-7 floor adds about 100 * n * 1e-7 = 0.0026 to the ideal 100/n
    assert lam.diffusion_index(one) == pytest.approx(100 / one.size, abs=0.005)


@pytest.mark.parametrize("seed", [0, 1])
def test_di_is_the_pairwise_gini(seed):
    m = np.random.default_rng(seed).random((12, 9)) ** 3
    m[0, 0] = -0.2  # negative values are shifted as the reference does
    a = m.ravel() - min(0, m.min()) + 1e-7
    gini = np.abs(a[:, None] - a[None, :]).sum() / (2 * a.size**2 * a.mean())  # mean absolute difference
    assert lam.diffusion_index(m) == pytest.approx((1 - gini) * 100, rel=1e-10)


def test_blur_path_matches_reflect101_gaussian(lr16):
    x, dx = lam.blur_path(lr16, sigma=1.2, fold=10, kernel_size=9)
    assert torch.allclose(x[-1], lr16[0], atol=1e-6)  # sigma 0 is a delta: the path ends at the input
    k = lam.gaussian_kernel(1.2, 9).numpy()
    ref = np.stack([ndimage.convolve(c, k, mode="mirror") for c in lr16[0].double().numpy()])  # mirror = reflect-101
    assert np.allclose(x[0].numpy(), ref, atol=1e-6)
    assert torch.allclose(dx.sum(0) / 10, x[-1] - x[0], atol=1e-5)  # the steps telescope


def test_completeness(model, lr16):
    """Attributions sum to D(F(I)) - D(F(x0)) up to the Riemann error of the right-endpoint sum, which is
    first order (about 1/fold relative here): halving the step halves it, and Richardson extrapolation of
    two folds removes it."""
    row, col, win = 20, 24, 16
    x, _ = lam.blur_path(lr16, 1.2, 2, 9)
    with torch.no_grad():
        delta = (lam.window_gradient(model(lr16), row, col, win) - lam.window_gradient(model(x[:1]), row, col, win)).item()
    total = {fold: float(lam.local_attribution_map(model, lr16, row, col, win, fold=fold, batch_size=20).attribution.sum())
             for fold in (10, 20)}
    assert abs(delta) > 1.0
    assert abs(total[20] - delta) < 0.1 * abs(delta)
    assert 0.4 < (total[20] - delta) / (total[10] - delta) < 0.6
    assert abs(2 * total[20] - total[10] - delta) < 0.01 * abs(delta)


def test_batched_equals_sequential(model, lr16):
    one = lam.local_attribution_map(model, lr16, 8, 8, fold=7, batch_size=1)
    calls = []
    batched = lam.local_attribution_map(model, lr16, 8, 8, fold=7, batch_size=3, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(3, 7), (6, 7), (7, 7)]  # a ragged last batch
    scale = np.abs(one.attribution).max()
    assert np.allclose(batched.attribution, one.attribution, atol=1e-5 * scale)
    assert np.allclose(batched.map, one.map, atol=1e-4)
    assert batched.di == pytest.approx(one.di, abs=1e-3)
    assert one.map.shape == (16, 16) and one.map.max() == pytest.approx(1) and one.map.min() >= 0


def test_nearest_upsampler_gives_zero_map_without_nan(lr16):
    res = lam.local_attribution_map(nn.Upsample(scale_factor=4, mode="nearest"), lr16, 10, 10, fold=5, batch_size=5)
    assert not np.isnan(res.attribution).any() and not np.isnan(res.map).any()
    assert (res.map == 0).all()
    assert np.isfinite(res.di)


def test_renderings(model, lr16):
    res = lam.local_attribution_map(model, lr16, 20, 12, window=16, fold=4, batch_size=4)
    size = (lr16.shape[-1] * 4, lr16.shape[-2] * 4)
    for img in (lam.lam_overlay(res), lam.lam_kde(res), lam.window_box(res)):
        assert isinstance(img, Image.Image) and img.size == size
    box = np.asarray(lam.window_box(res))
    assert (box[20, 12:28] == (255, 0, 0)).all() and (box[20:36, 12] == (255, 0, 0)).all()
    r, c = np.unravel_index(res.map.argmax(), res.map.shape)  # m = 1: seismic's end, dark red (0.5, 0, 0)
    upscaled = np.asarray(bicubic_upscale(to_image(lr16), 4)).astype(float)
    overlay = np.asarray(lam.lam_overlay(res)).astype(float)
    assert np.allclose(overlay[4 * r : 4 * r + 4, 4 * c : 4 * c + 4],
                       0.5 * upscaled[4 * r : 4 * r + 4, 4 * c : 4 * c + 4] + 0.5 * np.array([127.5, 0, 0]), atol=1.5)
    fig = lam.lam_figure({"a": res, "b": res})
    assert len(fig.axes) == 6 and "DI" in fig.axes[1].get_title()


def test_window_gradient_truncates_at_every_edge():
    """A window hanging over any edge sums only the pixels inside (negative starts included, which
    Python's slicing would otherwise make empty); one wholly outside is refused."""
    y = torch.rand(2, 3, 20, 24, generator=torch.Generator().manual_seed(0))
    dh, dw = (y[:, :, :-1, :] - y[:, :, 1:, :]) ** 2, (y[:, :, :, :-1] - y[:, :, :, 1:]) ** 2
    g = torch.sqrt(dh[:, :, :, :-1] + dw[:, :, :-1, :])  # (2, 3, 19, 23), by hand
    torch.testing.assert_close(lam.window_gradient(y, -4, -3, 8), g[:, :, 0:4, 0:5].sum((1, 2, 3)))
    torch.testing.assert_close(lam.window_gradient(y, 15, 20, 8), g[:, :, 15:19, 20:23].sum((1, 2, 3)))
    torch.testing.assert_close(lam.window_gradient(y, 2, 3, 8), g[:, :, 2:10, 3:11].sum((1, 2, 3)))
    for row, col in [(-8, 0), (0, -9), (19, 0), (0, 30)]:
        with pytest.raises(ValueError, match="outside"):
            lam.window_gradient(y, row, col, 8)


def test_negative_window_gives_a_real_map(model, lr16):
    res = lam.local_attribution_map(model, lr16, -4, -4, window=16, fold=3, batch_size=3)
    assert res.map.max() == pytest.approx(1) and res.di < 100


def test_shared_path_parallel_and_reused_output(model, lr16):
    """attribution_maps gives each model's local_attribution_map (threads or not), its sr is model(lr)
    without a second forward pass, and progress counts the path points of all the models."""
    other = perturbed("swinir-light-x4", 0.02, only="upsampler.")
    models = {"a": model, "b": other}
    calls = []
    par = lam.attribution_maps(models, lr16, 20, 24, fold=4, batch_size=2, progress=lambda d, t: calls.append((d, t)))
    seq = lam.attribution_maps(models, lr16, 20, 24, fold=4, batch_size=2, parallel=False)
    assert sorted(calls)[-1] == (8, 8) and len(calls) == 4
    for name, m in models.items():
        one = lam.local_attribution_map(m, lr16, 20, 24, fold=4, batch_size=2)
        for res in (par[name], seq[name]):
            np.testing.assert_allclose(res.attribution, one.attribution, rtol=1e-6, atol=1e-9)
        with torch.no_grad():
            torch.testing.assert_close(one.sr, m(lr16))
    assert par["a"].di != pytest.approx(par["b"].di)


def test_bf16_map_agrees_with_fp32(model, lr16):
    """The fast path's stated tolerance: map correlation >= 0.99 and DI within 1% of fp32."""
    fp32 = lam.local_attribution_map(model, lr16, 20, 24, fold=8, batch_size=8)
    bf16 = lam.local_attribution_map(model, lr16, 20, 24, fold=8, batch_size=8, precision="bf16")
    assert bf16.precision == "bf16" and not np.array_equal(bf16.map, fp32.map)
    assert np.corrcoef(bf16.map.ravel(), fp32.map.ravel())[0, 1] >= 0.99
    assert bf16.di == pytest.approx(fp32.di, rel=0.01)
    assert lam.local_attribution_map(model, lr16, 20, 24, fold=2, precision="auto").precision in ("fp32", "bf16")


def test_lam_runs_a_snapshot_with_the_models_own_map(model, lr16):
    """LAM runs a GVTNet as a snapshot (weights without gradients, in bf16 rounded once): the attribution
    is the one plain autocast of the model itself gives, by hand here, and the model is left as it was.
    The by-hand model has its q/k/v rows grouped by head as a snapshot's are: the same forward bits, but
    its gradient sums those rows in another order: against the model's own interleaved rows that moved
    this bf16 map by 0.2% of its largest value on an AVX2 CPU (bf16 emulated), under 1e-6 on AVX-512."""
    row, col, win, fold = 20, 24, 16, 3
    x, dx = lam.blur_path(lr16, 1.2, fold, 9)
    inp = x[1:].clone().requires_grad_()
    grouped = copy.deepcopy(model)
    for m in grouped.modules():
        if isinstance(m, WindowAttention):
            m.group_heads()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        d = lam.window_gradient(grouped(inp).float(), row, col, win)
    (grad,) = torch.autograd.grad(d.sum(), inp)
    by_hand = (grad.double() * dx.double()).sum(0) / fold
    res = lam.local_attribution_map(model, lr16, row, col, win, fold=fold, batch_size=fold, precision="bf16")
    assert np.allclose(res.attribution, by_hand.float().numpy(), rtol=0, atol=1e-6 * by_hand.abs().max().item())
    assert all(p.requires_grad and p.grad is None and p.dtype == torch.float32 for p in model.parameters())


def test_mass_levels_by_hand():
    m = np.array([[4.0, 3.0], [2.0, 1.0]])  # total 10
    levels, areas = lam.mass_levels(m, (0.5, 0.9, 0.99))
    # 50%: 4 + 3 = 7 >= 5 (two pixels, the smallest 3); 90%: 4 + 3 + 2 = 9; 99%: all four
    np.testing.assert_array_equal(levels, [3, 2, 1])
    np.testing.assert_array_equal(areas, [0.5, 0.75, 1.0])
    assert lam.mass_levels(np.zeros((3, 3)))[1].tolist() == [0, 0, 0]


def test_spread_figure(model, lr16):
    res = lam.local_attribution_map(model, lr16, 20, 12, window=16, fold=3, batch_size=3)
    fig = lam.spread_figure({"a": res, "b": res})
    assert len(fig.axes) == 3  # two panels and the colour bar
    title = fig.axes[0].get_title()
    assert f"DI {res.di:.2f}" in title and "90% in" in title
    assert fig.axes[0].collections  # the contours


# ----------------------------------------------------------------------------------------------------
# the study


def test_study_matches_lam_and_resumes(model, lr16, tmp_path):
    from analysis.studies import lam_study

    faces = {"f1": lr16, "f2": lr16.flip(-1), "f3": lr16.flip(-2)}
    windows = [lam_study.Window("w", 20, 24, 16), lam_study.Window("edge", -4, 50, 16)]
    models = {"m": model, "n": gvtnet.build_model("swinir-light-x4").eval()}
    path = tmp_path / "s.json"
    first = lam_study.study(models, dict(list(faces.items())[:2]), windows, fold=3, path=path)
    assert len(first["records"]) == 2 * 2 * 2
    one = lam.local_attribution_map(model, faces["f2"], 20, 24, 16, fold=3)
    rec = next(r for r in first["records"] if (r["face"], r["window"], r["model"]) == ("f2", "w", "m"))
    assert rec["di"] == pytest.approx(one.di, abs=1e-9) and (rec["row"], rec["col"], rec["size"]) == (20, 24, 16)

    calls = []
    hooks = [m.register_forward_pre_hook(lambda mod, args: calls.append(args[0].shape[0])) for m in models.values()]
    again = lam_study.study(models, faces, windows, fold=3, path=path)
    for h in hooks:
        h.remove()
    assert calls == [3] * 4  # only f3's two windows, for each of the two models (one batch of 3 points each)
    assert again["records"][:8] == first["records"]
    assert [r["face"] for r in again["records"][8:]] == ["f3"] * 4
    import json
    assert json.loads(path.read_text())["records"] == again["records"]
    assert "| m |" in lam_study.markdown(again) and len(lam_study.figure(again).axes) == 2


# Resuming a study reuses a saved record only where everything its DI depends on matches (the face's content,
# the model's weights, the window, scale, sigma, fold, precision) and returns only what was asked for.


def _tiny_model() -> nn.Module:
    """A light x4 GVTNet whose output depends on its body (as the `model` fixture), fresh for each test."""
    return perturbed("light-x4", 0.02, only="upsampler.")


def _tiny_faces(seed: int, names=("f1",)) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {name: torch.rand(1, 3, 8, 8, generator=g) for name in names}


TINY_WINDOW = [("w", 8, 8, 8)]
TINY = dict(fold=4, parallel=False, resamples=200)


def _windows(spec=TINY_WINDOW):
    from analysis.studies import lam_study

    return [lam_study.Window(*w) for w in spec]


@pytest.fixture
def lam_calls(monkeypatch):
    """The (window row, col, models) of every attribution_maps call the study makes."""
    from analysis.studies import lam_study

    calls, real = [], lam_study.attribution_maps

    def counted(models, lr, row, col, *args, **kwargs):
        calls.append((row, col, tuple(models)))
        return real(models, lr, row, col, *args, **kwargs)

    monkeypatch.setattr(lam_study, "attribution_maps", counted)
    return calls


def _dis(result) -> dict:
    return {(r["face"], r["window"], r["model"]): r["di"] for r in result["records"]}


def test_study_resume_other_faces_of_the_same_names(tmp_path):
    """Same file names, other pictures: recomputed, as a fresh study (the old code matched on names)."""
    from analysis.studies import lam_study

    models, path = {"m": _tiny_model()}, tmp_path / "s.json"
    saved = lam_study.study(models, _tiny_faces(1), _windows(), path=path, **TINY)
    other = _tiny_faces(2)
    resumed = lam_study.study(models, other, _windows(), path=path, **TINY)
    fresh = lam_study.study(models, other, _windows(), **TINY)
    assert _dis(resumed) == _dis(fresh) != _dis(saved)
    new, old = resumed["records"][0]["face_sha256"], saved["records"][0]["face_sha256"]
    assert new == lam_study.tensor_sha256(other["f1"]) != old
    import json
    assert [r["di"] for r in json.loads(path.read_text())["records"]] == [r["di"] for r in fresh["records"]]


def test_study_resume_counts_only_what_was_asked(tmp_path, lam_calls):
    """Two faces saved, one asked for: one face in the records, the file and the summary (the old code
    returned and counted the file's other face too)."""
    from analysis.studies import lam_study

    models, path = {"m": _tiny_model()}, tmp_path / "s.json"
    faces = _tiny_faces(1, ("f1", "f2"))
    both = lam_study.study(models, faces, _windows(), path=path, **TINY)
    assert len(both["records"]) == 2 and both["summary"]["faces"] == 2 and len(lam_calls) == 2
    one = lam_study.study(models, {"f2": faces["f2"]}, _windows(), path=path, **TINY)
    assert len(lam_calls) == 2  # reused
    assert [r["face"] for r in one["records"]] == ["f2"] and one["records"][0] == both["records"][1]
    assert one["summary"]["faces"] == 1 and one["summary"]["models"]["m"]["n"] == 1
    assert one["summary"]["models"]["m"]["mean_di"] == pytest.approx(both["records"][1]["di"])
    import json
    assert [r["face"] for r in json.loads(path.read_text())["records"]] == ["f2"]


def test_study_resume_with_changed_weights(tmp_path, lam_calls):
    """One parameter edited, same name and architecture: recomputed, as a fresh study (the old code's
    settings held only describe_model's line, which the edit leaves as it was)."""
    from analysis.studies import lam_study
    from gvtnet.weights import state_dict_sha256

    model, path, faces = _tiny_model(), tmp_path / "s.json", _tiny_faces(1)
    saved = lam_study.study({"m": model}, faces, _windows(), path=path, **TINY)
    with torch.no_grad():
        model.upsampler.upsample[0].weight[0, 0, 1, 1] += 0.5
    resumed = lam_study.study({"m": model}, faces, _windows(), path=path, **TINY)
    assert len(lam_calls) == 2
    fresh = lam_study.study({"m": model}, faces, _windows(), **TINY)
    assert _dis(resumed) == _dis(fresh) != _dis(saved)
    assert resumed["records"][0]["model_sha256"] == state_dict_sha256(model) != saved["records"][0]["model_sha256"]


def test_study_resume_reuses_matching_records(tmp_path, lam_calls):
    """Identical inputs, the model now read back from a weights file: nothing is recomputed. A resume with
    one more window (a file of other settings, which the old code refused) computes only that window."""
    from analysis.studies import lam_study
    from gvtnet.sr_models import load_sr_model
    from gvtnet.weights import save_model, state_dict_sha256

    model, path, faces = _tiny_model(), tmp_path / "s.json", _tiny_faces(1)
    saved = lam_study.study({"m": model}, faces, _windows(), path=path, **TINY)
    rec = saved["records"][0]
    assert rec["face_sha256"] == lam_study.tensor_sha256(faces["f1"])
    assert rec["model_sha256"] == state_dict_sha256(model)
    assert (rec["scale"], rec["sigma"], rec["fold"], rec["precision"]) == (4, 1.2, 4, "fp32")
    save_model(model, tmp_path / "m.safetensors")
    lam_calls.clear()
    again = lam_study.study({"m": load_sr_model(tmp_path / "m.safetensors")}, faces, _windows(), path=path, **TINY)
    assert lam_calls == [] and again["records"] == saved["records"]
    more = lam_study.study({"m": model}, faces, _windows(TINY_WINDOW + [("v", 16, 4, 8)]), path=path, **TINY)
    assert lam_calls == [(16, 4, ("m",))] and more["records"][0] == rec
    assert [r["window"] for r in more["records"]] == ["w", "v"]


def test_study_resume_old_format_file(tmp_path, lam_calls):
    """A file of the format before the hashes (its records lack them): read, nothing reused, rewritten."""
    import json

    from analysis.studies import lam_study

    path, faces = tmp_path / "s.json", _tiny_faces(1)
    old = {"face": "f1", "window": "w", "model": "m", "row": 8, "col": 8, "size": 8, "di": 123.0}
    path.write_text(json.dumps({"settings": {"scale": 4, "fold": 4}, "records": [old], "summary": None}))
    out = lam_study.study({"m": _tiny_model()}, faces, _windows(), path=path, **TINY)
    assert len(lam_calls) == 1 and out["records"][0]["di"] != 123.0
    assert json.loads(path.read_text())["records"] == out["records"]


def test_summary_by_hand():
    """Paired differences per face (mean over windows), their bootstrap interval, the fraction higher."""
    from analysis.studies import lam_study

    di = {("f1", "a"): 10, ("f1", "b"): 7, ("f2", "a"): 5, ("f2", "b"): 6, ("f3", "a"): 9, ("f3", "b"): 4}
    records = [{"face": f, "window": w, "model": m, "di": v + (1 if w == "y" else 0)}
               for (f, m), v in di.items() for w in ("x", "y")]
    s = lam_study.summarise(records, ["a", "b"], resamples=2000)
    pair = s["pairs"]["a - b"]["all"]
    assert pair["mean"] == pytest.approx((3 - 1 + 5) / 3) and pair["frac_first_higher"] == pytest.approx(2 / 3)
    low, high = pair["ci95"]
    assert low <= pair["mean"] <= high and -1 <= low and high <= 5  # within the range of the face means
    assert s["models"]["a"]["mean_di"] == pytest.approx(np.mean([10, 5, 9]) + 0.5)
    assert s["models"]["b"]["by_window"]["y"] == pytest.approx(np.mean([7, 6, 4]) + 1)
    rng = np.random.default_rng(3)
    for n in (5, 40):
        vals = rng.normal(2, 3, n)
        st = lam_study.mean_interval(vals, resamples=2000)
        assert st["ci95"][0] <= st["mean"] <= st["ci95"][1] and st["mean"] == pytest.approx(vals.mean())


def test_face_windows_inside_the_face():
    from analysis.studies import lam_study

    wins = {w.name: w for w in lam_study.face_windows(128, 128)}
    assert wins["left_eye"].row == wins["right_eye"].row < wins["nose"].row < wins["mouth"].row
    assert wins["left_eye"].col < wins["nose"].col == wins["mouth"].col < wins["right_eye"].col
    for w in lam_study.face_windows(16, 16, size=16):
        assert (w.row, w.col) == (0, 0)


# ----------------------------------------------------------------------------------------------------
# the app's LAM and Model tabs


def test_app_lam_with_an_uploaded_model(tmp_path, astronaut_face):
    """An uploaded ESRGAN is compared beside GVTNet and SwinIR: restored, and its LAM run with theirs on one
    shared path; each DI is the library's for that model and window."""
    from app.tabs.inputs import CENTRE, SIMULATE
    from app.tabs.lam import LAM_PRECISION, lam_view
    from app.tabs.model import load_checkpoint, model_summary
    from app.tabs.restore import NO_GRAPH, metrics, restore, restore_view
    from gvtnet.compat import import_spandrel
    from gvtnet.inference import resolve_precision

    import_spandrel()
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(0)
    net = ESRGAN(num_filters=8, num_blocks=1, scale=8).eval()
    torch.save({"params_ema": net.state_dict()}, tmp_path / "esrgan-x8.pth")
    custom, compare = load_checkpoint(str(tmp_path / "esrgan-x8.pth"))
    assert custom is None and compare.architecture == "ESRGAN"
    face = tmp_path / "face.png"
    astronaut_face.save(face)
    s = restore(str(face), 4, SIMULATE, CENTRE, False, "light", None, compare)  # its x8 sets the scale
    upload = "ESRGAN (uploaded)"  # beside the shipped graph-free GVTNet, which x8 also has
    assert s.scale == 8 and list(s.others) == [NO_GRAPH, upload] and s.others_sr[upload].size == (128, 128)
    assert [r[0] for r in metrics(s)][-1] == upload and len(restore_view(s).others) == 2
    assert "no graph layers" in model_summary(s.model, "shipped", s.others)
    calls = []
    v = lam_view(s, 16, lambda d, t: calls.append((d, t)))
    assert list(v.models) == ["GVTNet", "SwinIR", NO_GRAPH, upload] and max(calls) == (200, 200)
    assert v.precision == resolve_precision("auto") and v.spread.endswith(".png")
    r = v.models[upload]
    one = lam.local_attribution_map(compare, to_tensor(s.lr), r["row"], r["col"], 16, batch_size=50,
                                    precision=LAM_PRECISION)
    assert r["di"] == pytest.approx(one.di, abs=2e-3)
    gv, _ = load_checkpoint("assets/gvtnet-light-x4.safetensors")
    assert isinstance(gv, gvtnet.GVTNet) and load_checkpoint(None) == (None, None)


def test_app_small_study(tmp_path, astronaut_face, monkeypatch):
    from app.tabs.inputs import CENTRE, SIMULATE
    from app.tabs.lam import lam_study_view
    from app.tabs.restore import restore

    monkeypatch.setattr("app.tabs.lam.STUDY_FACES", 2)  # one example and the session's face
    face = tmp_path / "face.png"
    astronaut_face.save(face)
    s = restore(str(face), 8, SIMULATE, CENTRE, False, "light", None)
    calls = []
    table, fig = lam_study_view(s, 16, lambda d, t: calls.append((d, t)))
    assert calls[-1] == (8, 8)  # 2 faces x 4 windows
    assert "2 faces" in table and "| GVTNet |" in table and "GVTNet - SwinIR" in table and fig.endswith(".png")


def test_app_small_study_on_a_real_face_of_another_size(monkeypatch):
    """A real 25 px LFW face at x4 restores to 100 px, not the examples' 128: the examples are simulated at
    its size, so that the named windows, placed on 100 px, fit every face."""
    import gradio as gr

    from analysis.studies import lam_study
    from app.examples import lfw_files
    from app.tabs.inputs import CENTRE, REAL
    from app.tabs.lam import lam_study_view
    from app.tabs.restore import restore

    monkeypatch.setattr("app.tabs.lam.STUDY_FACES", 2)  # one example and the session's face
    seen, real = {}, lam_study.study

    def short(models, faces, windows, **kwargs):  # a short path: what is tested is the faces' sizes
        seen.update(faces=faces, windows=windows)
        return real(models, faces, windows, **{**kwargs, "fold": 4})

    monkeypatch.setattr(lam_study, "study", short)
    s = restore(lfw_files()[0], 4, REAL, CENTRE, False, "light", None)
    table, fig = lam_study_view(s, 16)
    assert "2 faces" in table and "| GVTNet |" in table and fig.endswith(".png")
    assert list(seen["faces"])[-1] == "your face"
    assert [lr.shape[-2:] for lr in seen["faces"].values()] == [(25, 25)] * 2
    assert seen["windows"] == lam_study.face_windows(100, 100, 16)
    with pytest.raises(gr.Error, match="does not fit the 100x100 restoration"):
        lam_study_view(s, 128)


def test_batch_schedule_grows_while_it_pays_and_keeps_the_fastest():
    """next_batch_size: 4 for a warm-up batch and a timed one; doubled while the time per point falls by 5%
    or more; then the fastest size seen; never past the cap or the points left."""
    nxt = lam.next_batch_size
    cold = (4, 9.0)  # the warm-up: never compared, however slow
    assert nxt([], 50, 100) == 4 and nxt([], 3, 100) == 3 and nxt([], 50, 2) == 2
    assert nxt([cold], 46, 100) == 4  # the same size again, now timed
    assert nxt([cold, (4, 4.0)], 42, 100) == 8  # one timed batch: try twice the size
    assert nxt([cold, (4, 4.0), (8, 6.0)], 34, 100) == 16  # 0.75 s a point after 1.0: keep growing
    assert nxt([cold, (4, 4.0), (8, 6.0), (16, 16.0)], 18, 100) == 8  # 16 was slower a point: back to 8
    assert nxt([cold, (4, 4.0), (8, 6.0), (16, 16.0), (8, 6.1)], 10, 100) == 8  # and it stays
    assert nxt([cold, (4, 4.0), (8, 8.5)], 34, 100) == 4  # 8 slower a point than a warm 4: keep 4
    assert nxt([cold, (4, 4.0), (8, 6.0)], 5, 100) == 5 and nxt([cold, (4, 4.0), (8, 6.0)], 40, 10) == 10


def test_the_adaptive_schedule_gives_the_fixed_schedules_map(model, lr16):
    fixed = lam.local_attribution_map(model, lr16, 20, 24, fold=12, batch_size=1)
    steps = []
    adaptive = lam.local_attribution_map(model, lr16, 20, 24, fold=12, progress=lambda d, t: steps.append(d))
    assert steps == [4, 8, 12]  # batches of 4 (the warm-up), 4, then 4 or 8: either way the rest
    np.testing.assert_allclose(adaptive.map, fixed.map, atol=1e-5)
    assert adaptive.di == pytest.approx(fixed.di, abs=1e-3)


def test_the_memory_cap_follows_the_model_and_the_machine(monkeypatch):
    monkeypatch.setattr(lam, "available_memory", lambda: 24 << 30)
    official = gvtnet.build_model("official-x4")
    cap = lam.max_batch(official, torch.zeros(1, 3, 32, 32))
    assert cap == 24  # 12 GB over 0.53 GB a point: about the 13 GB measured at 25 points
    assert lam.max_batch(official, torch.zeros(1, 3, 32, 32), parallel_models=2) == cap // 2
    assert lam.max_batch(nn.Upsample(scale_factor=4), torch.zeros(1, 3, 32, 32)) == 50


def test_study_figure_legend_is_off_the_panels():
    """The study figure's legend sits below its panels, not on the DI boxes (nor the spread figure's on its
    images)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from analysis.studies import lam_study

    models, windows = ["GVTNet", "SwinIR", "HAT"], ["left eye", "nose", "mouth"]
    rng = np.random.default_rng(0)
    records = [{"face": f"f{i}", "window": w, "model": m, "di": float(rng.uniform(2, 20))}
               for i in range(4) for w in windows for m in models]
    fig = lam_study.figure({"records": records, "summary": lam_study.summarise(records, models, resamples=200)})
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    (legend,) = fig.legends
    box = legend.get_window_extent(renderer)
    assert [t.get_text() for t in legend.get_texts()] == models
    for ax in fig.axes:
        assert not box.overlaps(ax.get_window_extent(renderer)), ax.get_title()
