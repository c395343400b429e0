"""Table I at light scale: what the graph, the strided windows and the depthwise q/k/v each contribute.

    python -m analysis.ablation train --workers 2        # every run, resumable (run it again to continue)
    python -m analysis.ablation table --out docs/ABLATION.md

Every run trains a light x8 network from scratch with the same data, recipe, number of updates and seed
(`RECIPE`); rows differ only in their config. Rows 1-3 are also trained with seeds 1 and 2, so that each
difference can be read against the spread between seeds.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm


@dataclass(frozen=True)
class Row:
    name: str
    what: str
    preset: str
    overrides: tuple[str, ...] = ()  # `--set FIELD=VALUE` items


ROWS = [
    Row("swinir", "SwinIR light: contiguous windows, Linear q/k/v, no graph", "swinir-light-x8"),
    Row("strided", "GVTNet without its graph: strided windows, per-group shift, depthwise q/k/v",
        "light-x8", ("block_pattern=S",)),
    Row("gvtnet", "GVTNet light as shipped: (S,G) blocks, T = 0.85, p = inf", "light-x8"),
    Row("all-graph", "all graph blocks (the paper's w/o STL)", "light-x8", ("block_pattern=G",)),
    Row("no-dwconv", "GVTNet without depthwise q/k/v (the paper's w/o DW-conv)", "light-x8", ("dwconv=false",)),
    Row("t075", "GVTNet with T = 0.75 (the paper's choice)", "light-x8", ("threshold=0.75",)),
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
    scratch = [(f"{row.name} seed {seed}", root / f"{row.name}-s{seed}", _args(row, RECIPE, seed))
               for seed in (0, 1, 2) for row in ROWS if seed in SEEDS.get(row.name, (0,))]
    tunes = [(r.name, root / r.name, _args(r, FINE_TUNE_RECIPE, 0)) for r in FINE_TUNES]
    return scratch[:3] + tunes + scratch[3:]  # the core comparison and the shipped file first


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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train every run (resumable)")
    t.add_argument("--root", type=Path, default=Path("runs/ablation"))
    t.add_argument("--data", default="../shared/data/faces-train")
    t.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    if args.command == "train":
        train(args.root, args.data, args.workers)


if __name__ == "__main__":
    main()
