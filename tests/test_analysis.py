"""analysis: inspect, geometry, graphs, attention maps, threshold sweeps and the report command."""
from __future__ import annotations

import json

import networkx as nx
import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from matplotlib.figure import Figure
from safetensors.torch import load_file

import analysis
import gvtnet
from analysis import attention, graphs, threshold
from analysis.inspection import node_centres, node_index_map
from gvtnet.graph import adjacency, node_features
from gvtnet.images import degrade
from gvtnet.inference import to_tensor
from gvtnet.model import GVTNet, to_windows
from gvtnet.weights import infer_config, released_to_ours, save_model


def perturbed(preset: str) -> GVTNet:
    """An untrained model whose output depends on its body (light presets start as exact bicubic)."""
    torch.manual_seed(0)
    m = gvtnet.build_model(preset).eval()
    for p in m.upsampler.parameters():
        p.data.normal_(0, 0.02)
    return m


@pytest.fixture(scope="module")
def light_x4():
    return perturbed("light-x4")


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
    inputs = {}
    hooks = [g.register_forward_pre_hook(lambda mod, args, i=i: inputs.__setitem__(i, args[0]))
             for i, g in enumerate(light_x4.layers)]
    try:
        with torch.no_grad():
            light_x4(face_lr)
    finally:
        for h in hooks:
            h.remove()
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
    model = perturbed("swinir-light-x4")
    ins = analysis.inspect(model, to_tensor(degrade(hopper_face, 4)))
    assert ins.groups == []
    m = attention.attention_map(ins, 0, 0, 1, (10, 20))  # block 0: no shift
    rows, cols = np.nonzero(m)
    assert (rows // 8 == 1).all() and (cols // 8 == 2).all() and m.sum() == pytest.approx(1, abs=1e-5)


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


def test_edge_density_leaves_out_the_diagonal():
    a = np.eye(6)
    a[0, 1:] = 1
    assert graphs.edge_density(a) == pytest.approx(5 / 30)
    assert graphs.edge_density(np.stack([a, np.ones((6, 6))])).tolist() == pytest.approx([5 / 30, 1])


def test_digraph_of_an_inspection(ins):
    g = graphs.digraph(ins, 1, 3)
    a = ins.groups[1].adjacency[3]
    assert isinstance(g, nx.DiGraph) and g.number_of_edges() == a.sum() - np.trace(a)
    assert g.nodes[9]["grid"] == (1, 1) and np.allclose(g.nodes[9]["centre_hr"], ins.groups[1].centres_hr[9])
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
    for f in (graphs.graph_png(ins, face, 2, 1, selected), graphs.adjacency_png(ins, 2),
              attention.attention_png(ins, face, 2, 1, 0, (16, 16))):
        assert isinstance(f, Figure)
    assert attention.attention_overlay(face, attention.attention_map(ins, 2, 1, 0, (16, 16))).size == face.size


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


# ---------------------------------------------------------------------------------------------------
# report command


def test_report_writes_its_files(tmp_path, astronaut):
    # one-group models keep the test quick; the report walks every group and block the same way
    for preset, name in (("light-x4", "gvt"), ("swinir-light-x4", "swin")):
        torch.manual_seed(0)
        save_model(gvtnet.build_model(preset, depths=(2,)), tmp_path / f"{name}.safetensors")
    astronaut.crop((120, 0, 360, 240)).save(tmp_path / "face.jpg")
    from analysis import report

    out = tmp_path / "out"
    report.main([str(tmp_path / "face.jpg"), "--weights", str(tmp_path / "gvt.safetensors"), "--out", str(out),
                 "--baseline", str(tmp_path / "swin.safetensors"), "--fold", "3", "--batch-size", "3",
                 "--thresholds", "0.5,0.85"])
    page = (out / "report.html").read_text()
    pngs = {p.stem for p in out.glob("*.png")}
    assert page.count("<figure>") == len(pngs)
    assert pngs == {"faces", "graph_group0", "adjacency_group0", "attention_group0_block0", "attention_group0_block1",
                    "threshold_sweep", "threshold_thumbnails", "lam_fig4"}
    assert all((out / f"{p}.png").stat().st_size > 1000 for p in pngs)
    assert page.count("Plotly.newPlot") == 4 and len(page) > 3_000_000  # plotly.js inlined once, 4 figures
    assert 'src="http' not in page and "<script src=" not in page  # self-contained
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["lam"]) == {"GVTNet", "SwinIR"} and all(0 < v["di"] <= 100 for v in summary["lam"].values())
    assert len(summary["graphs"]["0"]) == 4 and summary["sweep"]["thresholds"] == [0.5, 0.85]
