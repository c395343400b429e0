"""LAM and DI against the reference's definitions (the LAM_Demo reference code, as documented in ../shared/docs/lam-reference.md)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage
from torch import nn

import gvtnet
from analysis import lam
from gvtnet.images import bicubic_upscale, degrade
from gvtnet.inference import to_image, to_tensor


@pytest.fixture(scope="module")
def model():
    """A light x4 GVTNet whose output depends on its body (untrained light models are exact bicubic)."""
    torch.manual_seed(0)
    m = gvtnet.build_model("light-x4").eval()
    for p in m.upsampler.parameters():
        p.data.normal_(0, 0.02)
    return m


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
