"""analysis: inspect, geometry, graphs, attention maps, threshold sweeps and the report command."""
from __future__ import annotations

import json
import re
from pathlib import Path

import networkx as nx
import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image
from safetensors.torch import load_file

import analysis
import gvtnet
from analysis import attention, graphs, threshold
from analysis.inspection import Geometry, node_centres, node_index_map, window_pixels, window_token
from conftest import perturbed
from gvtnet.adjacency import adjacency, node_features
from gvtnet.data import FacePairs
from gvtnet.images import degrade
from gvtnet.inference import to_image, to_tensor
from gvtnet.metrics import psnr
from gvtnet.model import GVTNet, to_windows
from gvtnet.weights import infer_config, released_to_ours, save_model


@pytest.fixture(scope="module")
def light_x4():
    return perturbed("light-x4", 0.02, only="upsampler.")


@pytest.fixture(scope="module")
def face_lr(astronaut_face):
    return to_tensor(degrade(astronaut_face, 4))  # (1, 3, 32, 32)


@pytest.fixture(scope="module")
def ins(light_x4, face_lr):
    return analysis.inspect(light_x4, face_lr)


# ---------------------------------------------------------------------------------------------------
# inspect


def test_inspect_leaves_the_output_unchanged(light_x4, face_lr, ins):
    with torch.no_grad():
        plain = light_x4(face_lr)
    assert ins.sr.shape == plain.shape == (1, 3, 128, 128)
    assert torch.equal(ins.sr, plain)
    with torch.no_grad():
        assert torch.equal(light_x4(face_lr), plain)  # and the model is left as it was
    assert all(g.record is None for g in light_x4.layers)


def test_inspection_contents(ins):
    assert len(ins.groups) == 4 and len(ins.blocks) == 8
    assert [g.shift for g in ins.groups] == [0, 6, 0, 4]  # the released per-group rolls
    for g in ins.groups:
        assert g.adjacency.shape == (4, 64, 64) and g.adjacency.dtype == bool
        assert g.node_map.shape == (32, 32) and g.centres_hr.shape == (64, 2)
    hr_map = ins.hr_node_map(1)
    assert hr_map.shape == (128, 128) and hr_map[4 * 13 + 3, 4 * 22] == ins.groups[1].node_map[13, 22]
    for b in ins.blocks:
        assert b.attention.shape == (16, 4, 64, 64)
        assert np.allclose(b.attention.sum(-1), 1, atol=1e-5)
        assert (b.attention_graph is not None) == (b.kind == "G")


def test_captured_adjacency_is_the_graph_function_on_the_group_input(light_x4, face_lr, ins):
    inputs = group_inputs(light_x4, face_lr)
    cfg = light_x4.cfg
    for i, gg in enumerate(ins.groups):
        x = torch.roll(inputs[i], (-gg.shift, -gg.shift), dims=(1, 2))
        z = node_features(x, cfg.num_heads, cfg.window_size)
        assert torch.allclose(z[0], torch.from_numpy(gg.node_features), atol=1e-6)
        a, _ = adjacency(torch.from_numpy(gg.node_features)[None], cfg.threshold, cfg.minkowski_p,
                         cfg.neighbour_rule, cfg.distance_basis)
        assert np.array_equal(a[0].numpy() > 0, gg.adjacency)
        assert 0 < gg.adjacency.mean() < 1


@pytest.mark.parametrize("name", ["tiny-x4", "tiny-x8"])
def test_adjacency_matches_released_fixtures(fixtures_dir, name):
    state = released_to_ours(load_file(fixtures_dir / f"{name}-weights.safetensors"))
    model = GVTNet(infer_config(state))
    model.load_state_dict(state)
    model.eval()
    io = load_file(fixtures_dir / f"{name}-io.safetensors")
    for b in range(io["input"].shape[0]):
        ins = analysis.inspect(model, io["input"][b : b + 1])
        assert torch.allclose(ins.sr, io["output"][b : b + 1], atol=1e-5)
        for g, gg in enumerate(ins.groups):
            assert np.array_equal(gg.adjacency, io[f"adjacency_group{g}"][b].numpy() == 1), (b, g)


# ---------------------------------------------------------------------------------------------------
# geometry


@pytest.mark.parametrize("size,shift", [((32, 32), 0), ((32, 32), 6), ((16, 24), 4), ((64, 48), 2)])
def test_node_map_partitions_the_map_like_the_model(size, shift):
    hgt, wid = size
    node = node_index_map(size, shift)
    # every pixel is in exactly one node, and each node has (H/8)(W/8) pixels
    assert np.bincount(node.ravel(), minlength=64).tolist() == [hgt * wid // 64] * 64
    # the model's own partition of the rolled map: token t of every window is node t
    pixel = torch.arange(hgt * wid, dtype=torch.float64).view(1, hgt, wid, 1)
    windows = to_windows(torch.roll(pixel, (-shift, -shift), dims=(1, 2)), 8, "strided", heads=1)[0, 0, :, 0, :, 0]
    for t in range(64):
        assert (node.ravel()[windows[:, t].long().numpy()] == t).all()
    assert np.array_equal(node, np.roll(node_index_map(size, 0), (shift, shift), axis=(0, 1)))


def test_node_centres_are_block_centres():
    node = node_index_map((32, 32), 0)
    centres = node_centres((32, 32), 0)
    rows, cols = np.mgrid[0:32, 0:32]
    for n in (0, 9, 63):
        assert np.allclose(centres[n], [rows[node == n].mean(), cols[node == n].mean()])
    shifted = node_centres((32, 32), 6)
    assert np.allclose(shifted[9], centres[9] + 6)  # a node that does not wrap moves with the roll


def test_attention_map_is_the_softmax_row_then_the_adjacency(ins):
    query = (13, 22)
    for g in (0, 1, 3):
        gg = ins.groups[g]
        before = attention.attention_map(ins, g, 1, 2, query, after_graph=False)
        after = attention.attention_map(ins, g, 1, 2, query, after_graph=True)
        assert before.sum() == pytest.approx(1, abs=1e-5) and (before > 0).sum() == 64
        # one attended pixel per node, and the graph block multiplies it by A + I of the query's node
        hit = before > 0
        assert sorted(gg.node_map[hit].tolist()) == list(range(64))
        p = gg.node_map[query]
        weight = gg.adjacency[2, p].astype(float) + np.eye(64)[p]
        assert np.allclose(after[hit], before[hit] * weight[gg.node_map[hit]], atol=1e-7)


def test_swin_attention_stays_in_the_local_window(hopper_face):
    model = perturbed("swinir-light-x4", 0.02, only="upsampler.")
    ins = analysis.inspect(model, to_tensor(degrade(hopper_face, 4)))
    assert ins.graphs == {} and ins.groups == [None] * 4
    m = attention.attention_map(ins, 0, 0, 1, (10, 20))  # block 0: no shift
    rows, cols = np.nonzero(m)
    assert (rows // 8 == 1).all() and (cols // 8 == 2).all() and m.sum() == pytest.approx(1, abs=1e-5)


def group_inputs(model, lr) -> dict[int, torch.Tensor]:
    """The input of every residual group of one forward pass, (1, H, W, C)."""
    inputs = {}
    hooks = [g.register_forward_pre_hook(lambda mod, args, i=i: inputs.__setitem__(i, args[0]))
             for i, g in enumerate(model.layers)]
    try:
        with torch.no_grad():
            model(lr)
    finally:
        for h in hooks:
            h.remove()
    return inputs


@pytest.mark.parametrize("layout", ["strided", "contiguous"])
@pytest.mark.parametrize("size,shift", [((32, 32), 0), ((32, 32), 6), ((16, 24), 4), ((24, 16), 2)])
def test_window_pixels_and_window_at_agree_with_the_model_and_window_token_maps(layout, size, shift):
    geo = Geometry(size, shift, 8, layout)
    win, tok = attention.window_token_maps(size, shift, 8, layout)
    rows, cols = np.mgrid[0 : size[0], 0 : size[1]]
    assert all(np.array_equal(a, b) for a, b in zip(window_token(geo, rows, cols), (win, tok)))
    # the model's own partition of the rolled map: window k's token t is the pixel it gathers
    pixel = torch.arange(size[0] * size[1], dtype=torch.float64).view(1, *size, 1)
    gathered = to_windows(torch.roll(pixel, (-shift, -shift), dims=(1, 2)), 8, layout, heads=1)[0, 0, :, 0, :, 0]
    n_windows = (size[0] // 8) * (size[1] // 8)
    assert gathered.shape[0] == n_windows
    for k in range(n_windows):
        px = window_pixels(geo, k)
        assert np.array_equal(px[:, 0] * size[1] + px[:, 1], gathered[k].long().numpy())
        w, t = window_token(geo, px[:, 0], px[:, 1])
        assert (w == k).all() and np.array_equal(t, np.arange(64))
    if layout == "contiguous" and shift == 0:  # an 8x8 tile
        px = window_pixels(geo, 1)
        assert np.ptp(px[:, 0]) == np.ptp(px[:, 1]) == 7 and px[0].tolist() == [0, 8]


def test_inspection_windows(ins):
    assert ins.num_windows == 16 and ins.scope == "group"
    for g in range(4):
        for k in (0, 5, 15):
            px = ins.window_pixels(g, k)
            assert [ins.window_at(g, r, c) for r, c in px] == [k] * 64
            assert [ins.token_at(g, r, c) for r, c in px] == list(range(64))
            # strided: one pixel in each grid block, token t in node t's block
            assert np.array_equal(ins.graph(g).node_map[px[:, 0], px[:, 1]], np.arange(64))
    with pytest.raises(ValueError, match="not one of the 16 windows"):
        ins.window_pixels(0, 16)


def test_group_scope_every_window_shares_the_graph(ins):
    for g in (0, 1):
        shared = ins.graph(g).adjacency
        assert all(np.array_equal(ins.window_graph(g, k), shared) for k in range(ins.num_windows))
        blk = ins.block(g, 1)  # the graph block: attention * (A + I) in every window
        a = shared + np.eye(64)
        assert np.allclose(blk.attention_graph, blk.attention * a[None], atol=1e-7)


@pytest.mark.parametrize("layout", ["strided", "contiguous"])
def test_window_scope_against_a_hand_computation(face_lr, layout):
    """Each window's graph from its own 64 tokens: the per-head channel vector of each token (heads as the
    attention splits them: interleaved channels for strided windows, blocks for contiguous ones), the Gram
    rows' Minkowski distance, cut at T times the row maximum."""
    torch.manual_seed(0)
    model = gvtnet.build_model("light-x4", window_layout=layout).eval()
    window = model.variant(graph_scope="window")
    lr = face_lr[..., :24, :32]  # a non-square face: 3 x 4 windows
    ins = analysis.inspect(window, lr)
    inputs = group_inputs(window, lr)
    cfg, heads = window.cfg, window.cfg.num_heads
    assert ins.scope == "window" and ins.num_windows == 12
    for g in (0, 1):
        gg = ins.graph(g)
        assert gg.adjacency.shape == (12, heads, 64, 64)
        x = inputs[g][0].double()
        for k in (0, 7, 11):
            px = ins.window_pixels(g, k)
            tokens = x[px[:, 0], px[:, 1]]  # (64, C), the window's tokens in token order
            for h in range(heads):
                d = cfg.embed_dim // heads
                z = tokens[:, h::heads] if layout == "strided" else tokens[:, h * d : (h + 1) * d]
                gram = z @ z.T
                dist = torch.cdist(gram[None], gram[None], p=cfg.minkowski_p)[0]
                hand = (dist < cfg.threshold * dist.max(dim=1, keepdim=True).values).numpy()
                # float32 in the model: allow a pair or two on a near-tie
                assert (hand != ins.window_graph(g, k)[h]).sum() <= 2, (g, k, h)
            blk = ins.block(g, 1)
            assert np.allclose(blk.attention_graph[k], blk.attention[k] * (gg.adjacency[k] + np.eye(64)), atol=1e-7)
        assert not all(np.array_equal(gg.adjacency[0], gg.adjacency[k]) for k in range(12))  # graphs of their own


def test_graph_off_gives_an_all_ones_adjacency(light_x4, face_lr):
    for scope in ("group", "window"):
        off = analysis.inspect(light_x4.variant(use_graph=False, graph_scope=scope), face_lr)
        for g in range(4):
            assert all(off.window_graph(g, k).all() for k in range(off.num_windows))
        sel = graphs.select(off, 1, 0, (3, 4))
        assert sel.edges == "cut" and not sel.shown.any() and len(sel.ignored) == 0


def test_groups_are_indexed_by_model_group_and_roll(face_lr):
    """An uploaded model whose group 1 has no graph block, and one with two rolls in a group."""
    torch.manual_seed(0)
    model = gvtnet.build_model("light-x4", depths=(2, 1, 2)).eval()  # 'SG': group 1 is one 'S' block
    ins = analysis.inspect(model, face_lr)
    assert sorted(ins.graphs) == [(0, 0), (2, 0)] and ins.num_groups == 3
    assert ins.groups[1] is None and ins.groups[2].group == 2 and ins.graph(2) is ins.groups[2]
    with gvtnet.capture(model) as cap, torch.no_grad():
        model(face_lr)
    assert np.array_equal(ins.graph(2).adjacency, cap.groups[2][0]["adjacency"][0].numpy() > 0.5)
    with pytest.raises(ValueError, match="group 1 has no graph"):
        ins.graph(1)
    alternate = gvtnet.build_model("light-x4", depths=(2,), block_pattern="G", shift_rule="alternate").eval()
    ins = analysis.inspect(alternate, face_lr)
    assert sorted(ins.graphs) == [(0, 0), (0, 4)]  # block 0 unrolled, block 1 rolled by 4: two graphs
    assert not np.array_equal(ins.graph(0, 0).adjacency, ins.graph(0, 4).adjacency)
    for b, shift in ((0, 0), (1, 4)):
        blk = ins.block(0, b)
        a = ins.graph(0, shift).adjacency + np.eye(64)
        assert blk.shift == shift and np.allclose(blk.attention_graph, blk.attention * a[None], atol=1e-7)
    # each roll's windows: a pixel's window and token follow the roll
    assert ins.window_pixels(0, 0, shift=4)[0].tolist() == [4, 4]


def test_nodes_of_a_face_not_a_multiple_of_8_are_placed_on_it(light_x4, astronaut_face):
    """27x27 real-LR input (padded to 32): every node is drawn inside the 108x108 face, from its visible
    pixels; nodes with none are NaN; the node a click on the top-left corner selects is drawn there."""
    ins = analysis.inspect(light_x4, to_tensor(astronaut_face.resize((27, 27), Image.BICUBIC)))
    for g in range(4):
        gg = ins.graph(g)
        hidden = np.isnan(gg.centres_lr).any(axis=1)
        assert hidden.sum() == (0 if gg.shift == 6 else 15)  # shift 6 wraps every block onto the face
        on = gg.centres_lr[~hidden]
        assert (on >= 0).all() and (on <= 26).all()
        assert (gg.centres_hr[~hidden] < 108).all()
        # a node is drawn on one of its own pixels' rows and columns
        for n in np.nonzero(~hidden)[0][:10]:
            rows, cols = np.nonzero(gg.node_map == n)
            assert rows.min() <= gg.centres_lr[n, 0] <= rows.max() and cols.min() <= gg.centres_lr[n, 1] <= cols.max()
        corner = graphs.select(ins, g, 0, (0, 0)).node
        assert (gg.centres_lr[corner] <= 2).all()
    nodes = graphs.graph_figure(ins, astronaut_face, 1, 0, selected=0).data[-1]
    x, y = np.asarray(nodes.x, float), np.asarray(nodes.y, float)
    assert ((x[~np.isnan(x)] < 108) & (y[~np.isnan(y)] < 108)).all()
    assert "15 nodes lie wholly in the padding" in graphs.graph_figure(ins, astronaut_face, 0, 0).layout.title.text


def test_node_centres_of_a_block_cut_by_the_seam():
    c = node_centres((32, 32), 6, visible=(27, 27))
    # block (6, 6) covers rolled rows 24-27 -> rows 30, 31, 0, 1: only rows 0-1 are on the face
    assert c[6 * 8 + 6].tolist() == [0.5, 0.5]
    assert c[5 * 8 + 0].tolist() == [26.0, 7.5]  # rows 26-29: only row 26 is visible; cols 6-9
    assert np.isnan(node_centres((32, 32), 0, visible=(27, 27))[63]).all()  # rows and cols 28-31: padding


# ---------------------------------------------------------------------------------------------------
# graphs


def test_graph_stats_on_hand_made_graphs():
    cycle = np.roll(np.eye(4), 1, axis=1)  # 0 -> 1 -> 2 -> 3 -> 0
    s = graphs.graph_stats(graphs.node_graph(cycle + np.eye(4)))  # self-loops are left out
    assert s["edges"] == 4 and s["density"] == pytest.approx(4 / 12)
    assert s["reciprocity"] == 0 and s["strong_components"] == 1 and s["weak_components"] == 1
    pairs = np.zeros((5, 5))
    pairs[0, 1] = pairs[1, 0] = pairs[2, 3] = pairs[3, 2] = 1  # two mutual pairs and an isolated node
    s = graphs.graph_stats(graphs.node_graph(pairs))
    assert s["density"] == pytest.approx(4 / 20) and s["reciprocity"] == 1
    assert s["weak_components"] == 3 and s["strong_components"] == 3 and s["isolated"] == 1
    assert s["clustering"] == 0
    full = graphs.graph_stats(graphs.node_graph(np.ones((3, 3))))
    assert full["density"] == 1 and full["clustering"] == 1 and full["out_degree_min"] == 2
    chain = graphs.graph_stats(graphs.node_graph(np.triu(np.ones((3, 3)), 1)))  # 0->1, 0->2, 1->2
    assert chain["strong_components"] == 3 and chain["in_degree_max"] == 2 and chain["out_degree_min"] == 0
    assert chain["clustering"] == pytest.approx(nx.average_clustering(graphs.node_graph(np.triu(np.ones((3, 3)), 1))))


@pytest.mark.parametrize("density", [0.1, 0.5, 0.95])
def test_clustering_is_networkx_s(density):
    a = np.random.default_rng(int(density * 100)).random((40, 40)) < density
    a[3] = a[:, 3] = False  # an isolated node
    a[0, 0] = True  # a self-loop, ignored
    assert graphs.average_clustering(a) == pytest.approx(nx.average_clustering(nx.DiGraph(a)), abs=1e-12)


def test_edge_density_leaves_out_the_diagonal():
    a = np.eye(6)
    a[0, 1:] = 1
    assert graphs.edge_density(a) == pytest.approx(5 / 30)
    assert graphs.edge_density(np.stack([a, np.ones((6, 6))])).tolist() == pytest.approx([5 / 30, 1])


def test_digraph_of_an_inspection(ins):
    g = graphs.digraph(ins, 1, 3)
    a = ins.groups[1].adjacency[3]
    assert isinstance(g, nx.DiGraph) and g.number_of_edges() == a.sum() - np.trace(a)
    assert g.nodes[9]["grid"] == (1, 1) and np.allclose(g.nodes[9]["centre_lr"], ins.window_pixels(1, 0)[9])
    assert ins.graph(1).node_map[tuple(ins.window_pixels(1, 0)[9])] == 9  # drawn inside its own patch
    assert graphs.group_stats(ins, 1)[3]["density"] == pytest.approx(graphs.edge_density(a))


@pytest.mark.parametrize("face_name", ["astronaut_face", "hopper_face"])
def test_figures_build_for_real_faces(request, light_x4, face_name):
    face = request.getfixturevalue(face_name)
    ins = analysis.inspect(light_x4, to_tensor(degrade(face, 4)))
    selected = 27
    fig = graphs.graph_figure(ins, face, 2, 1, selected=selected)
    assert isinstance(fig, go.Figure) and isinstance(fig.data[0], go.Image)
    nodes = fig.data[-1]
    assert len(nodes.x) == 64 and len(nodes.text) == 64
    out_degree = int(ins.groups[2].adjacency[1, selected].sum() - 1)
    assert list(nodes.marker.color).count("#ff3030") == out_degree
    heat = graphs.adjacency_heatmap(ins, 2, 1)
    assert np.array_equal(np.asarray(heat.data[0].z), ins.groups[2].adjacency[1].astype(int))
    att = attention.attention_figure(ins, face, 2, 1, 0, (16, 16))
    assert sum(isinstance(t, go.Heatmap) for t in att.data) == 2  # before and after the graph
    assert sum(isinstance(t, go.Heatmap) for t in attention.attention_figure(ins, face, 2, 0, 0, (16, 16)).data) == 1
    assert graphs.graph_image(ins, face, 2, 1, (16, 16)).size == (384, 384)
    for f in (graphs.adjacency_png(ins, 2), attention.attention_png(ins, face, 2, 1, 0, (16, 16))):
        assert isinstance(f, Figure)
    assert attention.attention_overlay(face, attention.attention_map(ins, 2, 1, 0, (16, 16))).size == face.size


def test_shown_edges_and_the_selection():
    a = np.ones((4, 4), bool)
    a[0, 1] = a[2, 3] = False  # 10 of 12 pairs kept
    mode, shown = graphs.shown_edges(a)
    assert mode == "cut" and sorted(zip(*np.nonzero(shown))) == [(0, 1), (2, 3)]
    mode, shown = graphs.shown_edges(~a | np.eye(4, dtype=bool))  # 2 of 12 kept
    assert mode == "kept" and shown.sum() == 2
    assert graphs.shown_edges(a, "kept")[1].sum() == 10
    with pytest.raises(ValueError):
        graphs.shown_edges(a, "all")


def test_graph_image_darkens_exactly_the_ignored_patches(light_x4, face_lr, astronaut_face, ins):
    """Read the figure back: each patch the selected node ignores is darkened, every other left as is."""
    variant = analysis.inspect(light_x4.variant(threshold=0.5), face_lr)  # enough cuts to see
    for insp, pixel in ((ins, (13, 22)), (variant, (2, 30))):
        sel = graphs.select(insp, 1, 2, pixel)
        assert sel.node == insp.token_at(1, *pixel) and sel.window == insp.window_at(1, *pixel)
        assert len(sel.ignored) + len(sel.neighbours) == 63
        img = np.asarray(graphs.graph_image(insp, astronaut_face, 1, 2, pixel), float)
        plain = np.asarray(graphs.face_canvas(astronaut_face, (32, 32), 12), float)
        dark = plain * 0.3 + [60, 0, 0]
        # each pixel nearer the face darkened than the face itself? Faint lines leave a pixel nearer what
        # it was; the selected node's opaque lines, and pixels too dark to tell apart, are left out; the
        # node markers are the rest of the margin.
        nearer_dark = np.linalg.norm(img - dark, axis=-1) < np.linalg.norm(img - plain, axis=-1)
        telling = (np.linalg.norm(plain - dark, axis=-1) > 40) & ~(img == graphs.EDGE_COLOURS["cut"]).all(-1)
        node = insp.graph(1).node_map.repeat(12, 0).repeat(12, 1)
        for n in range(64):
            share = nearer_dark[(node == n) & telling].mean()
            assert share > 0.8 if n in sel.ignored else share < 0.3, (n, share)


def test_overview_and_stats_table(ins):
    fig = graphs.overview_figure(ins, window=3, pixel=(13, 22))
    tiles = np.asarray(fig.data[0].z)
    assert tiles.shape == (4 * 82, 4 * 70 - 6, 3)  # 18 px above each row of tiles for the titles
    for g, h in ((0, 0), (3, 2)):
        tile = tiles[g * 82 + 18 : g * 82 + 82, h * 70 : h * 70 + 64, 0]
        assert np.array_equal(tile > 128, ins.graph(g).adjacency[h])
    titles = [a.text for a in fig.layout.annotations]
    assert len(titles) == 16 and titles[6] == f"g1 h2: {graphs.edge_density(ins.graph(1).adjacency[2]):.2f}"
    assert len(fig.layout.shapes) == 16  # the pixel's node's row in every tile
    assert not graphs.overview_figure(ins, window=3).layout.shapes  # no pixel, nothing marked
    rows = graphs.stats_table(graphs.graph_stats(graphs.digraph(ins, 1, 2)))
    assert [r[0] for r in rows][:3] == ["nodes", "edges", "density"]
    assert all(r[2] for r in rows)  # each with its meaning
    assert all(r[1] == round(r[1], 3) for r in rows if isinstance(r[1], float))


def _heatmap_grey(trace, value: float) -> float:
    """The grey plotly.js paints `value` in a go.Heatmap: z mapped onto the colour scale between zmin and
    zmax, which default to the data's range, widened by 0.5 each way where every value is the same."""
    z = np.asarray(trace.z, float)
    lo = trace.zmin if trace.zmin is not None else z.min()
    hi = trace.zmax if trace.zmax is not None else z.max()
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    stops = [(f, int(re.findall(r"\d+", c)[0])) for f, c in trace.colorscale]
    return float(np.interp((value - lo) / (hi - lo), *zip(*stops)))


@pytest.mark.parametrize("settings", [{}, {"use_graph": False}, {"threshold": 0.0}], ids=["T=0.85", "graph off", "T=0"])
def test_kept_and_cut_have_one_grey_in_every_state(light_x4, face_lr, settings):
    """Kept is light (235) and cut dark (40) in the window's heatmap and in the overview, whatever the graph
    keeps: with the graph off every pair is kept, which plotly would otherwise paint in its middle grey
    (138), reading as mostly cut."""
    ins = analysis.inspect(light_x4.variant(**settings), face_lr)
    adjacency = ins.window_graph(1, 0)[0]
    heat = graphs.adjacency_heatmap(ins, 1, 0).data[0]
    for value, grey in ((1, 235), (0, 40)):
        if (adjacency == value).any():
            assert _heatmap_grey(heat, value) == pytest.approx(grey), (value, settings)
    tiles = np.asarray(graphs.overview_figure(ins).data[0].z)[18 : 18 + 64, 0:64, 0]  # group 0, head 0
    assert set(np.unique(tiles[ins.window_graph(0, 0)[0]])) <= {235}
    assert set(np.unique(tiles[~ins.window_graph(0, 0)[0]])) <= {40}
    if settings.get("use_graph") is False:
        assert adjacency.all()


def test_overview_marks_each_groups_own_node(light_x4, astronaut_face):
    """Groups roll by different amounts, so one LR pixel is a different node (and, under 'window' scope, in a
    different window's graph) in each group: on a 20 x 20 face, padded to 24, pixel (19, 19) is (window,
    node) (4, 54) in group 0, (4, 36) in group 1, (4, 54) in group 2 and (0, 45) in group 3."""
    lr = to_tensor(astronaut_face.resize((20, 20), Image.BICUBIC))
    for scope in ("group", "window"):
        ins = analysis.inspect(light_x4.variant(graph_scope=scope), lr)
        keys = sorted(ins.graphs)
        assert [(ins.window_at(g, 19, 19, shift), ins.token_at(g, 19, 19, shift)) for g, shift in keys] == [
            (4, 54), (4, 36), (4, 54), (0, 45)]
        fig = graphs.overview_figure(ins, pixel=(19, 19))
        tiles = np.asarray(fig.data[0].z)
        marks = iter(fig.layout.shapes)
        for r, (g, shift) in enumerate(keys):
            top = r * 82 + 18
            adjacency = ins.window_graph(g, ins.window_at(g, 19, 19, shift), shift)
            for h in range(4):
                mark = next(marks)
                assert mark.y0 == mark.y1 == top + ins.token_at(g, 19, 19, shift), (scope, g, h)
                assert (mark.x0, mark.x1) == (h * 70 - 0.5, h * 70 + 63.5)
                assert np.array_equal(tiles[top : top + 64, h * 70 : h * 70 + 64, 0] > 128, adjacency[h]), (scope, g)
    assert "w0 h0" in fig.layout.annotations[12].text  # group 3's tiles name their own window


def test_overview_hover_names_group_head_query_and_key(ins):
    fig = graphs.overview_figure(ins, window=3)
    trace = fig.data[0]
    cell = np.asarray(trace.customdata)[18 + 5, 70 + 7]  # group 0's tiles, head 1's tile, its row 5, column 7
    text = re.sub(r"%\{customdata\[(\d)\]\}", lambda m: str(cell[int(m[1])]), trace.hovertemplate)
    assert text == "group 0, head 1: query 5, key 7<extra></extra>"
    assert (np.asarray(trace.customdata)[:18] == -1).all()  # above the first tiles: their titles


# ---------------------------------------------------------------------------------------------------
# threshold sweep


def test_threshold_sweep(light_x4, face_lr, astronaut_face):
    ts = [0.3, 0.6, 0.85, 0.95]
    s = threshold.sweep(light_x4, face_lr, ts, hr=astronaut_face)
    assert s.density.shape == (4, 4) and s.outputs.shape == (4, 3, 128, 128)
    assert (np.diff(s.density, axis=0) >= 0).all()  # released rule: larger T, more neighbours
    assert s.density[0].mean() < s.density[-1].mean()
    assert s.mad[2] < 1e-5 and s.mad[0] > 1e-4  # T = 0.85 is the model's own setting
    assert s.psnr_own[2] > 80 and np.isfinite(s.psnr_hr).all()
    paper = threshold.sweep(light_x4, face_lr, [0.3, 0.6, 0.9], neighbour_rule="paper")
    assert (np.diff(paper.density, axis=0) <= 0).all() and paper.neighbour_rule == "paper"
    assert len(threshold.sweep_figure(s).data) == 4 + 2 + 1
    thumbs = threshold.thumbnails(s, [0.32, 0.8])
    assert [t for t, _ in thumbs] == [0.3, 0.85] and thumbs[0][1].size == (128, 128)
    assert isinstance(threshold.sweep_png(s), Figure)


def test_threshold_sweep_over_faces(light_x4, astronaut_face, hopper_face):
    faces = [astronaut_face, hopper_face, astronaut_face.transpose(Image.FLIP_LEFT_RIGHT)]
    batch = lambda imgs: torch.from_numpy(np.stack([np.asarray(i) for i in imgs])).permute(0, 3, 1, 2)
    pairs = FacePairs(batch(faces), batch([degrade(f, 4) for f in faces]), 4)
    calls = []
    s = threshold.sweep_faces(light_x4, pairs, [0.3, 0.85, 1.0], batch=2, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (5, 5) and s.faces == 3 and s.psnr_change.shape == s.density.shape == (3, 3)
    assert (s.psnr_change[1] == 0).all()  # T = 0.85 is the model's own setting
    assert (np.diff(s.density, axis=0) > 0).all() and (s.density <= 1).all()
    # the graph-off reference, computed by hand for one face
    hr = np.asarray(faces[1])
    own = psnr(np.asarray(to_image(light_x4(to_tensor(degrade(faces[1], 4))))), hr)
    off = psnr(np.asarray(to_image(light_x4.variant(use_graph=False)(to_tensor(degrade(faces[1], 4))))), hr)
    assert s.off_change[1] == pytest.approx(off - own, abs=1e-9)
    rows = s.rows()
    assert rows[-1][0] == "graph off" and rows[0][1] == pytest.approx(s.psnr_change[0].mean())
    fig = threshold.faces_figure(s)
    assert any("graph off" in (t.name or "") for t in fig.data)
    assert isinstance(threshold.faces_png(s), Figure)


def test_threshold_command_over_a_folder(tmp_path, astronaut_face, hopper_face, capsys):
    torch.manual_seed(0)
    save_model(gvtnet.build_model("light-x4", depths=(2,)), tmp_path / "gvt.safetensors")
    (tmp_path / "faces").mkdir()
    for name, face in (("a", astronaut_face), ("b", hopper_face)):
        face.save(tmp_path / "faces" / f"{name}.png")
    from analysis.studies import sweep

    sweep.main([str(tmp_path / "faces"), "--weights", str(tmp_path / "gvt.safetensors"),
                    "--thresholds", "0.5,0.85", "--out", str(tmp_path / "sweep.png")])
    out = capsys.readouterr().out
    assert "2 faces" in out and "| 0.85 | +0.000 ± 0.000 |" in out and "| graph off |" in out
    assert (tmp_path / "sweep.png").stat().st_size > 1000


# ---------------------------------------------------------------------------------------------------
# report command


def test_report_writes_its_files(tmp_path, astronaut):
    # one-group models keep the test quick; the report walks every group and block the same way
    for preset, name in (("light-x4", "gvt"), ("swinir-light-x4", "swin")):
        torch.manual_seed(0)
        save_model(gvtnet.build_model(preset, depths=(2,)), tmp_path / f"{name}.safetensors")
    astronaut.crop((120, 0, 360, 240)).save(tmp_path / "face.jpg")
    from analysis.studies import report

    out = tmp_path / "out"
    report.main([str(tmp_path / "face.jpg"), "--weights", str(tmp_path / "gvt.safetensors"), "--out", str(out),
                 "--baseline", str(tmp_path / "swin.safetensors"), "--fold", "3", "--batch-size", "3",
                 "--thresholds", "0.5,0.85"])
    page = (out / "report.html").read_text()
    pngs = {p.stem for p in out.glob("*.png")}
    assert page.count("<figure>") == len(pngs)
    assert pngs == {"faces", "graph_group0", "adjacency_group0", "attention_group0_block0", "attention_group0_block1",
                    "threshold_sweep", "threshold_thumbnails", "lam_fig4", "lam_spread"}
    assert all((out / f"{p}.png").stat().st_size > 1000 for p in pngs)
    assert page.count("Plotly.newPlot") == 4 and len(page) > 3_000_000  # plotly.js inlined once, 4 figures
    assert 'src="http' not in page and "<script src=" not in page  # self-contained
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["lam"]) == {"GVTNet", "SwinIR"} and all(0 < v["di"] <= 100 for v in summary["lam"].values())
    assert len(summary["graphs"]["0"]) == 4 and summary["sweep"]["thresholds"] == [0.5, 0.85]


def test_sweep_psnr_is_the_y_psnr_the_app_shows_everywhere(astronaut_face):
    """The Threshold view's 'PSNR-Y vs HR' at the model's own T is the Y-channel PSNR of the model's output,
    the figure the Restore tab and the model card give (it was once RGB: 28.03 against 29.64 dB)."""
    from gvtnet.inference import super_resolve, to_uint8

    model = gvtnet.load_model(Path(__file__).parents[1] / "assets" / "gvtnet-light-x4.safetensors")
    lr = to_tensor(degrade(astronaut_face, 4))
    s = threshold.sweep(model, lr, [model.cfg.threshold], hr=astronaut_face)
    sr = to_uint8(super_resolve(model, lr))[0]
    expected = psnr(sr, np.asarray(astronaut_face), y_channel=True)
    assert s.psnr_hr[0] == pytest.approx(expected, abs=1e-9)
    assert expected != pytest.approx(psnr(sr, np.asarray(astronaut_face), y_channel=False))
