"""Table I at light scale: what the graph, the strided windows and the depthwise q/k/v each contribute.

    python -m analysis.ablation train --workers 2      # every run, resumable (run it again to continue)
    python -m analysis.ablation evaluate               # score finished runs -> docs/ablation-results.json
    python -m analysis.ablation lam                    # their LAM diffusion index on 50 faces -> same file
    python -m analysis.ablation table --write docs/ABLATION.md   # the tables and figure, from that file

Every run trains a light x8 network from scratch with the same data, recipe, number of updates and seed
(`RECIPE`); rows differ only in their config. Rows 1-3 are also trained with seeds 1 and 2, so that each
difference can be read against the spread between seeds.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from tqdm import tqdm

from gvtnet.data import FacePairs, image_files
from gvtnet.evaluate import face_metrics, restore_pairs
from gvtnet.model import GVTNetConfig
from gvtnet.presets import preset_config
from gvtnet.train import parse_overrides
from gvtnet.weights import load_model

from . import lam_study


@dataclass(frozen=True)
class Row:
    name: str
    what: str
    preset: str
    overrides: tuple[str, ...] = ()  # `--set FIELD=VALUE` items
    paper: float | None = None  # the paper's Table I (full-size models, CelebA x8, PSNR-Y)

    def config(self) -> GVTNetConfig:
        """The network this row trains, read exactly as `gvtnet.train --set` reads the overrides."""
        return preset_config(self.preset, **parse_overrides(list(self.overrides)))

    @property
    def seeds(self) -> tuple[int, ...]:
        return SEEDS.get(self.name, (0,))

    def run_name(self, seed: int) -> str:
        """The run's folder under the study's root, and its key in the results."""
        return f"{self.name}-s{seed}"


ROWS = [
    Row("swinir", "SwinIR light: contiguous windows, Linear q/k/v, no graph", "swinir-light-x8", paper=27.83),
    Row("strided", "GVTNet without its graph: strided windows, per-group shift, depthwise q/k/v",
        "light-x8", ("block_pattern=S",)),
    Row("gvtnet", "GVTNet light as shipped: (S,G) blocks, T = 0.85, p = inf", "light-x8", paper=27.95),
    Row("all-graph", "all graph blocks (the paper's w/o STL)", "light-x8", ("block_pattern=G",), paper=27.93),
    Row("no-dwconv", "GVTNet without depthwise q/k/v (the paper's w/o DW-conv)", "light-x8", ("dwconv=false",),
        paper=27.92),
    Row("t075", "GVTNet with T = 0.75 (the paper's choice)", "light-x8", ("threshold=0.75",), paper=27.95),
]
SEEDS = {"swinir": (0, 1, 2), "strided": (0, 1, 2), "gvtnet": (0, 1, 2)}
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
    """(label, run folder, train arguments) of every run, in the order they are best trained."""
    # Two seeds of the seeded rows come before the single-seed rows, so that a seed spread exists early.
    def priority(run: tuple[int, Row, int]) -> tuple[int, int, int]:
        i, row, seed = run
        return (0 if seed < 2 else 2) if len(row.seeds) > 1 else 1, seed, i

    planned = [(i, row, seed) for i, row in enumerate(ROWS) for seed in row.seeds]
    scratch = [(f"{row.name} seed {seed}", root / row.run_name(seed), _args(row, RECIPE, seed))
               for _, row, seed in sorted(planned, key=priority)]
    tunes = [(r.name, root / r.name, _args(r, FINE_TUNE_RECIPE, 0)) for r in FINE_TUNES]
    return tunes + scratch  # the shipped file first


def _args(row: Row, recipe: list[str], seed: int) -> list[str]:
    sets = [a for o in row.overrides for a in ("--set", o)]
    return ["--preset", row.preset, *sets, *recipe, "--seed", str(seed)]


def train(root: Path, data: str, workers: int) -> None:
    """Trains every unfinished run, `workers` at a time at low priority, each resumable."""
    todo = [r for r in runs(root) if not (r[1] / "model.safetensors").exists()]
    bar = tqdm(total=len(todo), desc="ablation runs")
    active: list[tuple[str, subprocess.Popen]] = []
    while todo or active:
        while todo and len(active) < workers:
            label, out, args = todo.pop(0)
            out.mkdir(parents=True, exist_ok=True)
            cmd = ["nice", "-n", "19", sys.executable, "-m", "gvtnet.train", *args, "--data", data,
                   "--out", str(out), "--resume", "--no-progress"]
            log = open(out / "train.out", "a")
            active.append((label, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)))
        label, proc = active[0]
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            active.append(active.pop(0))
            continue
        active.pop(0)
        bar.write(f"{label}: {'done' if proc.returncode == 0 else f'exit {proc.returncode}'}")
        bar.update(1)
    bar.close()


def evaluate(root: Path, data: Path, results_path: Path) -> dict:
    """Per-face Y-PSNR and SSIM-Y (all faces, no crop, as the model card) of every finished run not yet in
    `results_path`, plus bicubic and the shipped GVTNet x8 the fine-tunes start from; saved after each."""
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    pairs = None
    todo = [("bicubic", None), ("shipped-gvtnet", Path("assets/gvtnet-light-x8.safetensors"))]
    todo += [(out.name, out / "model.safetensors") for _, out, _ in runs(root)]
    for name, path in tqdm(todo, desc="evaluating runs"):
        if name in results or (path is not None and not path.exists()):
            continue
        pairs = pairs or FacePairs.from_files(image_files(data), 8)
        sr = restore_pairs(load_model(path) if path else None, pairs)
        m = face_metrics(sr, pairs.hr.permute(0, 2, 3, 1).numpy())
        results[name] = {"faces": len(pairs), "psnr_y": m[:, 2].round(4).tolist(), "ssim_y": m[:, 3].round(5).tolist()}
        results_path.write_text(json.dumps(results))
    return results


# LAM for the DI column: the first 50 test faces, the four named windows, fp32 on every CPU so that runs
# scored in different sessions (with or without native bf16) stay comparable.
LAM_FACES = 50


def lam_di(root: Path, data: Path, results_path: Path, faces: int = LAM_FACES) -> dict:
    """Per-face diffusion index (mean over analysis.lam_study's named windows) of every evaluated run not
    yet scored, added to `results_path` as 'di' after each; the study's records go to root/NAME/lam_study.json."""
    results = json.loads(results_path.read_text())
    models = {"shipped-gvtnet": Path("assets/gvtnet-light-x8.safetensors")}
    models |= {out.name: out / "model.safetensors" for _, out, _ in runs(root)}
    todo = {name: path for name, path in models.items() if name in results and "di" not in results[name]}
    lr = lam_study.load_faces(data, faces, 8) if todo else {}
    for name, path in tqdm(todo.items(), desc="LAM of runs"):
        with tqdm(desc=f"{name} (face-windows)", leave=False) as bar:
            def step(done, total):
                bar.total = total
                bar.update(done - bar.n)

            out = lam_study.study({name: load_model(path)}, lr, precision="fp32", progress=step,
                                  path=root / name / lam_study.STUDY_FILE, resamples=1000)
        per_face = {}
        for r in out["records"]:
            per_face.setdefault(r["face"], []).append(r["di"])
        results[name]["di"] = [round(float(np.mean(per_face[f])), 4) for f in lr]
        results_path.write_text(json.dumps(results))
    return results


def bootstrap_interval(d: np.ndarray, samples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean of d (n,)."""
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), (samples, len(d)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def table(results: dict) -> str:
    """The Markdown table of every row with at least one finished run, from `evaluate`'s results.

    Per row: mean PSNR-Y and SSIM-Y over its seeds (with the range between seeds); the paired per-face
    difference from GVTNet at seed 0 with a bootstrap 95% interval over faces; LAM's DI (`lam_di`) over
    the seeds scored so far, with their range."""
    psnr = {k: np.array(v["psnr_y"]) for k, v in results.items()}
    ssim = {k: np.array(v["ssim_y"]) for k, v in results.items()}
    di = {k: np.mean(v["di"]) for k, v in results.items() if "di" in v}
    lines = ["| row | network | seeds | PSNR-Y (dB) | seed range | SSIM-Y | vs GVTNet, seed 0 (95% CI over faces) "
             f"| DI, {LAM_FACES} faces (seed range) | paper's Table I |",
             "|---|---|---|---|---|---|---|---|---|"]
    if "bicubic" in psnr:
        lines.append(f"| | bicubic | | {psnr['bicubic'].mean():.3f} | | {ssim['bicubic'].mean():.4f} | | | |")
    for i, row in enumerate(ROWS, start=1):
        names = [row.run_name(s) for s in row.seeds if row.run_name(s) in psnr]
        if not names:
            lines.append(f"| {i} | {row.what} | (not trained yet) | | | | | | {row.paper or ''} |")
            continue
        means = [psnr[n].mean() for n in names]
        spread = f"{min(means):.3f}-{max(means):.3f}" if len(means) > 1 else ""
        vs = ""
        if row.run_name(0) in psnr and "gvtnet-s0" in psnr and row.name != "gvtnet":
            d = psnr[row.run_name(0)] - psnr["gvtnet-s0"]
            lo, hi = bootstrap_interval(d)
            vs = f"{d.mean():+.3f} ({lo:+.3f} to {hi:+.3f})"
        dis = [di[n] for n in names if n in di]
        di_cell = f"{np.mean(dis):.2f}" + (f" ({min(dis):.2f}-{max(dis):.2f})" if len(dis) > 1 else "") if dis else ""
        seeds = f"{len(names)} of {len(row.seeds)}" if len(row.seeds) > 1 else "1"
        lines.append(f"| {i} | {row.what} | {seeds} | {np.mean(means):.3f} | {spread} | "
                     f"{np.mean([ssim[n].mean() for n in names]):.4f} | {vs} | {di_cell} | {row.paper or ''} |")
    return "\n".join(lines)


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
    """Both tables, as docs/ABLATION.md and the app's Model tab show them."""
    return "\n\n".join(t for t in (fine_tune_table(results), table(results)) if t)


FIGURE_CAPTION = ("Each point is one trained network: further right, LAM's diffusion index says it draws on more "
                  "of the face; higher up, it restores the test faces better (PSNR-Y). Left, the study from "
                  "scratch: a colour is a row, its points are seeds. Right, the shipped GVTNet fine-tuned with "
                  "and without its graph (ten times the training, hence its own scale).")


def figure(results: dict) -> Figure:
    """PSNR-Y against LAM's DI, one point per run that has both (`evaluate` and `lam_di`): the from-scratch
    rows on the left, the fine-tuned pair on the right."""
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    scratch, tuned = fig.subplots(1, 2, sharex=True, width_ratios=[3, 2])
    point = lambda name: (np.mean(results[name]["di"]), np.mean(results[name]["psnr_y"]))
    scored = lambda name: name in results and "di" in results[name]
    for k, row in enumerate(ROWS):
        names = [row.run_name(s) for s in row.seeds if scored(row.run_name(s))]
        if names:
            scratch.scatter(*zip(*map(point, names)), color=f"C{k}", s=40, label=f"{k + 1}. {row.what}")
    for k, tune in enumerate(FINE_TUNES):
        if scored(tune.name):
            tuned.scatter(*point(tune.name), color=f"C{k + 1}", marker="s", s=50, label=tune.what)
    scratch.set_title(f"From scratch, {int(RECIPE[RECIPE.index('--steps') + 1]):,} updates")
    tuned.set_title("The shipped GVTNet, fine-tuned")
    scratch.set_xlabel(f"LAM diffusion index (mean over {LAM_FACES} faces, 4 windows)")
    tuned.set_xlabel("LAM diffusion index")
    for ax in (scratch, tuned):
        ax.legend(fontsize=7, loc="best")
    scratch.set_ylabel("PSNR-Y (dB, 1,000 CelebA faces)")
    return fig


MARKERS = ("<!-- ablation table: made by `python -m analysis.ablation table --write docs/ABLATION.md` -->",
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
    e = sub.add_parser("evaluate", help="score finished runs on the test faces")
    e.add_argument("--root", type=Path, default=Path("runs/ablation"))
    e.add_argument("--data", type=Path, default=Path("../shared/data/celeba-test-1000"))
    e.add_argument("--results", type=Path, default=Path("docs/ablation-results.json"))
    lm = sub.add_parser("lam", help="LAM's diffusion index of evaluated runs (50 faces, fp32)")
    lm.add_argument("--root", type=Path, default=Path("runs/ablation"))
    lm.add_argument("--data", type=Path, default=Path("../shared/data/celeba-test-1000"))
    lm.add_argument("--results", type=Path, default=Path("docs/ablation-results.json"))
    tb = sub.add_parser("table", help="print the table (or write it into a document)")
    tb.add_argument("--results", type=Path, default=Path("docs/ablation-results.json"))
    tb.add_argument("--write", type=Path, help="replace the table block of this Markdown file")
    tb.add_argument("--figure", type=Path, default=Path("docs/images/ablation.png"),
                    help="with --write, where the figure goes")
    args = p.parse_args(argv)
    if args.command == "train":
        train(args.root, args.data, args.workers)
    elif args.command == "evaluate":
        evaluate(args.root, args.data, args.results)
    elif args.command == "lam":
        lam_di(args.root, args.data, args.results)
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
