"""The light Table I: each row builds the network it names, and the table is computed, not typed."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import gvtnet
from analysis import ablation
from conftest import ROOT

ROWS = {r.name: r for r in ablation.ROWS}


def kinds(model) -> set[str]:
    return {blk.kind for g in model.layers for blk in g.blocks}


def test_each_row_builds_the_intended_network():
    nets = {name: gvtnet.GVTNet(row.config()) for name, row in ROWS.items()}
    assert kinds(nets["swinir"]) == {"S"} and nets["swinir"].cfg.window_layout == "contiguous"
    assert not nets["swinir"].cfg.dwconv
    # GVTNet without its graph: strided whole-face windows, per-group shift, depthwise q/k/v, no graph layer
    strided = nets["strided"]
    assert kinds(strided) == {"S"} and strided.cfg.window_layout == "strided"
    assert strided.cfg.shift_rule == "per_group" and strided.cfg.dwconv
    assert kinds(nets["gvtnet"]) == {"S", "G"} and nets["gvtnet"].cfg == gvtnet.build_model("light-x8").cfg
    assert kinds(nets["all-graph"]) == {"G"}
    assert not any("depthwise" in k for k in nets["no-dwconv"].state_dict())
    assert any("depthwise" in k for k in nets["gvtnet"].state_dict())
    assert nets["t075"].cfg.threshold == 0.75
    # every row is the same network but for what it ablates: same scale, width and depth
    assert {(n.cfg.upscale, n.cfg.embed_dim, n.cfg.depths) for n in nets.values()} == {(8, 48, (2, 2, 2, 2))}
    # the graph-free networks take the shipped GVTNet's weights unchanged (same names and shapes)
    shapes = {k: v.shape for k, v in nets["gvtnet"].state_dict().items()}
    assert {k: v.shape for k, v in strided.state_dict().items()} == shapes


def test_every_run_shares_the_recipe():
    runs = ablation.runs(ROOT / "runs" / "ablation")
    scratch = [args for label, _, args in runs if "seed" in label]
    assert len(scratch) == len(ROWS) + 2 * 3  # rows 1-3 have three seeds
    strip = lambda a: [x for i, x in enumerate(a) if x != "--set" and (i == 0 or a[i - 1] != "--set")]
    recipes = {tuple(strip(a)[2:-2]) for a in scratch}  # without preset, overrides and seed
    assert len(recipes) == 1


def test_table_against_a_hand_computation():
    a, b = [20.0, 22.0, 24.0], [21.0, 22.5, 24.5]  # gvtnet seed 0 is 1/3 dB worse than swinir seed 0
    results = {"bicubic": {"psnr_y": [18.0, 18.0, 18.0], "ssim_y": [0.5] * 3},
               "gvtnet-s0": {"psnr_y": a, "ssim_y": [0.6] * 3, "di": [5.0, 6.0, 7.0]},
               "gvtnet-s1": {"psnr_y": [x + 0.3 for x in a], "ssim_y": [0.7] * 3, "di": [8.0, 8.0, 8.0]},
               "swinir-s0": {"psnr_y": b, "ssim_y": [0.8] * 3}}
    lines = {line.split(" | ")[1]: line for line in ablation.table(results).splitlines()[2:]}
    assert "| 18.000 |" in lines["bicubic"]
    gv = lines[ROWS["gvtnet"].what]
    assert "| 2 of 3 | 22.150 | 22.000-22.300 | 0.6500 |" in gv  # mean over its two seeds
    assert "| 7.00 (6.00-8.00) |" in gv  # DI: the seeds' means 6 and 8, their mean and range
    sw = lines[ROWS["swinir"].what]
    assert "| 1 of 3 | 22.667 |" in sw and "+0.667 (" in sw
    lo, hi = ablation.bootstrap_interval(np.array(b) - np.array(a))
    assert lo <= 2 / 3 <= hi
    assert "not trained yet" in lines[ROWS["t075"].what]


def test_fine_tune_table_pairs_faces():
    results = {"ft-gvtnet": {"psnr_y": [20.0, 21.0, 22.0, 23.0], "ssim_y": [0.5] * 4},
               "ft-strided": {"psnr_y": [20.1, 20.9, 21.9, 22.9], "ssim_y": [0.4] * 4}}
    last = ablation.fine_tune_table(results).splitlines()[-1]
    assert "| -0.050 (" in last and "higher on 25% of faces" in last


def test_docs_table_is_the_commands_output():
    doc, results = ROOT / "docs" / "ABLATION.md", ROOT / "docs" / "ablation-results.json"
    if not results.exists():
        pytest.skip("no ablation results recorded yet")
    body = doc.read_text()
    start = body.index(ablation.MARKERS[0]) + len(ablation.MARKERS[0])
    assert body[start : body.index(ablation.MARKERS[1])].strip() == ablation.tables(json.loads(results.read_text()))


def test_lam_di_is_the_study_of_each_run(tmp_path, celeba_test):
    """A run's DI column is, face by face, the mean over the named windows of LAM's DI (fp32)."""
    from analysis import lam, lam_study

    torch.manual_seed(0)
    model = gvtnet.build_model("light-x8")
    (tmp_path / "gvtnet-s0").mkdir()
    gvtnet.save_model(model, tmp_path / "gvtnet-s0" / "model.safetensors")
    results_path = tmp_path / "results.json"
    results_path.write_text(json.dumps({"gvtnet-s0": {"psnr_y": [0.0], "ssim_y": [0.0]}}))
    di = ablation.lam_di(tmp_path, celeba_test, results_path, faces=1)["gvtnet-s0"]["di"]
    assert json.loads(results_path.read_text())["gvtnet-s0"]["di"] == di and len(di) == 1
    (lr,) = lam_study.load_faces(celeba_test, 1, 8).values()
    model = gvtnet.load_model(tmp_path / "gvtnet-s0" / "model.safetensors")
    expected = np.mean([lam.local_attribution_map(model, lr, w.row, w.col, w.size).di
                        for w in lam_study.face_windows(128, 128)])
    assert di[0] == pytest.approx(expected, abs=1e-3)


def test_figure_has_a_point_per_scored_run():
    run = lambda psnr, di: {"psnr_y": [psnr], "ssim_y": [0.5], "di": [di]}
    results = {"gvtnet-s0": run(25.0, 16.0), "gvtnet-s1": run(25.1, 16.4), "swinir-s0": run(25.2, 13.0),
               "strided-s0": {"psnr_y": [25.0], "ssim_y": [0.5]},  # no DI yet: not drawn
               "ft-gvtnet": run(25.5, 16.1), "ft-strided": run(25.4, 16.9)}
    scratch, tuned = ablation.figure(results).axes
    points = sorted(tuple(map(tuple, c.get_offsets())) for ax in (scratch, tuned) for c in ax.collections)
    assert points == sorted([((16.0, 25.0), (16.4, 25.1)), ((13.0, 25.2),), ((16.1, 25.5),), ((16.9, 25.4),)])
