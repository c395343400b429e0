"""The analysis' window geometry against the model's own windowing, over random sizes, layouts and rolls:
the pixel the views say a token is, is the pixel the network puts there."""
from __future__ import annotations

import functools

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import gvtnet
from analysis.inspection import Geometry, window_pixels, window_token
from gvtnet.model import cyclic_shift, to_windows


def model_windows(padded: tuple[int, int], ws: int, layout: str, shift: int) -> np.ndarray:
    """(nW, n, 2): the padded-map (row, col) of each window's tokens, as the model's blocks partition the
    rolled map (cyclic_shift by -shift, then to_windows)."""
    h, w = padded
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    coords = torch.stack([rows, cols], -1).float()[None]  # (1, H, W, 2)
    if shift:
        coords = cyclic_shift(coords, -shift)
    return to_windows(coords, ws, layout, heads=1)[0, 0, :, 0].long().numpy()


@functools.cache
def light(layout: str) -> gvtnet.GVTNet:
    return gvtnet.build_model("light-x4", window_layout=layout,
                              shift_rule="per_group" if layout == "strided" else "alternate")


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 40), w=st.integers(1, 40), layout=st.sampled_from(["strided", "contiguous"]),
       group=st.integers(0, 3))
def test_window_pixels_and_tokens_are_the_models(h, w, layout, group):
    model = light(layout)
    cfg, ws = model.cfg, model.cfg.window_size
    padded = model.padded_size(h, w)
    for block in range(2):
        shift = cfg.shift(group, block) if min(padded) > ws else 0
        geo = Geometry(padded, shift, ws, layout)
        truth = model_windows(padded, ws, layout, shift)
        for k in range(len(truth)):
            assert np.array_equal(window_pixels(geo, k), truth[k])
        win, tok = window_token(geo, truth[..., 0], truth[..., 1])
        assert np.array_equal(win, np.repeat(np.arange(len(truth))[:, None], ws * ws, 1))
        assert np.array_equal(tok, np.broadcast_to(np.arange(ws * ws), win.shape))


def test_inspection_looks_up_what_the_model_ran():
    """Inspection.window_at / token_at / window_pixels on a real capture (20x20 face, padded to 24x24, four
    groups rolled differently) agree with the model's windowing of that group's roll."""
    import analysis

    torch.manual_seed(0)
    ins = analysis.inspect(gvtnet.build_model("light-x4"), torch.rand(1, 3, 20, 20))
    for group in range(4):
        truth = model_windows(ins.padded_size, ins.window_size, ins.layout, ins.shift_of(group))
        for k in range(ins.num_windows):
            assert np.array_equal(ins.window_pixels(group, k), truth[k])
        for r, c in ((0, 0), (19, 19), (7, 13)):
            k, t = ins.window_at(group, r, c), ins.token_at(group, r, c)
            assert tuple(truth[k, t]) == (r, c)
