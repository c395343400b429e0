"""The light Table I: each row builds the network it names, and the table is computed, not typed."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import gvtnet
from analysis.studies import ablation
from conftest import ROOT

ROWS = {r.name: r for r in ablation.ROWS + ablation.VARIANTS}
GRAPH_ONLY = set(gvtnet.GVTNet.GRAPH_FIELDS) - {"use_graph"}


def kinds(model) -> set[str]:
    return {blk.kind for g in model.layers for blk in g.blocks}


def test_each_row_builds_the_intended_network():
    nets = {name: gvtnet.GVTNet(row.config()) for name, row in ROWS.items()}
    assert kinds(nets["swinir"]) == {"S"} and nets["swinir"].cfg.window_layout == "contiguous"
    assert not nets["swinir"].cfg.dwconv
    strided = nets["strided"]  # GVTNet without graph blocks: strided windows, per-group shift, depthwise q/k/v
    assert kinds(strided) == {"S"} and strided.cfg.window_layout == "strided"
    assert strided.cfg.shift_rule == "per_group" and strided.cfg.dwconv
    assert kinds(nets["dense-graph"]) == {"S", "G"} and not nets["dense-graph"].cfg.use_graph
    assert kinds(nets["gvtnet"]) == {"S", "G"} and nets["gvtnet"].cfg == gvtnet.build_model("light-x8").cfg
    assert nets["sparse"].cfg.threshold == ablation.SPARSE_T
    assert kinds(nets["all-graph"]) == {"G"}
    assert not any("depthwise" in k for k in nets["no-dwconv"].state_dict())
    assert any("depthwise" in k for k in nets["gvtnet"].state_dict())
    assert nets["t075"].cfg.threshold == 0.75
    # every row is the same network but for what it ablates: same scale, width and depth
    assert {(n.cfg.upscale, n.cfg.embed_dim, n.cfg.depths) for n in nets.values()} == {(8, 48, (2, 2, 2, 2))}
    # the graph-free networks take the shipped GVTNet's weights unchanged (same names and shapes)
    shapes = {k: v.shape for k, v in nets["gvtnet"].state_dict().items()}
    assert {k: v.shape for k, v in strided.state_dict().items()} == shapes


def test_each_step_changes_exactly_the_fields_it_names():
    """Row k's config differs from row k-1's in its `changes` and nothing else (graph-only fields such as
    minkowski_p do not count between networks without graph blocks, which never read them)."""
    for above, row in zip(ablation.ROWS, ablation.ROWS[1:]):
        a, b = above.config(), row.config()
        differ = {f.name for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)}
        if "G" not in a.block_pattern and "G" not in b.block_pattern:
            differ -= GRAPH_ONLY
        assert differ == set(row.changes), row.name


def test_rows_of_one_shape_start_from_the_same_weights():
    """Paired by seed: rows whose parameters have the same shapes start from identical weights (and every
    run of a seed draws the same faces, from its own generator)."""
    def start(name, seed):
        torch.manual_seed(seed)
        return gvtnet.GVTNet(ROWS[name].config()).state_dict()

    for group in (("swinir", "celeba-mean", "strided-linear"), ("strided", "dense-graph", "gvtnet", "sparse")):
        first = start(group[0], 1)
        for name in group[1:]:
            assert all(torch.equal(first[k], v) for k, v in start(name, 1).items()), name


def test_every_run_shares_the_recipe():
    runs = ablation.runs(ROOT / "runs" / "ablation")
    scratch = [args for label, _, args in runs if "seed" in label]
    assert len(scratch) == len(ablation.ROWS) * len(ablation.DECOMPOSITION_SEEDS) + len(ablation.VARIANTS)
    strip = lambda a: [x for i, x in enumerate(a) if x != "--set" and (i == 0 or a[i - 1] != "--set")]
    recipes = {tuple(strip(a)[2:-2]) for a in scratch}  # without preset, overrides and seed
    assert len(recipes) == 1


def test_a_scored_run_is_not_trained_again(tmp_path):
    """Finished: weights on disk, or scores and DI on record; a run scored without DI and without its
    weights is trained again for its DI."""
    results = tmp_path / "results.json"
    scored = {"psnr_y": [1.0], "ssim_y": [1.0]}
    results.write_text(json.dumps({"gvtnet-s0": scored | {"di": [3.0]}, "sparse-s0": scored}))
    (tmp_path / "runs" / "sparse-s1").mkdir(parents=True)
    gvtnet.save_model(gvtnet.build_model("light-x8"), tmp_path / "runs" / "sparse-s1" / "model.safetensors")
    names = [out.name for _, out, _ in ablation.pending(tmp_path / "runs", results)]
    assert "gvtnet-s0" not in names and "sparse-s1" not in names
    assert "gvtnet-s1" in names and "sparse-s0" in names


def test_train_closes_each_log_when_its_process_ends(tmp_path, monkeypatch):
    logs = []

    class Finished:  # a training process that has already ended
        returncode, pid = 0, -1

        def __init__(self, cmd, stdout, stderr, **kwargs):
            self.log = stdout
            logs.append(stdout)

        def wait(self, timeout):
            assert not self.log.closed  # open while the process may still write to it
            return 0

    monkeypatch.setattr(ablation, "pending", lambda *a: [(n, tmp_path / n, []) for n in ("a", "b", "c")])
    monkeypatch.setattr(ablation.subprocess, "Popen", Finished)
    ablation.train(tmp_path, "data", 2, tmp_path / "results.json")
    assert len(logs) == 3 and all(log.closed for log in logs)


@pytest.mark.skipif(not Path("/proc/self/autogroup").exists(), reason="the kernel has no autogroups")
def test_runs_train_at_the_lowest_priority_in_sessions_of_their_own(tmp_path, monkeypatch):
    """nice alone does not lower a run against other sessions' work: each run gets a session, and that
    session's group the lowest priority."""
    seen = {}
    popen = subprocess.Popen

    def start(cmd, **kwargs):
        assert cmd[:3] == ["nice", "-n", "19"]
        proc = popen(["sleep", "1"], **kwargs)
        real_wait = proc.wait

        def wait(timeout=None):
            seen.setdefault(proc.pid, (os.getsid(proc.pid), Path(f"/proc/{proc.pid}/autogroup").read_text()))
            return real_wait(timeout)

        proc.wait = wait
        return proc

    monkeypatch.setattr(ablation, "pending", lambda *a: [(n, tmp_path / n, []) for n in ("a", "b")])
    monkeypatch.setattr(ablation.subprocess, "Popen", start)
    ablation.train(tmp_path, "data", 2, tmp_path / "results.json")
    assert len(seen) == 2
    for pid, (session, group) in seen.items():
        assert session == pid and session != os.getsid(0)
        assert group.split()[-1] == "19"


def test_ctrl_c_stops_every_run(tmp_path, monkeypatch):
    """The runs, in sessions of their own, are sent SIGTERM (gvtnet.train then checkpoints) and waited for."""
    started = []
    popen = subprocess.Popen

    def start(cmd, **kwargs):
        proc = popen(["sleep", "30"], **kwargs)
        started.append(proc)
        if len(started) == 2:  # Ctrl-C while waiting for the second run, once
            real_wait = proc.wait

            def interrupted(timeout=None):
                proc.wait = real_wait
                raise KeyboardInterrupt
            proc.wait = interrupted
        return proc

    monkeypatch.setattr(ablation, "pending", lambda *a: [(n, tmp_path / n, []) for n in ("a", "b", "c")])
    monkeypatch.setattr(ablation.subprocess, "Popen", start)
    with pytest.raises(KeyboardInterrupt):
        ablation.train(tmp_path, "data", 2, tmp_path / "results.json")
    assert len(started) == 2 and all(proc.returncode == -15 for proc in started)


def test_step_against_a_hand_computation():
    """Seed-paired: the step is the mean over seeds of (row minus the row above), each seed's a mean over
    faces, with a t-interval over seeds; the seed-0-only or mean-of-means comparison is never used."""
    faces = lambda base: {"psnr_y": [base - 1, base, base + 1], "ssim_y": [0.5] * 3}
    results = {"bicubic": {"psnr_y": [18.0] * 3, "ssim_y": [0.5] * 3},
               "swinir-s0": faces(20.0), "swinir-s1": faces(21.0), "swinir-s2": faces(30.0),  # s2 unpaired
               "celeba-mean-s0": faces(20.4), "celeba-mean-s1": faces(21.6)}
    lines = {line.split(" | ")[1]: line for line in ablation.table(results).splitlines()[2:]}
    assert "| 18.000 |" in lines["bicubic"]
    assert "| 3 of 4 | 23.667 (20.000-30.000) |" in lines[ROWS["swinir"].what]
    # per seed +0.4 and +0.6: mean 0.5, sd 0.1414, sem 0.1; t(0.975, 1) = 12.706
    assert "| +0.500 [-0.771, +1.771] (2 seeds; detects 1.408) |" in lines[ROWS["celeba-mean"].what]
    st = ablation.paired_step(ablation.seed_pairs(results, ROWS["celeba-mean"], ROWS["swinir"]))
    assert st.per_seed == pytest.approx([0.4, 0.6]) and st.detectable == pytest.approx((12.706 + 1.376) * 0.1, rel=1e-3)
    assert "(training)" in lines[ROWS["sparse"].what]
    steps = ablation.steps_text(results).splitlines()
    assert steps == ["rows 1 -> 2 (swinir -> celeba-mean), dB: +0.500 [-0.771, +1.771] (2 seeds; detects 1.408); "
                     "per seed +0.400, +0.600; over faces [+0.500, +0.500]"]


def test_evaluate_keys_scores_on_the_weights(tmp_path, celeba_test, monkeypatch):
    """A run scored once is not scored again while its weights are the same; retrained, it is, and its
    DI is dropped so that `lam_di` redoes it."""
    data = tmp_path / "faces"
    data.mkdir()
    for f in sorted(celeba_test.iterdir())[:2]:
        (data / f.name).write_bytes(f.read_bytes())
    monkeypatch.setattr(ablation, "runs", lambda root: [("gvtnet seed 0", root / "gvtnet-s0", [])])
    monkeypatch.chdir(ROOT)  # the shipped file is read from assets/
    (tmp_path / "gvtnet-s0").mkdir()
    path = tmp_path / "gvtnet-s0" / "model.safetensors"
    torch.manual_seed(0)
    gvtnet.save_model(gvtnet.build_model("light-x8"), path)
    results_path = tmp_path / "results.json"
    first = ablation.evaluate(tmp_path, data, results_path)["gvtnet-s0"]
    scored = []
    restore = ablation.restore_pairs
    monkeypatch.setattr(ablation, "restore_pairs", lambda *a: scored.append(1) or restore(*a))
    results = json.loads(results_path.read_text())
    results["gvtnet-s0"]["di"] = [1.0, 1.0]
    results_path.write_text(json.dumps(results))
    assert ablation.evaluate(tmp_path, data, results_path)["gvtnet-s0"]["di"] == [1.0, 1.0] and not scored
    model = gvtnet.build_model("light-x8")
    with torch.no_grad():
        model.upsampler.upsample[0].weight.normal_(0, 0.01)  # retrained: other weights
    gvtnet.save_model(model, path)
    again = ablation.evaluate(tmp_path, data, results_path)["gvtnet-s0"]
    assert scored == [1] and again["sha256"] != first["sha256"] and "di" not in again
    assert again["psnr_y"] != first["psnr_y"]


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


@pytest.mark.slow
def test_lam_di_is_the_study_of_each_run(tmp_path, celeba_test):
    """A run's DI column is, face by face, the mean over the named windows of LAM's DI (fp32)."""
    from analysis import lam
    from analysis.studies import lam_study

    torch.manual_seed(0)
    model = gvtnet.build_model("light-x8")
    (tmp_path / "gvtnet-s0").mkdir()
    gvtnet.save_model(model, tmp_path / "gvtnet-s0" / "model.safetensors")
    results_path = tmp_path / "results.json"
    results_path.write_text(json.dumps({"gvtnet-s0": {"psnr_y": [0.0], "ssim_y": [0.0]}}))
    di = ablation.lam_di(tmp_path, celeba_test, results_path, faces=1)["gvtnet-s0"]["di"]
    assert json.loads(results_path.read_text())["gvtnet-s0"]["di"] == di and len(di) == 1
    (lr,) = lam_study.lr_faces_by_name(celeba_test, 1, 8).values()
    model = gvtnet.load_model(tmp_path / "gvtnet-s0" / "model.safetensors")
    expected = np.mean([lam.local_attribution_map(model, lr, w.row, w.col, w.size).di
                        for w in lam_study.face_windows(128, 128)])
    assert di[0] == pytest.approx(expected, abs=1e-3)


def test_figure_draws_each_step_per_seed():
    run = lambda psnr, di: {"psnr_y": [psnr], "ssim_y": [0.5], "di": [di]}
    results = {"swinir-s0": run(25.0, 10.0), "swinir-s1": run(25.1, 11.0),
               "celeba-mean-s0": run(25.2, 10.5), "celeba-mean-s1": run(25.2, 11.0)}
    quality, reach = ablation.figure(results).axes
    seeds = lambda ax: sorted(ax.collections[0].get_offsets()[:, 0])  # the first collection: step 2's dots
    assert np.allclose(seeds(quality), [0.1, 0.2]) and np.allclose(seeds(reach), [0.0, 0.5])


def test_figure_keeps_every_text_and_point_inside():
    """The recorded Table I's figure, as the Model tab and docs/images/ablation.png show it: every label,
    title and 'no paired seed yet' lies wholly inside the figure and its panel (that note sat at x = 0, the DI
    panel's right edge, and ran off it), and every point lies inside its panel, clear of the edges."""
    import json

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from conftest import ROOT

    fig = ablation.figure(json.loads((ROOT / "docs" / "ablation-results.json").read_text()))
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    page = fig.bbox
    for ax in fig.axes:
        box = ax.get_window_extent(renderer)
        for text in ax.texts + [ax.title, ax.xaxis.label] + ax.get_yticklabels():
            if not text.get_text():
                continue
            e = text.get_window_extent(renderer)
            assert page.x0 <= e.x0 and e.x1 <= page.x1 and page.y0 <= e.y0 and e.y1 <= page.y1, text.get_text()
            if text in ax.texts:
                assert box.x0 <= e.x0 and e.x1 <= box.x1, text.get_text()
        for points in ax.collections:
            xy = ax.transData.transform(points.get_offsets())
            if len(xy):
                assert (xy[:, 0] > box.x0 + 4).all() and (xy[:, 0] < box.x1 - 4).all()
                assert (xy[:, 1] > box.y0 + 4).all() and (xy[:, 1] < box.y1 - 4).all()
