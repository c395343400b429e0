"""LAM of several SR models on the same faces and windows: the diffusion index (DI) of each, and how the
models differ, face by face, with bootstrap intervals. The paper's "largest pixel utilisation range"
claim (its Fig. 4, one face) tested on many faces.

    python -m analysis.studies.lam_study --weights A.safetensors B.pth ... --data DIR --faces 100 --out DIR \
        [--windows left_eye right_eye nose mouth | --windows NAME:ROW,COL,SIZE ...] [--precision auto] \
        [--graph-off]   # also each GVTNet with its graph switched off at inference

Writes DIR/lam_study.json (settings; `records`: one entry per face, window and model with `face`, `window`,
`model`, `row`, `col`, `size`, `di`, row/col the SR window's top-left pixel, and what the DI was computed
from: `face_sha256` (sha256 of the LR face as the model sees it: its shape and float32 bytes, see
tensor_sha256), `model_sha256` (sha256 of the model's state_dict content, gvtnet.weights.state_dict_sha256),
`scale`, `sigma`, `fold`, `precision`; `summary`: per model the mean DI, per pair of models the mean paired
difference with a bootstrap 95% interval and the fraction of faces where the first is higher), DIR/lam_study.md
(the tables) and DIR/lam_study.png (the figure). The JSON is rewritten after every face: an interrupted study
run again continues where it stopped. A saved record is reused only where all of its key (RECORD_KEY: the
face's name and content, the window's name, row, col and size, the model's name and weights, scale, sigma,
fold, precision) matches one asked for; every other is recomputed, and the returned records, the rewritten
file and the summary hold only the faces, windows and models of this call. Files written before the hashes
were recorded (records without `face_sha256` / `model_sha256`) still load; none of their records match, so
all are recomputed and the file is rewritten in this format.
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from scipy.stats import bootstrap
from tqdm import tqdm

from gvtnet.compat import keep_freed_memory
from gvtnet.data import image_files
from gvtnet.images import HR_SIZE, center_square, degrade, open_image
from gvtnet.inference import resolve_precision, to_tensor
from gvtnet.sr_models import describe_model, has_graph, load_sr_model, scale_of
from gvtnet.weights import state_dict_sha256

from ..lam import attribution_maps

# Window centres (row, col) as fractions of the face's side, for aligned faces (CelebA's crops: the eyes
# on a line at about 38% of the height, the mouth at about 68%).
FACE_POINTS = {"left_eye": (0.38, 0.34), "right_eye": (0.38, 0.66), "nose": (0.53, 0.5), "mouth": (0.68, 0.5)}
STUDY_FILE = "lam_study.json"
# What a record's DI depends on: a saved record is reused only where all of these match.
RECORD_KEY = ("face", "face_sha256", "window", "row", "col", "size", "model", "model_sha256", "scale", "sigma",
              "fold", "precision")


@dataclass(frozen=True)
class Window:
    """An SR window: rows [row, row + size) x cols [col, col + size)."""

    name: str
    row: int
    col: int
    size: int


def face_windows(height: int, width: int, size: int = 16, names=tuple(FACE_POINTS)) -> list[Window]:
    """The named FACE_POINTS windows of side `size` on an SR face of height x width, kept inside it."""
    out = []
    for name in names:
        fr, fc = FACE_POINTS[name]
        row = min(max(round(fr * height) - size // 2, 0), height - size)
        col = min(max(round(fc * width) - size // 2, 0), width - size)
        out.append(Window(name, row, col, size))
    return out


def lr_faces_by_name(folder: str | Path, count: int, scale: int,
                     hr_size: int = HR_SIZE) -> dict[str, torch.Tensor]:
    """{file name: LR face (1, 3, hr_size/scale, hr_size/scale)} of the first `count` images (sorted by
    name): each one's centre square at hr_size, bicubic-downscaled by `scale`, as the evaluation does."""
    return {p.name: to_tensor(degrade(center_square(open_image(p).convert("RGB"), hr_size), scale))
            for p in image_files(folder)[:count]}


def load_faces(*args, **kwargs) -> dict[str, torch.Tensor]:
    """Deprecated name of `lr_faces_by_name` (older READMEs show it)."""
    warnings.warn("lam_study.load_faces is deprecated: use lam_study.lr_faces_by_name", DeprecationWarning,
                  stacklevel=2)
    return lr_faces_by_name(*args, **kwargs)


def tensor_sha256(t: torch.Tensor) -> str:
    """Hex sha256 of a tensor's shape and its values as contiguous float32 bytes (on the CPU)."""
    t = t.detach().to("cpu", torch.float32).contiguous()
    h = hashlib.sha256(f"{tuple(t.shape)}\0".encode())
    h.update(t.numpy().tobytes())
    return h.hexdigest()


def record_key(record: dict) -> tuple:
    """The RECORD_KEY fields of a record (None where it lacks one, as records of older files do)."""
    return tuple(record.get(k) for k in RECORD_KEY)


def study(
    models: dict[str, torch.nn.Module],
    faces: dict[str, torch.Tensor],
    windows: list[Window] | None = None,
    *,
    fold: int = 50,
    sigma: float = 1.2,
    batch_size: int = 50,
    precision: str = "fp32",
    parallel: bool = True,
    path: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    resamples: int = 10_000,
    seed: int = 0,
) -> dict:
    """LAM and DI of every model (all of one scale) on every face (name -> LR (1, 3, h, w)) and window
    (default: face_windows of the SR face). Returns {'settings', 'records', 'summary'} (see the module
    docstring), the records in the order face, window, model. With `path`, the records of that JSON file
    whose RECORD_KEY matches one asked for are reused (the rest are recomputed, whatever settings the file
    was made with) and the file is rewritten after each face, holding only this call's records.
    progress(done, total) counts face-windows."""
    scales = {name: scale_of(m) for name, m in models.items()}
    if len(set(scales.values())) != 1:
        raise ValueError(f"the models must share one scale: {scales}")
    scale = next(iter(scales.values()))
    first = next(iter(faces.values()))
    h, w = first.shape[-2:]
    windows = windows or face_windows(scale * h, scale * w)
    model_sha = {name: state_dict_sha256(m) for name, m in models.items()}
    settings = {"scale": scale, "fold": fold, "sigma": float(sigma),
                "precision": resolve_precision(precision, first.device),
                "models": {name: describe_model(m) for name, m in models.items()},
                "model_sha256": model_sha, "windows": [asdict(win) for win in windows]}
    face_sha = {face: tensor_sha256(lr) for face, lr in faces.items()}

    def entry(face: str, win: Window, name: str) -> dict:
        return {"face": face, "window": win.name, "model": name, "row": win.row, "col": win.col,
                "size": win.size, "face_sha256": face_sha[face], "model_sha256": model_sha[name],
                "scale": scale, "sigma": float(sigma), "fold": fold,
                "precision": resolve_precision(precision, faces[face].device)}

    tasks = [(face, win) for face in faces for win in windows]
    wanted = {(face, win, name): entry(face, win, name) for face, win in tasks for name in models}
    keys = [record_key(e) for e in wanted.values()]
    saved = _resume(Path(path)) if path else {}
    have = {k: saved[k] for k in keys if k in saved}  # key -> record: reused, then computed

    def current() -> list[dict]:
        return [have[k] for k in keys if k in have]

    unsaved = False  # records computed since the file was last written
    for i, (face, win) in enumerate(tasks):
        todo = {name: m for name, m in models.items() if record_key(wanted[face, win, name]) not in have}
        if todo:
            unsaved = True
            results = attribution_maps(todo, faces[face], win.row, win.col, win.size, sigma=sigma, fold=fold,
                                       batch_size=batch_size, precision=precision, parallel=parallel)
            for name, res in results.items():
                rec = {**wanted[face, win, name], "di": res.di}
                have[record_key(rec)] = rec
        last_of_face = i + 1 == len(tasks) or tasks[i + 1][0] != face
        if path and unsaved and last_of_face:
            _write(Path(path), {"settings": settings, "records": current(), "summary": None})
            unsaved = False
        if progress:
            progress(i + 1, len(tasks))
    records = current()
    out = {"settings": settings, "records": records,
           "summary": summarise(records, list(models), resamples=resamples, seed=seed)}
    if path:
        _write(Path(path), out)
    return out


def _resume(path: Path) -> dict[tuple, dict]:
    """record_key -> record of a saved study (empty if there is none). Records of older files, without the
    hash fields, are kept under keys that hold None and so match nothing asked for."""
    if not path.is_file():
        return {}
    try:
        old = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path} is not a LAM study file ({e}); give another --out or remove it") from e
    records = old.get("records") if isinstance(old, dict) else None
    if not isinstance(records, list):
        raise ValueError(f"{path} is not a LAM study file (no list of records); give another --out or remove it")
    return {record_key(r): r for r in records if isinstance(r, dict) and "di" in r}


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)  # atomic: an interrupted write leaves the previous file


def mean_interval(values, resamples: int = 10_000, seed: int = 0) -> dict:
    """{'mean', 'ci95': [low, high] (percentile bootstrap of the mean; None for fewer than 2 values), 'n'}."""
    values = np.asarray(values, np.float64)
    ci = None
    if values.size >= 2:
        if np.ptp(values) == 0:  # every resample has the same mean
            ci = [float(values[0])] * 2
        else:
            res = bootstrap((values,), np.mean, n_resamples=resamples, confidence_level=0.95,
                            method="percentile", rng=np.random.default_rng(seed))
            ci = [float(res.confidence_interval.low), float(res.confidence_interval.high)]
    return {"mean": float(values.mean()), "ci95": ci, "n": int(values.size)}


def summarise(records: list[dict], models: list[str], resamples: int = 10_000, seed: int = 0) -> dict:
    """Per model: mean DI over all records and per window. Per pair (a, b) of models, over the faces
    both have: the paired difference DI_a - DI_b per face (mean over its windows), its mean with a
    bootstrap 95% interval, and the fraction of faces where a is higher; the same for each window."""
    di = {(r["face"], r["window"], r["model"]): r["di"] for r in records}
    faces = sorted({r["face"] for r in records})
    windows = list(dict.fromkeys(r["window"] for r in records))
    per_model = {}
    for m in models:
        vals = [v for (f, w, mm), v in di.items() if mm == m]
        per_model[m] = {"mean_di": float(np.mean(vals)) if vals else None, "n": len(vals),
                        "by_window": {w: float(np.mean([v for (f, ww, mm), v in di.items() if mm == m and ww == w]))
                                      for w in windows if any((f, w, m) in di for f in faces)}}
    pairs = {}
    for a, b in itertools.combinations(models, 2):
        def diffs(ws, a=a, b=b):
            out = []
            for f in faces:
                d = [di[f, w, a] - di[f, w, b] for w in ws if (f, w, a) in di and (f, w, b) in di]
                if d:
                    out.append(np.mean(d))
            return np.asarray(out)

        def stats(d):
            return {**mean_interval(d, resamples, seed), "frac_first_higher": float(np.mean(d > 0))} if d.size else None

        pairs[f"{a} - {b}"] = {"first": a, "second": b, "all": stats(diffs(windows)),
                              "by_window": {w: stats(diffs([w])) for w in windows}}
    return {"models": per_model, "pairs": pairs, "faces": len(faces), "windows": windows}


# ----------------------------------------------------------------------------------------------------
# The table and the figure


def markdown(result: dict) -> str:
    """The summary as Markdown: mean DI per model and window, then each pair's paired difference."""
    s, cfg = result["summary"], result["settings"]
    windows = s["windows"]
    lines = [f"LAM diffusion index, x{cfg['scale']}, {s['faces']} faces, windows {', '.join(windows)} "
             f"({cfg['windows'][0]['size']} SR px), {cfg['fold']} path steps, {cfg['precision']}.", "",
             "| model | " + " | ".join(windows) + " | all |", "|---" * (len(windows) + 2) + "|"]
    for m, st in s["models"].items():
        lines.append(f"| {m} | " + " | ".join(f"{st['by_window'].get(w, float('nan')):.2f}" for w in windows) +
                     f" | {st['mean_di']:.2f} |")
    lines += ["", "| pair (first - second) | window | mean difference | 95% interval (bootstrap over faces) "
              "| faces where the first is higher |", "|---|---|---|---|---|"]
    for pair, p in s["pairs"].items():
        for w, st in [("all", p["all"])] + list(p["by_window"].items()):
            if st:
                ci = f"[{st['ci95'][0]:+.2f}, {st['ci95'][1]:+.2f}]" if st["ci95"] else "n/a"
                lines.append(f"| {pair} | {w} | {st['mean']:+.2f} | {ci} | {st['frac_first_higher']:.0%} |")
    return "\n".join(lines) + "\n"


FIGURE_CAPTION = ("Left: each model's DI over the faces, per window (boxes: quartiles; whiskers: 1.5 IQR). "
                  "Right: the paired difference per face (mean over the windows), with its mean and bootstrap "
                  "95% interval; right of 0, the first model draws on more of the face.")


def figure(result: dict) -> Figure:
    """DI distributions per window and model, and the paired per-face differences of each pair."""
    s, records = result["summary"], result["records"]
    models, windows = list(s["models"]), s["windows"]
    fig = Figure(figsize=(11, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[3, 2])
    width = 0.8 / len(models)
    for k, m in enumerate(models):
        data = [[r["di"] for r in records if r["model"] == m and r["window"] == w] for w in windows]
        pos = np.arange(len(windows)) + (k - (len(models) - 1) / 2) * width
        box = left.boxplot(data, positions=pos, widths=width * 0.9, patch_artist=True, showfliers=False)
        for patch in box["boxes"]:
            patch.set_facecolor(f"C{k}")
        left.plot([], [], color=f"C{k}", linewidth=6, label=m)
    left.set_xticks(range(len(windows)), windows)
    left.set_ylabel("DI")
    left.set_title("DI per window")
    rng = np.random.default_rng(0)
    di = {(r["face"], r["window"], r["model"]): r["di"] for r in records}
    faces = sorted({r["face"] for r in records})
    for k, p in enumerate(s["pairs"].values()):
        d = [np.mean([di[f, w, p["first"]] - di[f, w, p["second"]] for w in windows
                      if (f, w, p["first"]) in di and (f, w, p["second"]) in di]) for f in faces]
        right.scatter(d, k + rng.uniform(-0.15, 0.15, len(d)), s=8, alpha=0.5, color=f"C{k}")
        st = p["all"]
        if st and st["ci95"]:
            right.errorbar(st["mean"], k, xerr=[[st["mean"] - st["ci95"][0]], [st["ci95"][1] - st["mean"]]],
                           fmt="o", color="black", capsize=4)
    right.set_ylim(-0.6, len(s["pairs"]) - 0.4)
    right.axvline(0, color="grey", linewidth=0.8)
    right.set_yticks(range(len(s["pairs"])), list(s["pairs"]))
    right.set_xlabel("DI difference per face")
    right.set_title("Paired differences")
    # below both panels, not on the boxes
    fig.legend(*left.get_legend_handles_labels(), loc="outside lower center", ncols=len(models), fontsize=8)
    return fig


def write_outputs(result: dict, out: Path) -> None:
    """lam_study.md and lam_study.png beside the JSON."""
    (out / "lam_study.md").write_text(markdown(result) + "\n" + FIGURE_CAPTION + "\n")
    figure(result).savefig(out / "lam_study.png", dpi=110)


# ----------------------------------------------------------------------------------------------------
# The command line


def parse_window(text: str) -> str | Window:
    """A FACE_POINTS name, or NAME:ROW,COL,SIZE (SR pixels, top-left)."""
    if text in FACE_POINTS:
        return text
    try:
        name, spec = text.split(":")
        row, col, size = (int(v) for v in spec.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give one of {', '.join(FACE_POINTS)} or NAME:ROW,COL,SIZE") from None
    return Window(name, row, col, size)


def model_names(paths: list[Path]) -> list[str]:
    """File stems, made unique with a parent folder where two share a stem."""
    stems = [p.stem for p in paths]
    return [f"{p.parent.name}/{p.stem}" if stems.count(p.stem) > 1 else p.stem for p in paths]


def main(argv=None):
    p = argparse.ArgumentParser(description="LAM of several SR models on the same faces and windows.")
    p.add_argument("--weights", nargs="+", required=True, type=Path, help="model files (any load_sr_model reads)")
    p.add_argument("--data", required=True, type=Path, help="folder of face images (aligned, e.g. CelebA)")
    p.add_argument("--faces", type=int, default=100, help="the first N images, sorted by name")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--windows", nargs="+", type=parse_window, default=list(FACE_POINTS),
                   help=f"named windows ({', '.join(FACE_POINTS)}) or NAME:ROW,COL,SIZE")
    p.add_argument("--window-size", type=int, default=16, help="side of the named windows, SR px")
    p.add_argument("--fold", type=int, default=50, help="LAM path steps")
    p.add_argument("--precision", choices=["fp32", "bf16", "auto"], default="fp32")
    p.add_argument("--graph-off", action="store_true",
                   help="add each GVTNet with its graph switched off at inference (every edge kept), the same weights")
    p.add_argument("--sequential", action="store_true",
                   help="run the models one after the other on all threads, not side by side on one thread each")
    args = p.parse_args(argv)
    keep_freed_memory()  # before the models' threads start (gvtnet.compat)

    models = dict(zip(model_names(args.weights), (load_sr_model(w) for w in args.weights)))
    if args.graph_off:
        models |= {f"{name}, graph off": m.variant(use_graph=False) for name, m in models.items() if has_graph(m)}
    scale = scale_of(next(iter(models.values())))
    faces = lr_faces_by_name(args.data, args.faces, scale)
    side = next(iter(faces.values())).shape[-1] * scale
    named = face_windows(side, side, args.window_size, [w for w in args.windows if isinstance(w, str)])
    windows = named + [w for w in args.windows if isinstance(w, Window)]
    if not args.sequential and len(models) > 1:
        torch.set_num_threads(1)  # one core per model (the threads run side by side)
    path = args.out / STUDY_FILE
    with tqdm(total=len(faces) * len(windows), desc="LAM study (face-windows)") as bar:
        result = study(models, faces, windows, fold=args.fold, precision=args.precision, parallel=not args.sequential,
                       path=path, progress=lambda done, _: bar.update(done - bar.n))
    write_outputs(result, args.out)
    print(markdown(result))
    print(path)


if __name__ == "__main__":
    main()
