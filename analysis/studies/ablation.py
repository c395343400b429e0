"""Table I at light scale: what the graph, the strided windows and the depthwise q/k/v each contribute.

    python -m analysis.studies.ablation train --workers 2      # every run, resumable (run it again to continue)
    python -m analysis.studies.ablation evaluate               # score finished runs -> docs/ablation-results.json
    python -m analysis.studies.ablation lam                    # their LAM diffusion index on 50 faces -> same file
    python -m analysis.studies.ablation table --write docs/ABLATION.md   # the tables and figure, from that file

Every run trains a light x8 network from scratch with the same data, recipe, number of updates and seed
(`RECIPE`); rows differ only in their config. The decomposition's rows are trained with seeds 0-3
(`DECOMPOSITION_SEEDS`), so that each step can be read against the spread between seeds.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from matplotlib.figure import Figure
from scipy.stats import t as t_dist
from tqdm import tqdm

from gvtnet.data import FacePairs, image_files
from gvtnet.evaluate import face_metrics, restore_pairs
from gvtnet.model import CELEBA_MEAN, GVTNetConfig
from gvtnet.presets import preset_config
from gvtnet.train import parse_overrides
from gvtnet.weights import load_model, state_dict_sha256

from . import lam_study

# The shipped GVTNet x8 keeps 48.6% of its edges at T = 0.35 (0.486 +- 0.034 over the first 100
# celeba-test-1000 faces: `python -m analysis.studies.sweep ../shared/data/celeba-test-1000 --weights
# assets/gvtnet-light-x8.safetensors --thresholds 0.3,0.35,0.4`), 95.7% at the released 0.85.
SPARSE_T = 0.35


@dataclass(frozen=True)
class Row:
    name: str
    what: str
    preset: str
    overrides: tuple[str, ...] = ()  # `--set FIELD=VALUE` items
    paper: float | None = None  # the paper's Table I (full-size models, CelebA x8, PSNR-Y)
    changes: tuple[str, ...] = ()  # the config fields this row changes from the row above (decomposition)

    def config(self) -> GVTNetConfig:
        """The network this row trains, read exactly as `gvtnet.train --set` reads the overrides."""
        return preset_config(self.preset, **parse_overrides(list(self.overrides)))

    @property
    def seeds(self) -> tuple[int, ...]:
        return DECOMPOSITION_SEEDS if self in ROWS else (0,)

    def run_name(self, seed: int) -> str:
        """The run's folder under the study's root, and its key in the results."""
        return f"{self.name}-s{seed}"


# The decomposition: SwinIR light to GVTNet light one change at a time. Each row changes exactly the
# config fields in `changes` from the row above (tested), so each step's difference is that change's.
ROWS = [
    Row("swinir", "SwinIR light: contiguous windows, Linear q/k/v, no graph", "swinir-light-x8", paper=27.83),
    Row("celeba-mean", "+ the released input mean (CelebA's, not DIV2K's)", "swinir-light-x8",
        (f"rgb_mean={list(CELEBA_MEAN)}",), changes=("rgb_mean",)),
    Row("strided-linear", "+ strided whole-face windows with the per-group shift", "swinir-light-x8",
        (f"rgb_mean={list(CELEBA_MEAN)}", "window_layout=strided", "shift_rule=per_group"),
        changes=("window_layout", "shift_rule")),
    Row("strided", "+ depthwise q/k/v: GVTNet with Swin-type blocks only", "light-x8", ("block_pattern=S",),
        changes=("dwconv",)),
    Row("dense-graph", "+ graph blocks with every edge kept (their q scale, self-loop, no shift mask)",
        "light-x8", ("use_graph=false",), changes=("block_pattern", "use_graph")),
    Row("gvtnet", "+ neighbour selection at T = 0.85: GVTNet light as shipped", "light-x8", paper=27.95,
        changes=("use_graph",)),
    Row("sparse", f"GVTNet with T = {SPARSE_T} (keeps about half the edges)", "light-x8",
        (f"threshold={SPARSE_T}",), changes=("threshold",)),
]
# Single-seed variants of GVTNet (the paper's other Table I rows), each against row "gvtnet".
VARIANTS = [
    Row("all-graph", "all graph blocks (the paper's w/o STL)", "light-x8", ("block_pattern=G",), paper=27.93),
    Row("no-dwconv", "GVTNet without depthwise q/k/v (the paper's w/o DW-conv)", "light-x8", ("dwconv=false",),
        paper=27.92),
    Row("t075", "GVTNet with T = 0.75 (the paper's choice)", "light-x8", ("threshold=0.75",), paper=27.95),
]
DECOMPOSITION_SEEDS = (0, 1, 2, 3)
# From scratch, on the shipped models' later recipe (upright mosaics of 96/80/64 px faces, see the model
# card): 8,000 updates of 16 faces, about an hour at one thread each.
RECIPE = ("--steps 8000 --batch 16 --lr 5e-4 --ema 0.995 --val-every 1000 --ckpt-every 100 --threads 1 "
          "--hr-sizes 96 80 64 --canvas 128 --no-rotate").split()
# The shipped file without its graph: the shipped GVTNet x8 fine-tuned with its graph blocks run as
# Swin-type blocks (their weights have the same shapes), and, as the control, fine-tuned with its graph.
FINE_TUNES = [
    Row("ft-strided", "shipped GVTNet x8, graph removed, fine-tuned", "light-x8", ("block_pattern=S",)),
    Row("ft-gvtnet", "shipped GVTNet x8, graph kept, fine-tuned (control)", "light-x8"),
]
FINE_TUNE_RECIPE = ("--steps 4000 --batch 16 --lr 1e-4 --ema 0.995 --val-every 1000 --ckpt-every 100 "
                    "--threads 1 --hr-sizes 96 80 64 --canvas 128 --no-rotate "
                    "--init assets/gvtnet-light-x8.safetensors").split()


def runs(root: Path) -> list[tuple[str, Path, list[str]]]:
    """(label, run folder, train arguments) of every run, in the order they are best trained: the fine-tunes
    (done), then by seed and row, so that every row gains its next seed before any row gains a later one."""
    order = {row: i for i, row in enumerate(ROWS + VARIANTS)}
    planned = sorted(((row, seed) for row in ROWS + VARIANTS for seed in row.seeds),
                     key=lambda run: (run[1], order[run[0]]))
    scratch = [(f"{row.name} seed {seed}", root / row.run_name(seed), _args(row, RECIPE, seed))
               for row, seed in planned]
    tunes = [(r.name, root / r.name, _args(r, FINE_TUNE_RECIPE, 0)) for r in FINE_TUNES]
    return tunes + scratch  # the shipped file first


def _args(row: Row, recipe: list[str], seed: int) -> list[str]:
    sets = [a for o in row.overrides for a in ("--set", o)]
    return ["--preset", row.preset, *sets, *recipe, "--seed", str(seed)]


def pending(root: Path, results_path: Path) -> list[tuple[str, Path, list[str]]]:
    """The runs still to train, in `runs` order. A run is finished when its weights are there, or when
    `results_path` holds both its scores and its DI (its folder may be gone: trained on an earlier session's
    machine). A run scored without DI whose weights are gone is trained again: `evaluate` then keeps its
    scores if the weights come out the same, or scores it anew, and `lam` adds the DI."""
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    done = {name for name, r in results.items() if "di" in r}
    return [r for r in runs(root) if not (r[1] / "model.safetensors").exists() and r[1].name not in done]


def train(root: Path, data: str, workers: int, results_path: Path) -> None:
    """Trains every pending run, `workers` at a time at the lowest priority, each resumable. Ctrl-C stops
    them all at their next step, checkpointed: run `train` again to continue."""
    todo = pending(root, results_path)
    bar = tqdm(total=len(todo), desc="ablation runs")
    active: list[tuple[str, subprocess.Popen, IO[str]]] = []  # (label, process, its log file)
    try:
        while todo or active:
            while todo and len(active) < workers:
                label, out, args = todo.pop(0)
                out.mkdir(parents=True, exist_ok=True)
                cmd = ["nice", "-n", "19", sys.executable, "-m", "gvtnet.train", *args, "--data", data,
                       "--out", str(out), "--resume", "--no-progress"]
                log = open(out / "train.out", "a")
                proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
                lowest_priority(proc.pid)
                active.append((label, proc, log))
            label, proc, log = active[0]
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                active.append(active.pop(0))
                continue
            active.pop(0)
            log.close()
            bar.write(f"{label}: {'done' if proc.returncode == 0 else f'exit {proc.returncode}'}")
            bar.update(1)
    except KeyboardInterrupt:  # the runs are in sessions of their own: the terminal's Ctrl-C does not reach them
        for _, proc, _ in active:
            proc.terminate()  # gvtnet.train saves its checkpoint and stops
        for _, proc, log in active:
            proc.wait()
            log.close()
        raise
    finally:
        bar.close()


def lowest_priority(pid: int) -> None:
    """Give process `pid`, started in a session of its own, the lowest CPU priority. Linux schedules each
    session as one group (autogroup) and `nice` orders processes only within their group, so a niced run
    in the user's session still took half the CPU from their work in another (a LAM study ran 10x slower:
    its two threads wait for each other); where the kernel has autogroups, the group's own nice is set too."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text("19")


def evaluate(root: Path, data: Path, results_path: Path) -> dict:
    """Per-face Y-PSNR and SSIM-Y (all faces, no crop, as the model card) of every finished run, plus
    bicubic and the shipped GVTNet x8 the fine-tunes start from; saved after each. Scores are keyed on the
    weights' digest (`sha256`): a run whose weights changed (retrained) is scored again and its DI dropped
    for `lam_di` to redo; a run whose folder is gone keeps the scores recorded for it."""
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    pairs = None
    todo = [("bicubic", None), ("shipped-gvtnet", Path("assets/gvtnet-light-x8.safetensors"))]
    todo += [(out.name, out / "model.safetensors") for _, out, _ in runs(root)]
    for name, path in tqdm(todo, desc="evaluating runs"):
        if path is None and name in results or path is not None and not path.exists():
            continue
        model = load_model(path) if path else None
        digest = state_dict_sha256(model) if model else None
        if name in results and results[name].get("sha256") == digest:
            continue
        pairs = pairs or FacePairs.from_files(image_files(data), 8)
        sr = restore_pairs(model, pairs)
        m = face_metrics(sr, pairs.hr.permute(0, 2, 3, 1).numpy())
        results[name] = {"faces": len(pairs), "sha256": digest, "psnr_y": m[:, 2].round(4).tolist(),
                         "ssim_y": m[:, 3].round(5).tolist()}
        results_path.write_text(json.dumps(results))
    return results


# LAM for the DI column: the first 50 test faces, the four named windows, fp32 on every CPU so that runs
# scored in different sessions (with or without native bf16) stay comparable.
LAM_FACES = 50


def lam_di(root: Path, data: Path, results_path: Path, faces: int = LAM_FACES) -> dict:
    """Per-face diffusion index (mean over analysis.studies.lam_study's named windows) of every evaluated run not
    yet scored, added to `results_path` as 'di' after each; the study's records go to root/NAME/lam_study.json."""
    results = json.loads(results_path.read_text())
    models = {"shipped-gvtnet": Path("assets/gvtnet-light-x8.safetensors")}
    models |= {out.name: out / "model.safetensors" for _, out, _ in runs(root)}
    todo = {name: path for name, path in models.items()
            if name in results and "di" not in results[name] and path.exists()}
    lr = lam_study.lr_faces_by_name(data, faces, 8) if todo else {}
    for name, path in tqdm(todo.items(), desc="LAM of runs"):
        with tqdm(desc=f"{name} (face-windows)", leave=False) as bar:
            def step(done, total):
                bar.total = total
                bar.update(done - bar.n)

            out = lam_study.study({name: load_model(path)}, lr, precision="fp32", progress=step,
                                  path=root / name / lam_study.STUDY_FILE, resamples=1000)
        di = {(r["face"], r["window"]): r["di"] for r in out["records"]}
        windows = list(dict.fromkeys(r["window"] for r in out["records"]))
        results[name]["di_by_window"] = {w: [round(di[f, w], 4) for f in lr] for w in windows}
        results[name]["di"] = [round(float(np.mean([di[f, w] for w in windows])), 4) for f in lr]
        results_path.write_text(json.dumps(results))
    return results


def bootstrap_interval(d: np.ndarray, samples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean of d (n,)."""
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), (samples, len(d)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def seed_pairs(results: dict, row: Row, other: Row, key: str = "psnr_y") -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{seed: (row's per-face values, other's)} for every seed both rows have scored (`key`: 'psnr_y' or 'di')."""
    pairs = {}
    for seed in sorted(set(row.seeds) & set(other.seeds)):
        a, b = results.get(row.run_name(seed), {}), results.get(other.run_name(seed), {})
        if key in a and key in b:
            pairs[seed] = (np.asarray(a[key]), np.asarray(b[key]))
    return pairs


@dataclass(frozen=True)
class Step:
    """A seed-paired difference, row minus the row it is compared with. per_seed (n,): the difference of
    the mean over faces at each seed; mean and its 95% t-interval over seeds (None below 2 seeds);
    faces_ci: the 95% bootstrap interval over faces of the seed-averaged per-face difference (covers only
    the choice of test faces); detectable: the smallest true difference this many seeds find 80% of the
    time (two-sided paired t-test at 5%), at the spread between seeds measured here."""

    per_seed: np.ndarray
    mean: float
    ci: tuple[float, float] | None
    faces_ci: tuple[float, float]
    detectable: float | None


def paired_step(pairs: dict[int, tuple[np.ndarray, np.ndarray]]) -> Step | None:
    """The seed-paired difference of `seed_pairs`' output, or None where no seed has both."""
    if not pairs:
        return None
    per_seed = np.array([a.mean() - b.mean() for a, b in pairs.values()])
    n, mean = len(per_seed), float(per_seed.mean())
    ci = detectable = None
    if n >= 2:
        sem = per_seed.std(ddof=1) / np.sqrt(n)
        ci = (mean - t_dist.ppf(0.975, n - 1) * sem, mean + t_dist.ppf(0.975, n - 1) * sem)
        detectable = float((t_dist.ppf(0.975, n - 1) + t_dist.ppf(0.8, n - 1)) * sem)
    per_face = np.mean([a - b for a, b in pairs.values()], axis=0)
    return Step(per_seed, mean, ci, bootstrap_interval(per_face), detectable)


def _fmt_step(st: Step | None, digits: int) -> tuple[str, str]:
    """(seed-paired cell, faces cell) of a Step, for the table."""
    if st is None:
        return "", ""
    f = f"{{:+.{digits}f}}"
    n = len(st.per_seed)
    seeds = f.format(st.mean) + (f" [{f.format(st.ci[0])}, {f.format(st.ci[1])}]" if st.ci else "") + \
        f" ({n} {'seed' if n == 1 else 'seeds'}" + (f"; detects {st.detectable:.{digits}f}" if st.ci else "") + ")"
    return seeds, f"[{f.format(st.faces_ci[0])}, {f.format(st.faces_ci[1])}]"


def _summary(results: dict, row: Row) -> tuple[list[str], str, str, str]:
    """(scored run names, 'mean (seed range)' of PSNR-Y, SSIM-Y mean, 'mean (range)' of DI) of a row."""
    names = [row.run_name(s) for s in row.seeds if row.run_name(s) in results]
    if not names:
        return [], "", "", ""
    means = [np.mean(results[n]["psnr_y"]) for n in names]
    spread = f" ({min(means):.3f}-{max(means):.3f})" if len(means) > 1 else ""
    dis = [np.mean(results[n]["di"]) for n in names if "di" in results[n]]
    di = f"{np.mean(dis):.2f}" + (f" ({min(dis):.2f}-{max(dis):.2f})" if len(dis) > 1 else "") if dis else ""
    return names, f"{np.mean(means):.3f}{spread}", f"{np.mean([np.mean(results[n]['ssim_y']) for n in names]):.4f}", di


def table(results: dict) -> str:
    """The decomposition as Markdown, from `evaluate`'s and `lam_di`'s results: per row its seeds, mean
    PSNR-Y and DI over them, and the step from the row above (the field it changes) as a seed-paired mean
    difference with its 95% interval over seeds, beside the secondary interval over faces."""
    lines = ["| step | network | changes | seeds | PSNR-Y, dB (seed range) | SSIM-Y | step in PSNR-Y: seed-paired "
             "mean [95% CI over seeds] (seeds; smallest true step they detect 80% of the time) | same, 95% CI over "
             "faces only | DI (seed range) | step in DI: seed-paired mean [95% CI over seeds] | paper's Table I |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    if "bicubic" in results:
        b = results["bicubic"]
        lines.append(f"| | bicubic | | | {np.mean(b['psnr_y']):.3f} | {np.mean(b['ssim_y']):.4f} | | | | | |")
    for i, row in enumerate(ROWS, start=1):
        names, psnr_cell, ssim_cell, di_cell = _summary(results, row)
        changes = ", ".join(f"`{c}`" for c in row.changes)
        if not names:
            lines.append(f"| {i} | {row.what} | {changes} | 0 of {len(row.seeds)} (training) | | | | | | | "
                         f"{row.paper or ''} |")
            continue
        step = di_step = (None, None)
        if i > 1:
            step = _fmt_step(paired_step(seed_pairs(results, row, ROWS[i - 2])), 3)
            di_step = _fmt_step(paired_step(seed_pairs(results, row, ROWS[i - 2], "di")), 2)
        lines.append(f"| {i} | {row.what} | {changes} | {len(names)} of {len(row.seeds)} | {psnr_cell} | "
                     f"{ssim_cell} | {step[0] or ''} | {step[1] or ''} | {di_cell} | {di_step[0] or ''} | "
                     f"{row.paper or ''} |")
    return "\n".join(lines)


def steps_text(results: dict) -> str:
    """Every row of the decomposition against every earlier row, seed-paired in PSNR-Y and DI, with the
    difference at each seed: the spans the docs quote (rows 1 to 4, 4 to 6, ...) as well as the table's steps."""
    lines = []
    for j, row in enumerate(ROWS):
        for i, other in enumerate(ROWS[:j]):
            for key, unit, digits in (("psnr_y", "dB", 3), ("di", "DI", 2)):
                st = paired_step(seed_pairs(results, row, other, key))
                if st is None:
                    continue
                f = f"{{:+.{digits}f}}"
                seeds, faces = _fmt_step(st, digits)
                lines.append(f"rows {i + 1} -> {j + 1} ({other.name} -> {row.name}), {unit}: {seeds}; per seed "
                             f"{', '.join(f.format(v) for v in st.per_seed)}; over faces {faces}")
    return "\n".join(lines)


def variants_table(results: dict) -> str:
    """The single-seed variants of GVTNet against GVTNet at the same seed (0): a difference here is one
    seed's, to be read against the decomposition's spread between seeds."""
    gvtnet = next(r for r in ROWS if r.name == "gvtnet")
    lines = ["| variant | changes from GVTNet light | PSNR-Y (dB) | SSIM-Y | minus GVTNet, seed 0 (95% CI over faces "
             "only) | DI | paper's Table I |", "|---|---|---|---|---|---|---|"]
    for row in VARIANTS:
        names, psnr_cell, ssim_cell, di_cell = _summary(results, row)
        if not names:
            continue
        st = paired_step(seed_pairs(results, row, gvtnet))
        diff = f"{st.mean:+.3f} [{st.faces_ci[0]:+.3f}, {st.faces_ci[1]:+.3f}]" if st else ""
        lines.append(f"| {row.what} | {', '.join(f'`{o}`' for o in row.overrides)} | {psnr_cell} | {ssim_cell} | "
                     f"{diff} | {di_cell} | {row.paper or ''} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def fine_tune_table(results: dict) -> str:
    """The shipped graph-free file against its control: the shipped GVTNet x8 fine-tuned for the same
    updates without and with its graph, paired face by face."""
    if not {"ft-strided", "ft-gvtnet"} <= set(results):
        return ""
    psnr = {k: np.array(results[k]["psnr_y"]) for k in ("shipped-gvtnet", "ft-gvtnet", "ft-strided") if k in results}
    ssim = {k: np.mean(results[k]["ssim_y"]) for k in psnr}
    d = psnr["ft-strided"] - psnr["ft-gvtnet"]
    lo, hi = bootstrap_interval(d)
    names = {"shipped-gvtnet": "shipped GVTNet light x8 (where both start)",
             "ft-gvtnet": FINE_TUNES[1].what, "ft-strided": FINE_TUNES[0].what}
    di = {k: f"{np.mean(results[k]['di']):.2f}" if "di" in results[k] else "" for k in psnr}
    lines = [f"| network | PSNR-Y (dB) | SSIM-Y | DI, {LAM_FACES} faces |", "|---|---|---|---|"]
    lines += [f"| {names[k]} | {v.mean():.3f} | {ssim[k]:.4f} | {di[k]} |" for k, v in psnr.items()]
    lines.append(f"| without graph minus with graph, face by face (95% CI over faces) | {d.mean():+.3f} "
                 f"({lo:+.3f} to {hi:+.3f}); higher on {np.mean(d > 0):.0%} of faces | | |")
    return "\n".join(lines)


def tables(results: dict) -> str:
    """The decomposition, the single-seed variants and the fine-tuned pair, as docs/ABLATION.md and the
    app's Model tab show them."""
    return "\n\n".join(t for t in (table(results), variants_table(results), fine_tune_table(results)) if t)


FIGURE_CAPTION = ("Each row is one step from SwinIR light to GVTNet light, the config change named on the left: "
                  "right of the grey line it raised PSNR-Y (left panel) or LAM's diffusion index (right panel). "
                  "Dots are seeds, the bar is the seed-paired mean with its 95% interval over seeds; a bar that "
                  "crosses the line is within seed noise; 'no paired seed yet': no seed is scored in both rows.")


def figure(results: dict) -> Figure:
    """The decomposition's steps (rows 2 onward, each against the row above): per seed and seed-paired mean
    with its 95% t-interval over seeds, for PSNR-Y and for DI side by side."""
    fig = Figure(figsize=(10, 0.55 * len(ROWS) + 1.4), layout="constrained")
    panels = fig.subplots(1, 2, sharey=True)
    labels = [f"{i}. {r.name} ({', '.join(r.changes)})" for i, r in enumerate(ROWS[1:], start=2)]
    for ax, key, title in ((panels[0], "psnr_y", "step in PSNR-Y (dB)"), (panels[1], "di", "step in DI")):
        for k, (row, above) in enumerate(zip(ROWS[1:], ROWS)):
            st = paired_step(seed_pairs(results, row, above, key))
            if st is None:
                # in the middle of the panel, whatever its data range (at x = 0 it ran off the panel's edge)
                ax.text(0.5, k, "no paired seed yet", ha="center", va="center", fontsize=8, color="grey",
                        transform=ax.get_yaxis_transform())
                continue
            ax.scatter(st.per_seed, np.full(len(st.per_seed), k) + np.linspace(-0.15, 0.15, len(st.per_seed)),
                       s=14, color="C0", alpha=0.6, zorder=2)
            err = None if st.ci is None else [[st.mean - st.ci[0]], [st.ci[1] - st.mean]]
            ax.errorbar(st.mean, k, xerr=err, fmt="o", color="black", capsize=4, zorder=3)
        ax.axvline(0, color="grey", linewidth=0.8)
        ax.set_xlabel(title)
        ax.margins(x=0.15)
        lo, hi = ax.get_xlim()  # 0 and every point well inside, none on the panel's edge
        ax.set_xlim(min(lo, -0.1 * (hi - lo)), max(hi, 0.1 * (hi - lo)))
    panels[0].set_yticks(range(len(labels)), labels)
    panels[0].set_ylim(len(labels) - 0.5, -0.5)
    panels[0].set_title("Quality: each step minus the row above", fontsize=10)
    panels[1].set_title("Reach (LAM's DI), likewise", fontsize=10)
    return fig


MARKERS = ("<!-- ablation table: made by `python -m analysis.studies.ablation table --write docs/ABLATION.md` -->",
           "<!-- end of table -->")


def write_table(doc: Path, text: str) -> None:
    """Replace the block between MARKERS in `doc` with `text`."""
    body = doc.read_text()
    start, end = body.index(MARKERS[0]) + len(MARKERS[0]), body.index(MARKERS[1])
    doc.write_text(body[:start] + "\n" + text + "\n" + body[end:])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train every run (resumable)")
    t.add_argument("--root", type=Path, default=Path("runs/ablation"))
    t.add_argument("--data", default="../shared/data/faces-train")
    t.add_argument("--workers", type=int, default=2)
    t.add_argument("--results", type=Path, default=Path("docs/ablation-results.json"))
    e = sub.add_parser("evaluate", help="score finished runs on the test faces")
    e.add_argument("--root", type=Path, default=Path("runs/ablation"))
    e.add_argument("--data", type=Path, default=Path("../shared/data/celeba-test-1000"))
    e.add_argument("--results", type=Path, default=Path("docs/ablation-results.json"))
    lm = sub.add_parser("lam", help="LAM's diffusion index of evaluated runs (50 faces, fp32)")
    lm.add_argument("--root", type=Path, default=Path("runs/ablation"))
    lm.add_argument("--data", type=Path, default=Path("../shared/data/celeba-test-1000"))
    lm.add_argument("--results", type=Path, default=Path("docs/ablation-results.json"))
    st = sub.add_parser("steps", help="print every row against every earlier row, seed by seed")
    st.add_argument("--results", type=Path, default=Path("docs/ablation-results.json"))
    tb = sub.add_parser("table", help="print the table (or write it into a document)")
    tb.add_argument("--results", type=Path, default=Path("docs/ablation-results.json"))
    tb.add_argument("--write", type=Path, help="replace the table block of this Markdown file")
    tb.add_argument("--figure", type=Path, default=Path("docs/images/ablation.png"),
                    help="with --write, where the figure goes")
    args = p.parse_args(argv)
    if args.command == "train":
        train(args.root, args.data, args.workers, args.results)
    elif args.command == "evaluate":
        evaluate(args.root, args.data, args.results)
    elif args.command == "lam":
        lam_di(args.root, args.data, args.results)
    elif args.command == "steps":
        print(steps_text(json.loads(args.results.read_text())))
    else:
        results = json.loads(args.results.read_text())
        text = tables(results)
        if args.write:
            write_table(args.write, text)
            figure(results).savefig(args.figure, dpi=110)
        else:
            print(text)


if __name__ == "__main__":
    main()
