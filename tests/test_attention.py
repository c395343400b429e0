"""analysis.attention over the network's depth: mean attention distance, attention mass, rollout, the
mirror-padding share, and the Attention tab's callbacks. Truth comes from hand computations, attention
replaced by known matrices, the model's own window partition and the captured graphs."""
from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from PIL import Image

import analysis
import gvtnet
from analysis import attention
from conftest import ASSETS, perturbed
from gvtnet.images import degrade
from gvtnet.inference import to_tensor
from gvtnet.model import to_windows


@pytest.fixture(scope="module")
def shipped():
    """The shipped light x4 GVTNet and its SwinIR baseline."""
    return (gvtnet.load_model(ASSETS / "gvtnet-light-x4.safetensors"),
            gvtnet.load_model(ASSETS / "swinir-light-x4.safetensors"))


@pytest.fixture(scope="module")
def face_lr(astronaut_face):
    return to_tensor(degrade(astronaut_face, 4))  # (1, 3, 32, 32): no padding


@pytest.fixture(scope="module")
def padded_lr(astronaut_face):
    return to_tensor(astronaut_face.resize((27, 27), Image.BICUBIC))  # a real-LR face, padded to 32 x 32


@pytest.fixture(scope="module")
def compared(shipped, face_lr):
    gvt, swin = shipped
    return {"GVTNet": analysis.inspect(gvt.variant(), face_lr),
            "GVTNet, graph off": analysis.inspect(gvt.variant(use_graph=False), face_lr),
            "SwinIR": analysis.inspect(swin.variant(), face_lr)}


def with_attention(ins, make):
    """The inspection with every block's attention replaced by make(block) (nW, heads, n, n) and no graph
    product (attention_graph = None: an all-ones adjacency without self-loop doubling)."""
    return replace(ins, blocks=[replace(b, attention=make(b), attention_graph=None) for b in ins.blocks])


def grid_mean_distance(spacing: tuple[float, float]) -> float:
    """Mean Euclidean distance over all ordered pairs (self pairs included) of an 8 x 8 lattice."""
    pts = [(j * spacing[0], i * spacing[1]) for j in range(8) for i in range(8)]
    return float(np.mean([np.hypot(a[0] - b[0], a[1] - b[1]) for a, b in itertools.product(pts, pts)]))


def window_pixel_lists(padded, shift, layout) -> np.ndarray:
    """(nW, 64) flat padded index of each window's tokens, from the model's own partition of the rolled map."""
    hgt, wid = padded
    idx = torch.arange(hgt * wid, dtype=torch.float64).view(1, hgt, wid, 1)
    rolled = torch.roll(idx, (-shift, -shift), dims=(1, 2))
    return to_windows(rolled, 8, layout, heads=1)[0, 0, :, 0, :, 0].long().numpy()


# ---------------------------------------------------------------------------------------------------
# attention distance


def test_distance_of_self_and_uniform_attention(compared):
    for name, ins in compared.items():
        nw, heads, n, _ = ins.blocks[0].attention.shape
        own = with_attention(ins, lambda b: np.broadcast_to(np.eye(n, dtype=np.float32), (nw, heads, n, n)))
        uniform = with_attention(ins, lambda b: np.full((nw, heads, n, n), 1 / n, np.float32))
        for b in ins.blocks:
            assert np.allclose(attention.attention_distance(own, b.group, b.block), 0), name
            got = attention.attention_distance(uniform, b.group, b.block)
            if ins.layout == "strided":  # every window, rolled or not, is a lattice of spacing H/8 = 4
                want = grid_mean_distance((4, 4))
            elif b.shift == 0:  # contiguous 8 x 8 tiles
                want = grid_mean_distance((1, 1))
            else:  # tiles of the rolled map: those at the seam join pixels from opposite borders
                pixels = window_pixel_lists(ins.padded_size, b.shift, "contiguous")
                rows, cols = np.divmod(pixels, ins.padded_size[1])
                want = np.mean([np.hypot(r[:, None] - r[None], c[:, None] - c[None]).mean()
                                for r, c in zip(rows, cols)])
            assert np.allclose(got, want, rtol=1e-5), (name, b.group, b.block)


def test_gvtnet_swin_blocks_look_further_than_swinir(compared):
    """Strided windows span the face; SwinIR's are 8 x 8 tiles (uniform attention over one: 4.14 px)."""
    gvt, swin = compared["GVTNet"], compared["SwinIR"]
    gvt_swin_type = [attention.attention_distance(gvt, b.group, b.block) for b in gvt.blocks if b.kind == "S"]
    swinir = [attention.attention_distance(swin, b.group, b.block) for b in swin.blocks]
    assert min(d.min() for d in gvt_swin_type) > 2 * max(d.max() for d in swinir)
    assert max(d.max() for d in swinir) < grid_mean_distance((1, 1)) * 1.5


def test_reach_of_the_first_graph_block_with_the_graph_off(compared):
    """Group 0's graph block sees the same input with the graph on and off. With the graph off the network
    applies softmax x (1 + I): every key is kept and the query's own weight doubled, at distance 0, so the
    reach is the softmax's distance divided by the row's total, 1 plus the query's own softmax weight."""
    on, off = compared["GVTNet"], compared["GVTNet, graph off"]
    assert np.array_equal(on.block(0, 1).attention, off.block(0, 1).attention)
    blk = off.block(0, 1)
    dist = attention.token_distances(off.padded_size, blk.shift, off.window_size, off.layout)[:, None]
    soft = blk.attention  # (nW, heads, n, n); 32 x 32, so every query is a face pixel
    own = soft[..., np.arange(64), np.arange(64)]
    want = ((soft * dist).sum(-1) / (1 + own)).transpose(1, 0, 2).reshape(4, -1).mean(-1)
    assert np.allclose(attention.attention_distance(off, 0, 1), want, rtol=1e-5)
    softmax_only = replace(off, blocks=[replace(b, attention_graph=None) for b in off.blocks])
    assert (attention.attention_distance(off, 0, 1) < attention.attention_distance(softmax_only, 0, 1)).all()
    assert np.allclose(attention.mass_cut(off, 0, 1), 0) and (attention.mass_cut(on, 0, 1) > 0).all()


def test_reach_ignores_the_mass_cut_from_keys_just_as_far(face_lr):
    """Every query gives half its softmax to each of two keys 4 px away (a strided window is a lattice of
    spacing 4), and the graph cuts one of them: the key it keeps is exactly as far, so the reach stays 4 px
    (the unrenormalised mean gave 2), and the half it cut is reported apart, as the mass cut."""
    ins = analysis.inspect(gvtnet.build_model("light-x4").eval(), face_lr)
    blk = ins.block(0, 1)
    nw, heads, n, _ = blk.attention.shape
    dist = attention.token_distances(ins.padded_size, blk.shift, ins.window_size, ins.layout)  # (nW, n, n)
    at_4 = np.isclose(dist, 4)
    assert at_4.sum(-1).min() >= 2
    pair = np.argsort(~at_4, axis=-1, kind="stable")[..., :2]  # (nW, n, 2): two keys 4 px from each query
    soft = np.zeros((nw, n, n), np.float32)
    np.put_along_axis(soft, pair, 0.5, axis=-1)
    after = soft.copy()
    np.put_along_axis(after, pair[..., 1:], 0.0, axis=-1)  # no weight on the query itself: nothing doubles
    soft, after = (np.broadcast_to(a[:, None], (nw, heads, n, n)) for a in (soft, after))
    cut = replace(ins, blocks=[replace(b, attention=soft, attention_graph=after) if b is blk else b
                               for b in ins.blocks])
    uncut = replace(cut, blocks=[replace(b, attention_graph=None) for b in cut.blocks])
    assert np.allclose(attention.attention_distance(cut, 0, 1), 4)
    assert np.allclose(attention.attention_distance(uncut, 0, 1), 4)
    assert np.allclose(attention.mass_cut(cut, 0, 1), 0.5) and np.allclose(attention.mass_cut(uncut, 0, 1), 0)
    m = attention.attention_mass(cut, 0, 1)
    assert np.allclose(m.removed, 0.5) and np.allclose(m.row_sum, 0.5)


@pytest.mark.parametrize("threshold", [0.0, 0.3])
def test_reach_at_small_thresholds_is_not_the_mass_cut(shipped, face_lr, threshold):
    """The shipped x4 GVTNet at small T, where its graph cuts most of the softmax: group 0's graph block sees
    the same input with the graph on and off. Rescaling each query's row as applied (as if the graph had
    removed more or less mass from the same keys) leaves the reach as it is; at T = 0.3 the reach with the
    graph on stays far above the graph-off reach scaled by the mass kept, which is what weighting by the
    unrenormalised rows gave. At T = 0 only the query itself is kept: its reach is 0 however little it kept."""
    gvt = shipped[0]
    on = analysis.inspect(gvt.variant(threshold=threshold), face_lr)
    off = analysis.inspect(gvt.variant(use_graph=False), face_lr)
    assert np.array_equal(on.block(0, 1).attention, off.block(0, 1).attention)
    reach_on, reach_off = attention.attention_distance(on, 0, 1), attention.attention_distance(off, 0, 1)
    cut = attention.mass_cut(on, 0, 1)
    blk = on.block(0, 1)
    scale = np.random.default_rng(0).uniform(0.2, 5, blk.attention_graph.shape[:-1] + (1,)).astype(np.float32)
    rescaled = replace(on, blocks=[replace(b, attention_graph=b.attention_graph * scale) if b is blk else b
                                   for b in on.blocks])
    assert np.allclose(attention.attention_distance(rescaled, 0, 1), reach_on, rtol=1e-4, atol=1e-6)
    assert np.array_equal(attention.mass_cut(rescaled, 0, 1), cut)
    if threshold == 0:
        assert (cut > 0.9).all() and np.allclose(reach_on, 0)
    else:
        assert (cut > 0.4).all()
        assert reach_on.mean() / reach_off.mean() > 1 - cut.mean() + 0.2


# ---------------------------------------------------------------------------------------------------
# attention mass


def test_mass_of_swin_blocks_and_of_an_all_ones_adjacency_is_one(compared):
    for name, ins in compared.items():
        no_doubling = replace(ins, blocks=[replace(b, attention_graph=None) for b in ins.blocks])
        for b in ins.blocks:
            for i, m in ((ins, attention.attention_mass(ins, b.group, b.block)),
                         (no_doubling, attention.attention_mass(no_doubling, b.group, b.block))):
                assert m.row_sum.shape == (4, 32 * 32)
                assert np.allclose(m.padding, 0)  # 32 x 32: nothing is padded
                if b.kind == "S" or i is no_doubling:
                    assert np.allclose(m.row_sum, 1, atol=1e-5) and np.allclose(m.removed, 0), (name, b)


def test_mass_of_graph_blocks_follows_the_captured_graph(compared):
    """Row sum = softmax @ (A + I), removed = softmax on keys A cuts, self weight = 2 x softmax diagonal."""
    for name in ("GVTNet", "GVTNet, graph off"):
        ins = compared[name]
        for b in (b for b in ins.blocks if b.kind == "G"):
            adj = ins.groups[b.group].adjacency.astype(np.float32)  # (heads, n, n), diagonal already set
            if name == "GVTNet, graph off":
                assert adj.all()
            soft = b.attention  # (nW, heads, n, n); 32 x 32, so every query is a face pixel
            m = attention.attention_mass(ins, b.group, b.block)
            diag = np.arange(64)
            want = {"row_sum": (soft * (adj + np.eye(64))).sum(-1), "removed": (soft * (1 - adj)).sum(-1),
                    "self_weight": 2 * soft[..., diag, diag]}
            for field, value in want.items():
                assert np.allclose(getattr(m, field), value.transpose(1, 0, 2).reshape(4, -1), atol=1e-5), field
    m = attention.attention_mass(compared["GVTNet"], 1, 1)
    assert m.row_sum.min() < 1 < m.row_sum.max() and m.removed.max() > 0


def test_padding_share_is_counted(shipped, padded_lr):
    """27 x 27 face, padded to 32: the share of each face query's row on padding keys, from the full maps."""
    ins = analysis.inspect(shipped[0].variant(), padded_lr)
    assert ins.padded_size == (32, 32) and ins.lr_size == (27, 27)
    for group, block in ((0, 0), (1, 1)):
        m = attention.attention_mass(ins, group, block)
        assert m.padding.shape == (4, 27 * 27)
        shares = []
        for q in itertools.product(range(27), range(27)):
            full = attention.attention_map(ins, group, block, 0, q, padded=True)
            shares.append(1 - full[:27, :27].sum() / full.sum())
        assert np.mean(m.padding[0]) == pytest.approx(np.mean(shares), abs=1e-5)
        assert np.max(m.padding[0]) == pytest.approx(np.max(shares), abs=1e-5)
        assert 0.05 < m.padding.mean() < 0.6  # a quarter of the map is padding, and it is attended
    fig = attention.attention_figure(ins, Image.new("RGB", (108, 108)), 1, 1, 0, (26, 26))
    assert all("on the padding" in a.text for a in fig.layout.annotations)


# ---------------------------------------------------------------------------------------------------
# rollout


@pytest.mark.parametrize("preset", ["light-x4", "swinir-light-x4"])
def test_rollout_of_identity_attention_is_a_delta(preset, face_lr):
    ins = analysis.inspect(perturbed(preset, 0.5, only=".attn.qkv."), face_lr)
    nw, heads, n, _ = ins.blocks[0].attention.shape
    identity = with_attention(ins, lambda b: np.broadcast_to(np.eye(n, dtype=np.float32), (nw, heads, n, n)))
    for query, fusion, residual in (((0, 0), "mean", True), ((13, 22), "max", False), ((31, 5), "min", True)):
        r = attention.rollout(identity, query, fusion, residual)
        delta = np.zeros((32, 32))
        delta[query] = 1
        assert np.allclose(r, delta)


@pytest.mark.parametrize("preset", ["light-x4", "swinir-light-x4"])
@pytest.mark.parametrize("fusion,residual", [("mean", True), ("max", False)])
def test_rollout_is_the_product_of_block_matrices(preset, fusion, residual, hopper_face):
    """Against dense (HW, HW) matrices built from the model's own window partition, multiplied through."""
    lr = to_tensor(degrade(hopper_face, 8))  # 16 x 16: shifts apply (16 > 8), HW = 256
    ins = analysis.inspect(perturbed(preset, 0.5, only=".attn.qkv."), lr)
    hw = 16 * 16
    total = np.eye(hw)
    for b in ins.blocks:
        a = attention.HEAD_FUSIONS[fusion](attention.applied(b), axis=1).astype(np.float64)
        a = a + np.eye(64) if residual else a
        a /= a.sum(-1, keepdims=True)
        dense = np.zeros((hw, hw))
        for k, pix in enumerate(window_pixel_lists(ins.padded_size, b.shift, ins.layout)):
            dense[np.ix_(pix, pix)] = a[k]
        total = dense @ total  # the later block acts on what the earlier ones produced
    assert np.allclose(total.sum(1), 1)
    for query in ((0, 0), (7, 9), (15, 15)):
        r = attention.rollout(ins, query, fusion, residual)
        assert r.shape == (16, 16) and r.sum() == pytest.approx(1)
        assert np.allclose(r.ravel(), total[query[0] * 16 + query[1]], atol=1e-12)


def test_strided_rollout_stays_on_the_query_lattice(compared):
    """A strided window holds the pixels of one residue class mod (H/8, W/8), whatever the roll, so
    attention alone never leaves the query's class; SwinIR's shifted tiles spread it to the neighbours."""
    query = (13, 22)
    r = attention.rollout(compared["GVTNet"], query)
    rows, cols = np.nonzero(r)
    assert len(rows) == 64 and (rows % 4 == query[0] % 4).all() and (cols % 4 == query[1] % 4).all()
    swin = attention.rollout(compared["SwinIR"], query)
    assert swin[query[0], query[1] + 1] > 0 and swin[query[0] + 1, query[1]] > 0


def test_rollout_rows_sum_to_one_with_padding(shipped, padded_lr):
    ins = analysis.inspect(shipped[0].variant(), padded_lr)
    for query in ((0, 0), (13, 13), (26, 26)):
        full = attention.rollout(ins, query, padded=True)
        face = attention.rollout(ins, query)
        assert full.shape == (32, 32) and face.shape == (27, 27)
        assert full.sum() == pytest.approx(1) and (full >= 0).all()
        assert 0 < 1 - face.sum() < 1  # part of it is drawn from the padding
        kept = attention.rollout(ins, query, discard_ratio=0.9, padded=True)
        assert kept.sum() == pytest.approx(1) and not np.allclose(kept, full)
    with pytest.raises(ValueError, match="head_fusion"):
        attention.rollout(ins, (0, 0), head_fusion="median")
    with pytest.raises(ValueError, match="discard_ratio"):
        attention.rollout(ins, (0, 0), discard_ratio=1)
    with pytest.raises(ValueError, match="not an LR pixel"):
        attention.rollout(ins, (27, 0))  # in the padding


# ---------------------------------------------------------------------------------------------------
# figures and the app's callbacks


def test_depth_figures(compared, astronaut_face):
    dist = attention.distance_figure(compared)
    lines = [t for t in dist.data if t.mode == "lines+markers"]
    assert [t.name for t in lines] == list(compared)
    for t, ins in zip(lines, compared.values()):
        means = [attention.attention_distance(ins, b.group, b.block).mean() for b in ins.blocks]
        assert np.allclose(t.y, means) and list(t.x) == [f"{b.group}.{b.block}" for b in ins.blocks]
    mass = attention.mass_figure(compared)
    boxes = [t for t in mass.data if isinstance(t, go.Box)]
    assert len(boxes) == 3 and np.allclose(boxes[2].median, 1)  # SwinIR: every row sums to 1
    # colours: the palette's in turn, whatever the models are called, except those given for a name
    assert [t.line.color for t in lines] == [b.marker.color for b in boxes] == list(attention.PALETTE[:3])
    # each model's line its own dash, so that a line drawn over an equal one leaves it in sight
    assert [t.line.dash for t in lines] == list(attention.DASHES[:3])
    swinir_lines = [t for t in mass.data if isinstance(t, go.Scatter) and t.mode == "lines+markers"
                    and t.legendgroup == "SwinIR"]
    assert len(swinir_lines) == 3 and {t.line.dash for t in swinir_lines} == {attention.DASHES[2]}
    given = attention.distance_figure(compared, {"GVTNet, graph off": "black"})
    assert [t.line.color for t in given.data if t.mode == "lines+markers"] == [attention.PALETTE[0], "black",
                                                                                attention.PALETTE[1]]
    roll = attention.rollout_figure(compared, astronaut_face, (16, 16), "max")
    heat = [t for t in roll.data if isinstance(t, go.Heatmap)]
    assert len(heat) == 3
    want = attention.rollout(compared["SwinIR"], (16, 16), "max")
    assert np.allclose(np.nan_to_num(np.asarray(heat[2].z, dtype=float))[::4, ::4], want)


def test_attention_tab_callbacks(tmp_path, astronaut_face):
    from app.context import DEFAULT_GRAPH
    from app.state import MODELS
    from app.tabs.attention import (
        MODEL_COLOURS,
        attention_view,
        compared_inspections,
        depth_view,
        rollout_view,
        select_query,
    )
    from app.tabs.inputs import CENTRE, REAL, SIMULATE, picker_cell
    from app.tabs.restore import restore

    path = tmp_path / "face.png"
    astronaut_face.save(path)
    settings = DEFAULT_GRAPH
    s = restore(str(path), 4, SIMULATE, CENTRE, False, "light", None)
    inspections = compared_inspections(s, settings)
    assert list(inspections) == ["GVTNet", "GVTNet, graph off", "SwinIR"]
    assert inspections["SwinIR"].layout == "contiguous" and inspections["GVTNet, graph off"].blocks[1].kind == "G"
    assert all(blk.attn.record is None for m in (s.model, s.baseline_model) for g in m.layers for blk in g.blocks)
    dist, mass = (lambda v: (v.distance, v.mass))(depth_view(s, settings))
    lines = [t for t in dist.data if t.mode == "lines+markers"]
    assert [t.line.color for t in lines] == [MODEL_COLOURS[name] for name in inspections]  # the app's own colours
    cell = picker_cell(s)  # screen pixels per LR pixel of the clickable face
    s = select_query(s, [10 * cell + 1, 25 * cell + 1])
    roll = rollout_view(s, "mean", settings)
    assert "(25, 10)" in roll.layout.title.text
    again = compared_inspections(s, settings)
    assert again["SwinIR"] is inspections["SwinIR"]  # computed once per session
    assert compared_inspections(s, replace(settings, threshold=0.5))["GVTNet"] is not inspections["GVTNet"]
    # a real low-resolution face of 27 px is padded: the figures say how much weight the padding takes
    small = tmp_path / "small.png"
    astronaut_face.resize((27, 27), Image.BICUBIC).save(small)
    s = restore(str(small), 4, REAL, CENTRE, False, "light", None)
    assert "on the padding" in rollout_view(s, "mean", settings).layout.annotations[0].text
    assert "on the padding" in attention_view(s, 0, 0, 0, settings).layout.annotations[0].text
    assert MODELS.baseline("light", 4) is s.baseline_model


def test_distances_command(tmp_path, capsys, shipped, astronaut_face, hopper_face):
    from analysis.studies import distances

    for i, face in enumerate((astronaut_face, hopper_face)):
        face.save(tmp_path / f"{i}.png")
    (tmp_path / "2.png").write_bytes(b"not an image")  # skipped
    distances.main(["--weights", str(ASSETS / "gvtnet-light-x4.safetensors"), "--baseline",
                    str(ASSETS / "swinir-light-x4.safetensors"), "--data", str(tmp_path), "--lr-size", "27"])
    out = capsys.readouterr().out
    assert "2 faces" in out and "27 px padded to 32" in out
    faces = distances.lr_face_list(str(tmp_path), 20, 4, 27)
    assert [f.shape for f in faces] == [(1, 3, 27, 27)] * 2
    rows = [line.split("|") for line in out.splitlines() if line.startswith("| 0.1 |")]
    assert len(rows) == 4  # reach, mass cut, row total, padding share
    for column, model in ((3, shipped[0].variant()), (4, shipped[0].variant(use_graph=False)), (5, shipped[1])):
        inspections = [analysis.inspect(model.variant(), f) for f in faces]
        distance = np.mean([attention.attention_distance(ins, 0, 1).mean() for ins in inspections])
        masses = [attention.attention_mass(ins, 0, 1) for ins in inspections]
        assert rows[0][column].split("±")[0].strip() == f"{distance:.2f}"
        cut = np.mean([attention.mass_cut(ins, 0, 1).mean() for ins in inspections])
        assert rows[1][column].split("±")[0].strip() == f"{cut:.3f}"
        smallest = min(m.row_sum.min() for m in masses)
        assert f"({smallest:.2f}-" in rows[2][column]
        assert rows[3][column].split("(")[0].strip() == f"{np.mean([m.padding.mean() for m in masses]):.2f}"


def test_mass_panels_have_axis_titles_and_say_when_there_is_no_padding(compared, shipped, padded_lr):
    """Each of the four attention-mass panels names its axes; on a face with no padding (32 px, a multiple of
    the 8 px window grid) the padding panel says so in the panel instead of standing empty, and on a padded
    face (27 px) it shows the shares without that note."""
    mass = attention.mass_figure(compared)
    for axis in ("xaxis", "xaxis2", "xaxis3", "xaxis4", "yaxis", "yaxis2", "yaxis3", "yaxis4"):
        assert mass.layout[axis].title.text, axis
    notes = [a for a in mass.layout.annotations if "no padding" in a.text]
    assert len(notes) == 1 and (notes[0].xref, notes[0].yref) == ("x4 domain", "y4 domain")
    assert all(np.allclose(t.y, 0) for t in mass.data if t.xaxis == "x4")  # what the panel would show: nothing
    padded = attention.mass_figure({"GVTNet": analysis.inspect(shipped[0].variant(), padded_lr)})
    assert not [a for a in padded.layout.annotations if "no padding" in a.text]
    assert any(np.max(t.y) > 0 for t in padded.data if t.xaxis == "x4")
