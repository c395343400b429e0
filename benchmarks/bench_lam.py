"""LAM and inference speed by precision (fp32 against bf16 autocast) and schedule.

    python -m benchmarks.bench_lam app [--repeats 5]
    python -m benchmarks.bench_lam official [--repeats 2]
    python -m benchmarks.bench_lam forward --released PATH/TO/GVTNet_arch.py [--repeats 15] [--faces 1 4 16] \
        [--data DIR]
    python -m benchmarks.bench_lam profile
    python -m benchmarks.bench_lam allocator [--repeats 6]

app: the LAM tab's work, GVTNet and SwinIR light on one window of the astronaut's face, as the app ran it
before (one model after the other, 25 path points a batch, fp32, one torch thread) and as candidates
(both models side by side in two threads of one torch thread each, or one after the other on two
threads; the app's points a batch or 50; fp32 or bf16), called in turn, so ratios are taken within one run;
the bf16 ones only where `auto` is bf16 (elsewhere bf16 is emulated and only slow). Where `auto` is fp32,
also the LAMs on one thread against the floor of their operators run eagerly (`lam_floor`): each model alone,
and both side by side, as the app runs them.
official: LAM of the paper-size models (random weights) on a 32x32 (x4) / 16x16 (x8) face, two threads, fp32
against bf16, with the maps' correlation and the DIs, and each time against its floor (the work, model.flops
x 3 x path points, over this machine's 2048^3 matmul rate at that precision), for each --batch. forward:
official-x8 forward, the released code against ours in fp32, in bf16 autocast (bf16 rows only where `auto`
is bf16), and through frozen snapshots (gvtnet.freeze: biases kept, bf16 weights stored in bf16 and packed
for oneDNN, fp32 convolutions packed; the same output as the plain model, without re-casting or reordering
the weights every call; and an fp32 and a bf16 snapshot whose weights are not packed, for the packing's
share; one at `auto` whose q/k/v rows keep the released code's interleaved heads, for the share of
WindowAttention.group_heads; the fp32 one unpacked and traced by torch.jit.trace, for the share of Python
between the operators; and the same network on 6 channels, whose arithmetic is small, for what its
operators cost beyond it; and each network's matrix products and convolutions alone, which give the floor of
these operators run eagerly), same weights, in turn, --faces faces a call; with --data, the PSNR of the
shipped light models against the original with and without bf16 on real faces.
profile: where each path spends its time (torch.profiler, operators' self time grouped by kind) against
its floor (the path's FLOPs over this machine's 2048^3 matmul rate at its precision) and against its
matrix products and convolutions alone, replayed at their own shapes and precision (x 3 for LAM's
forward and backward, as the floor; benchmarks.bench_models.dense_replay): one batch of 10 LAM
path points of each paper-size model at fp32 and bf16 and of the shipped light x4 at `auto`, and one
official-x8 face through a frozen snapshot at `auto`; and the rest, everything outside the products and
convolutions, against its bytes moved (`other_traffic`) at this machine's 8 MB copy rate.
allocator: the app's LAM (both shipped light models side by side, one thread each, as the app holds and runs
them) in fresh processes, --repeats of each in turn, with glibc's allocator as it is and as
gvtnet.compat.keep_freed_memory sets it (which the app, and every other command here, does at its start):
seconds, CPU seconds and page faults a LAM, and each process's peak resident memory.
Medians with the interquartile range.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import resource
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from unittest import mock

import numpy as np
import torch
from PIL import Image
from skimage import data

from benchmarks.timing import machine, summary, timed
from gvtnet import GVTNet, GVTNetConfig
from gvtnet.compat import keep_freed_memory
from gvtnet.presets import preset_config


def astronaut_lr(scale: int) -> torch.Tensor:
    from gvtnet.images import center_square, degrade
    from gvtnet.inference import to_tensor
    face = center_square(Image.fromarray(data.astronaut()).crop((150, 20, 330, 200)))
    return to_tensor(degrade(face, scale))


def app_lam_inputs(scale: int) -> tuple[dict[str, GVTNet], torch.Tensor, int, int]:
    """What the LAM tab's benchmarks run: the shipped light models (GVTNet and SwinIR, plain), the
    astronaut's face degraded by `scale`, and the top-left (row, col) of a 16 px window at the SR image's centre."""
    from gvtnet.weights import load_model

    models = {name: load_model(f"assets/{file}-light-x{scale}.safetensors")
              for name, file in (("GVTNet", "gvtnet"), ("SwinIR", "swinir"))}
    lr = astronaut_lr(scale)
    row = col = (lr.shape[-1] * scale - 16) // 2
    return models, lr, row, col


def rotated(names: list, turn: int) -> list:
    """`names` started at place turn % len(names), so that over the turns each takes every place as often."""
    start = turn % len(names)
    return names[start:] + names[:start]


def interleaved(runs: dict, repeats: int) -> dict[str, list[float]]:
    """Each run once per round, in turn, after one warm-up of each. Each round starts one run later than the
    one before, so that every run takes every place in the order as often (a snapshot timed right after
    another warm one measured 3-4% faster than in the place after the released code's: docs/PERFORMANCE.md)."""
    for run in runs.values():
        run()
    times = {name: [] for name in runs}
    for r in range(repeats):
        for name in rotated(list(runs), r):
            times[name] += timed(runs[name], 1, warmup=0)
    return times


def eager_floor(times: dict[str, list[float]], products: str, narrow: str, narrow_products: str) -> list[float]:
    """Per round, what these operators run eagerly cannot go below: the arithmetic at full width (`products`
    alone) plus everything else at almost none (the `narrow` network less its own products). The norms,
    copies and element-wise work that grow with width count as free."""
    return [p + n - q for p, n, q in zip(times[products], times[narrow], times[narrow_products])]


def ratio(times, base, name) -> str:
    r = [b / a for a, b in zip(times[name], times[base])]
    return summary(r) if name != base else ""


def bench_app(repeats: int, scales=(4, 8)):
    from analysis import lam
    from app.tabs.lam import LAM_BATCH, LAM_PRECISION
    from gvtnet.inference import resolve_precision

    auto = resolve_precision("auto")
    print("| scale | schedule | seconds | speed-up over before (per round) | DI GVTNet | DI SwinIR |")
    print("|---|---|---|---|---|---|")
    floors = {}
    for scale in scales:
        models, lr, row, col = app_lam_inputs(scale)
        dis = {}

        def run(name, batch, precision, parallel, threads):
            def go():
                torch.set_num_threads(threads)
                if name == "before":  # the app's old loop: one model after the other, each its own path
                    res = {k: lam.local_attribution_map(m, lr, row, col, batch_size=batch) for k, m in models.items()}
                else:
                    res = lam.attribution_maps(models, lr, row, col, batch_size=batch, precision=precision,
                                               parallel=parallel)
                dis[name] = {k: r.di for k, r in res.items()}
            return go

        app = f"side by side, 1 thread each, {resolve_precision(LAM_PRECISION)}, {LAM_BATCH} a batch (the app)"
        side_by_side_fp32 = f"side by side, 1 thread each, fp32, {LAM_BATCH} a batch"
        schedules = [("before", 25, "fp32", False, 1),
                     (side_by_side_fp32, LAM_BATCH, "fp32", True, 1),
                     (app, LAM_BATCH, LAM_PRECISION, True, 1),
                     ("side by side, 1 thread each, bf16, 50 a batch", 50, "bf16", True, 1),
                     ("one after the other, 2 threads, fp32, 50 a batch", 50, "fp32", False, 2),
                     ("one after the other, 2 threads, bf16, 50 a batch", 50, "bf16", False, 2)]
        if auto == "fp32":  # bf16 is emulated here: its schedules only take long; the app's is fp32's
            schedules = [sch for sch in schedules if sch[2] != "bf16" and sch[0] != side_by_side_fp32]
        runs = {name: run(name, *rest) for name, *rest in schedules}
        times = interleaved(runs, repeats)
        for name in runs:
            d = dis[name]
            print(f"| x{scale} | {name} | {summary(times[name])} | {ratio(times, 'before', name)} | "
                  f"{d['GVTNet']:.3f} | {d['SwinIR']:.3f} |")
        if auto == "fp32":
            floors[scale] = lam_floor(models, lr, row, col, LAM_BATCH, repeats)
    torch.set_num_threads(2)
    if floors:
        print("\nThe LAMs on one thread each (the app's points a batch, fp32) against the floor of their operators "
              "run eagerly: their matrix products and convolutions alone, forward and backward, plus the same "
              "network on one channel a head (other weights) less its own products (seconds); each model alone "
              "(the other core idle), and both side by side as the app runs them (until both are done):\n")
        print("| scale | model | LAM | products alone | narrow network | its products alone | floor | LAM / floor |")
        print("|---|---|---|---|---|---|---|---|")
        for scale, by_model in floors.items():
            for name, t in by_model.items():
                floor = eager_floor(t, "products", "narrow", "narrow products")
                print(f"| x{scale} | {name} | " + " | ".join(summary(v) for v in t.values()) +
                      f" | {summary(floor)} | {summary([a / f for a, f in zip(t['LAM'], floor)])} |")


def random_model(cfg: GVTNetConfig) -> GVTNet:
    """Random weights, with an output that depends on the body (an untrained light model's upsampler is zero:
    it would be exact bicubic, see tests/test_lam.py)."""
    torch.manual_seed(0)
    model = GVTNet(cfg).eval()
    for p in model.upsampler.parameters():
        p.data.normal_(0, 0.02)
    return model


def lam_floor_parts(model: GVTNet, lr: torch.Tensor, row: int, col: int, batch: int) -> dict[str, Callable]:
    """LAM of `model` (fp32) and what these operators run eagerly cannot go below, as calls to time: its
    matrix products and convolutions alone, as the forward and backward passes dispatch them
    (`record_dense`), plus the same network on one channel a head, whose arithmetic is small but whose
    operators, scores (their size is set by heads and windows, not channels), softmax and graph are all
    there, less its own products (`eager_floor`). Norms, GELU and copies at full width count as free: a
    floor, not an estimate."""
    from analysis import lam
    from benchmarks.bench_models import record_dense
    from gvtnet.inference import freeze

    narrow = random_model(dataclasses.replace(model.cfg, embed_dim=model.cfg.num_heads))
    full_lam, narrow_lam = (functools.partial(lam.local_attribution_map, freeze(m, "fp32"), lr, row, col,
                                              batch_size=batch, precision="fp32") for m in (model, narrow))
    return {"LAM": full_lam, "products": record_dense(full_lam)[0],
            "narrow": narrow_lam, "narrow products": record_dense(narrow_lam)[0]}


def lam_floor(models: dict[str, GVTNet], lr: torch.Tensor, row: int, col: int, batch: int,
              repeats: int) -> dict[str, dict[str, list[float]]]:
    """Times of each part of `lam_floor_parts`, in turn, on one thread: for each model alone (the other core
    idle), and for all of them as the app runs their LAMs, each part of every model started at once in a
    thread of its own and timed until all are done (they share the cache and the memory)."""
    torch.set_num_threads(1)
    parts = {name: lam_floor_parts(m, lr, row, col, batch) for name, m in models.items()}
    times = {name: interleaved(p, repeats) for name, p in parts.items()}

    def together(part):
        def run():
            with ThreadPoolExecutor(len(parts)) as pool:
                for done in [pool.submit(p[part]) for p in parts.values()]:
                    done.result()
        return run
    times["side by side"] = interleaved({part: together(part) for part in next(iter(parts.values()))}, repeats)
    return times


def matmul_rate(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """The machine's own matrix-product speed at `dtype`: FLOP/s of an n^3 product (2 n^3 FLOPs), median."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    with torch.inference_mode():
        return 2 * n**3 / statistics.median(timed(lambda: a @ b, repeats, warmup=1))


def bench_official(repeats: int, presets=("official-x4", "official-x8"), batches=(10,), fold: int = 50,
                   precisions=("fp32", "bf16")):
    """LAM of the paper-size models against the floor: the work (forward FLOPs x 3 for the forward and
    backward passes x path points) over the machine's measured matmul rate at that precision."""
    from analysis import lam

    rates = {"fp32": matmul_rate(torch.float32), "bf16": matmul_rate(torch.bfloat16)}
    print(f"2048^3 matmul: fp32 {rates['fp32'] / 1e9:.0f} GFLOP/s, bf16 {rates['bf16'] / 1e9:.0f} GFLOP/s\n")
    print("| preset | face | points a batch | precision | seconds | floor (s) | time / floor | "
          "bf16 time / fp32 time (per round) | map correlation with fp32 | DI | DI change |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for preset, side in (("official-x4", 32), ("official-x8", 16)):
        if preset not in presets:
            continue
        model = random_model(preset_config(preset))
        lr = astronaut_lr(128 // side)
        scale = model.cfg.upscale
        row = col = (side * scale - 16) // 2
        work = 3 * model.flops(side, side) * fold
        for batch in batches:
            res = {}

            def run(precision):
                def go():
                    res[precision] = lam.local_attribution_map(model, lr, row, col, fold=fold, batch_size=batch,
                                                                   precision=precision)
                return go

            times = interleaved({p: run(p) for p in precisions}, repeats)
            for prec in precisions:
                ref = res.get("fp32", res[prec])
                corr = np.corrcoef(res[prec].map.ravel(), ref.map.ravel())[0, 1]
                change = (res[prec].di - ref.di) / ref.di
                floor = work / rates[prec]
                print(f"| {preset} | {side}x{side} | {batch or 'auto'} | {prec} | {summary(times[prec], digits=1)} | "
                      f"{floor:.1f} | {statistics.median(times[prec]) / floor:.2f} | "
                      f"{ratio(times, 'bf16', 'fp32') if prec == 'bf16' and 'fp32' in times else ''} | "
                      f"{corr:.5f} | {res[prec].di:.3f} | "
                      f"{change:+.2%} |")


def bench_forward(released_file: str | None, repeats: int, data_dir: str | None, batches=(1,)):
    import gvtnet
    from benchmarks.bench_models import dense_replay
    from gvtnet.inference import autocast, freeze, resolve_precision, super_resolve
    from gvtnet.model import WindowAttention
    from gvtnet.weights import infer_config, released_to_ours

    if released_file:
        from benchmarks.released import build_released
        print("| official-x8, 16x16 faces | faces a call | ms a call | time / released (per round) | "
              "max abs diff to released |")
        print("|---|---|---|---|---|")
        torch.manual_seed(0)
        released = build_released(released_file, 8)
        state = released_to_ours(released.state_dict())
        ours = gvtnet.GVTNet(infer_config(state)).eval()
        ours.load_state_dict(state)
        auto = resolve_precision("auto")
        # bf16 rows only where `auto` is bf16: elsewhere it is emulated, and only slow (7x the released
        # code's time on an AVX2 CPU), which would stretch each round and so the spread of the others.
        precisions = ("fp32", "bf16") if auto == "bf16" else ("fp32",)
        for batch in batches:
            x = torch.rand(batch, 3, 16, 16)

            snapshots = {p: freeze(ours, p) for p in precisions}
            unpacked = {p: freeze(ours, p) for p in precisions}
            for m in (m for snapshot in unpacked.values() for m in snapshot.modules()):
                if hasattr(m, "packed"):
                    m.packed = None  # as F.linear and F.conv2d take the weights: reordered on every call
            with mock.patch.object(WindowAttention, "group_heads", lambda self: None):
                released_heads = freeze(ours, auto)  # q/k/v rows in the released order: group_heads' share
            # `auto`'s own row is its precision's (one row each: a duplicate would only lengthen every round)
            frozen = {p: f"ours {p}{' = auto' if p == auto else ''}, frozen (gvtnet.freeze)" for p in precisions}
            not_packed = {"fp32": "ours fp32, frozen, convolutions not packed for oneDNN",
                          "bf16": "ours bf16, frozen, weights not packed for oneDNN"}
            runs = {"released": lambda: released(x), "ours fp32": lambda: ours(x)}
            if "bf16" in precisions:
                def autocast_bf16(x=x):
                    with autocast("bf16"):
                        return ours(x)
                runs["ours bf16 autocast"] = autocast_bf16
            for p in precisions:
                runs[frozen[p]] = functools.partial(super_resolve, snapshots[p], x)
                runs[not_packed[p]] = functools.partial(super_resolve, unpacked[p], x)
            runs["ours auto, frozen, q/k/v heads left interleaved"] = lambda: super_resolve(released_heads, x)
            # The fp32 snapshot traced by torch.jit.trace (its convolutions unpacked: packed ones cannot be
            # traced): the same operators, the same bits, with no Python between them, for Python's share of a
            # face. A measurement only: TorchScript is deprecated, and the package does not run on it.
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                traced_model = torch.jit.trace(unpacked["fp32"], x, check_trace=False)
            traced = f"{not_packed['fp32']}, traced (torch.jit.trace: no Python between the operators)"
            runs[traced] = lambda: traced_model(x).clamp(0, 1)
            # The same operators on 6 channels (the upsampler keeps its 64): what they cost beyond arithmetic.
            narrow = "ours auto, frozen, the same network on 6 channels (other weights): its operators' fixed cost"
            narrow_model = freeze(gvtnet.build_model("official-x8", embed_dim=6, num_heads=6).eval(), auto)
            runs[narrow] = functools.partial(super_resolve, narrow_model, x)
            # Each snapshot's matrix products and convolutions alone, as it runs them at `auto` (dense_replay;
            # in bf16 through its packed weights): the floor of the arithmetic.
            products = "ours auto: its matrix products and convolutions alone"
            narrow_products = "the 6-channel network: its matrix products and convolutions alone"
            dense = {products: dense_replay(snapshots[auto], x, auto)[0],
                     narrow_products: dense_replay(narrow_model, x, auto)[0]}
            runs |= dense
            with torch.inference_mode():
                ref = released(x).clamp(0, 1)
                diffs = {name: (run().float().clamp(0, 1) - ref).abs().max().item() for name, run in runs.items()
                         if name not in dense}
                times = interleaved(runs, repeats if batch == 1 else max(3, repeats // batch))
            for name in runs:
                r = [a / b for a, b in zip(times[name], times["released"])]
                diff = "other weights" if name == narrow else "" if name in dense else f"{diffs[name]:.1e}"
                print(f"| {name} | {batch} | {summary(times[name], 1000, 1)} | "
                      f"{summary(r) if name != 'released' else ''} | {diff} |")
            packing = {p: [a / b for a, b in zip(times[frozen[p]], times[not_packed[p]])] for p in frozen}
            print("\nA snapshot's time over the same snapshot's with its weights not packed, per round: " +
                  ", ".join(f"{p} {summary(r)}" for p, r in packing.items()))
            python = [a / b for a, b in zip(times[traced], times[not_packed["fp32"]])]
            print(f"\nThe fp32 snapshot traced over the same not traced (what Python between the operators costs), "
                  f"per round: {summary(python)}")
            floor = [f / t for f, t in zip(eager_floor(times, products, narrow, narrow_products), times["released"])]
            print(f"\n{auto} floor of these operators run eagerly (products alone + the 6-channel network "
                  f"less its own products), over the released code's time: {summary(floor)}")
    if data_dir:
        from gvtnet.data import image_files
        from gvtnet.images import center_square, degrade, open_image
        from gvtnet.inference import to_tensor, to_uint8
        from gvtnet.metrics import psnr
        print("\n| shipped model | faces | PSNR fp32 | PSNR bf16 | mean difference | largest difference |")
        print("|---|---|---|---|---|---|")
        hrs = [center_square(open_image(p).convert("RGB")) for p in image_files(data_dir)[:100]]
        for name in ("gvtnet-light-x4", "gvtnet-light-x8", "swinir-light-x4", "swinir-light-x8"):
            model = gvtnet.load_model(f"assets/{name}.safetensors")
            s = model.cfg.upscale
            lr = torch.cat([to_tensor(degrade(hr, s)) for hr in hrs])
            vals = {p: [psnr(to_uint8(super_resolve(model, lr[i:i + 25], precision=p))[j], np.asarray(hrs[i + j]))
                        for i in range(0, len(hrs), 25) for j in range(min(25, len(hrs) - i))] for p in ("fp32", "bf16")}
            d = np.subtract(vals["bf16"], vals["fp32"])
            print(f"| {name} | {len(hrs)} | {statistics.mean(vals['fp32']):.3f} | {statistics.mean(vals['bf16']):.3f} | "
                  f"{d.mean():+.4f} | {np.abs(d).max():.4f} |")

# Operator kinds for the profile, by the first pattern that an operator's name contains.
OPERATOR_KINDS = [
    ("matrix products", ("aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm")),
    ("convolutions", ("convolution",)),
    ("copies, casts, layout", ("copy_", "_to_copy", "aten::cat", "aten::clone", "shuffle", "aten::index", "fill_",
                               "aten::roll", "aten::constant_pad", "aten::reflection_pad", "aten::zero")),
    ("norms, softmax, GELU", ("layer_norm", "softmax", "gelu")),
    ("element-wise, reductions", ("aten::add", "aten::sub", "aten::mul", "aten::div", "aten::sum", "aten::amax",
                                  "aten::where", "aten::sqrt", "aten::pow", "aten::abs", "aten::lt", "aten::gt",
                                  "aten::cdist", "aten::max", "aten::clamp", "aten::neg", "aten::exp")),
]


def operator_kind(name: str) -> str:
    """The OPERATOR_KINDS kind of an aten operator's name, or 'other'."""
    return next((k for k, pats in OPERATOR_KINDS if any(p in name for p in pats)), "other")


def operator_shares(events) -> dict[str, float]:
    """{kind: share of the total self time} of torch.profiler's key_averages(), with 'other' for the rest."""
    totals = dict.fromkeys([k for k, _ in OPERATOR_KINDS] + ["other"], 0.0)
    for e in events:
        totals[operator_kind(e.key)] += e.self_cpu_time_total
    whole = sum(totals.values()) or 1.0
    return {k: v / whole for k, v in totals.items()}


# Operators that move no data themselves: views, and allocations (their bytes are counted as the output
# of the operator that allocates through them).
NO_TRAFFIC = {f"aten::{op}" for op in (
    "view", "_unsafe_view", "view_as", "as_strided", "permute", "expand", "expand_as", "transpose", "t", "squeeze",
    "unsqueeze", "slice", "select", "alias", "detach", "split", "split_with_sizes", "unbind", "narrow", "chunk",
    "flatten", "unflatten", "empty", "empty_strided", "empty_like", "resize_", "lift_fresh", "set_", "reshape",
    "to", "contiguous", "matmul", "linear", "resolve_conj", "resolve_neg")}
ITEM_BYTES = {"float": 4, "c10::BFloat16": 2, "c10::Half": 2, "double": 8, "long int": 8, "int": 4, "bool": 1,
              "unsigned char": 1, "signed char": 1, "short int": 2}


def other_traffic(events) -> tuple[float, int]:
    """(bytes, operators) of what torch.profiler saw (record_shapes, profile_memory) outside matrix products
    and convolutions: each operator that does work itself (none of its children does) reads its tensor
    inputs and writes what it and its children allocate; an in-place one (copy_, fill_) writes an input,
    counted once."""
    def moves(e):
        return e.name.startswith("aten::") and e.name not in NO_TRAFFIC

    nbytes = count = 0
    for e in events:
        products = operator_kind(e.name) in ("matrix products", "convolutions")
        if products or not moves(e) or any(moves(c) for c in e.cpu_children):
            continue
        inputs = sum(math.prod(shape) * ITEM_BYTES.get(dtype, 0) for shape, dtype in zip(e.input_shapes, e.input_dtypes))
        written = max(e.self_cpu_memory_usage, 0) + sum(max(c.self_cpu_memory_usage, 0) for c in e.cpu_children)
        nbytes += inputs + written
        count += 1
    return nbytes, count


def copy_rate(mbytes: int = 8, repeats: int = 20) -> float:
    """The machine's bytes/s (read plus write) of a plain copy of `mbytes` MB: larger than a core's L2, as
    most of the paths' activations are, at torch's current threads; median."""
    a = torch.empty(mbytes * 2**18).normal_()
    b = torch.empty_like(a)
    return 2 * a.numel() * 4 / statistics.median(timed(lambda: b.copy_(a), repeats, warmup=2))


def bench_profile(precisions=("fp32", "bf16")):
    """Each path once to warm up, then once under torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    import gvtnet
    from analysis import lam
    from benchmarks.bench_models import dense_replay
    from gvtnet.inference import freeze, resolve_precision, super_resolve

    rates = {"fp32": matmul_rate(torch.float32), "bf16": matmul_rate(torch.bfloat16)}
    auto = resolve_precision("auto")
    bandwidth = copy_rate()
    print(f"2048^3 matmul: fp32 {rates['fp32'] / 1e9:.0f} GFLOP/s, bf16 {rates['bf16'] / 1e9:.0f} GFLOP/s; 8 MB copy "
          f"{bandwidth / 1e9:.1f} GB/s; auto = {auto}\n")
    kinds = [k for k, _ in OPERATOR_KINDS] + ["other"]
    print("| path | precision | seconds | floor (s) | time / floor | its matmuls and convs alone (s) | time / "
          "those | " + " | ".join(kinds) + " | the rest: operators, GB moved | the rest's time / its bytes at the "
          "copy rate | time / (matmuls and convs alone + the rest's bytes at the copy rate) |")
    print("|---|---|---|---|---|---|---|---|" + "---|" * (len(kinds) + 3))

    paths = []
    for preset, side in (("official-x4", 32), ("official-x8", 16)):
        model = random_model(preset_config(preset))
        for prec in precisions:
            paths.append((f"{preset} LAM, 10 path points", prec, model, side, "lam"))
    shipped = gvtnet.load_model("assets/gvtnet-light-x4.safetensors")
    paths.append(("gvtnet-light-x4 LAM, 10 path points", auto, shipped, 32, "lam"))
    paths.append(("official-x8 forward, one face, frozen", auto, random_model(preset_config("official-x8")), 16, "forward"))
    for name, prec, model, side, kind in paths:
        lr = astronaut_lr(128 // side) if kind == "lam" else torch.rand(1, 3, side, side)
        scale = model.cfg.upscale
        row = col = (side * scale - 16) // 2
        work = 3 * model.flops(side, side) * 10 if kind == "lam" else model.flops(side, side)
        snap = freeze(model, prec)
        replay = dense_replay(snap, lr.expand(10 if kind == "lam" else 1, -1, -1, -1), prec)[0]
        dense = (3 if kind == "lam" else 1) * statistics.median(timed(replay, 3))

        def run():
            if kind == "lam":
                return lam.local_attribution_map(snap, lr, row, col, fold=10, batch_size=10, precision=prec)
            return super_resolve(snap, lr)

        run()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            t = timed(run, 1, warmup=0)[0]
        shares = operator_shares(prof.key_averages())
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True, profile_memory=True) as shapes:
            run()  # a second, slower profile for the bytes: recording shapes and memory costs time itself
        nbytes, count = other_traffic(shapes.events())
        floor, moved = work / rates[prec], nbytes / bandwidth
        rest = t * (1 - shares["matrix products"] - shares["convolutions"])  # from the plain profile's shares
        print(f"| {name} | {prec} | {t:.2f} | {floor:.2f} | {t / floor:.2f} | {dense:.2f} | {t / dense:.2f} | "
              + " | ".join(f"{shares[k]:.0%}" for k in kinds)
              + f" | {count:,}, {nbytes / 1e9:.1f} | {rest / moved:.2f} | {t / (dense + moved):.2f} |")


def app_lam_costs(scales, repeats: int = 2) -> dict[str, dict[str, float]]:
    """{'x4': {'seconds', 'cpu seconds', 'page faults'}, ...}: medians a LAM of the app's schedule, after a
    warm-up, in this process as it is; and {'process': {'peak resident MB'}} after all of them."""
    from analysis import lam
    from app.tabs.lam import LAM_BATCH, LAM_PRECISION
    from gvtnet.inference import freeze

    torch.set_num_threads(1)
    costs = {}
    for scale in scales:
        plain, lr, row, col = app_lam_inputs(scale)
        models = {name: freeze(m) for name, m in plain.items()}  # the snapshots the app holds (app.state)
        run = functools.partial(lam.attribution_maps, models, lr, row, col, batch_size=LAM_BATCH,
                                precision=LAM_PRECISION)
        run()
        rows = []
        for _ in range(repeats):
            r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            run()
            r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            rows.append((t1 - t0, r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime, r1.ru_minflt - r0.ru_minflt))
        costs[f"x{scale}"] = dict(zip(("seconds", "cpu seconds", "page faults"), map(statistics.median, zip(*rows))))
    costs["process"] = {"peak resident MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    return costs


def bench_allocator(repeats: int, scales):
    settings = {"glibc as it is": ["--glibc-defaults"], "freed memory kept (the app)": []}
    child = [sys.executable, "-m", "benchmarks.bench_lam", "app-lam-costs", "--scales", *map(str, scales)]
    results = {name: [] for name in settings}
    for r in range(repeats):
        for name in rotated(list(settings), r):
            out = subprocess.run(child + settings[name], capture_output=True, text=True, check=True).stdout
            results[name].append(json.loads(out.splitlines()[-1]))
    first = results["glibc as it is"][0]
    print("| scale | measure | " + " | ".join(settings) + " | kept / as it is, per round |")
    print("|---|---|---|---|---|")
    for scale in first:
        for measure in first[scale]:
            by = [[c[scale][measure] for c in results[name]] for name in settings]
            digits = 0 if measure in ("page faults", "peak resident MB") else 2
            ratios = [k / p for k, p in zip(by[1], by[0])] if min(by[0]) > 0 else None
            print(f"| {scale} | {measure} | {summary(by[0], digits=digits)} | {summary(by[1], digits=digits)} | "
                  f"{summary(ratios) if ratios else ''} |")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["app", "official", "forward", "profile", "allocator", "app-lam-costs"])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--released", help="basicsr/archs/GVTNet_arch.py of a checkout of the released code")
    p.add_argument("--scales", type=int, nargs="+", default=[4, 8], help="app: the scales to time")
    p.add_argument("--presets", nargs="+", default=["official-x4", "official-x8"], help="official: the presets")
    p.add_argument("--batch", type=lambda v: None if v == "auto" else int(v), nargs="+", default=[10],
                   help="official: path points per batch, one or several (25 at x4 needs over 13 GB), or 'auto': "
                        "the size LAM finds fastest while it runs (analysis.lam.next_batch_size)")
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"],
                   help="official, profile: the precisions of the paper-size models' LAM")
    p.add_argument("--fold", type=int, default=50, help="official: LAM path points (the floor scales with them)")
    p.add_argument("--faces", type=int, nargs="+", default=[1], help="forward: faces a call (batch sizes)")
    p.add_argument("--data", help="folder of faces for the bf16 PSNR check (e.g. celeba-test-1000)")
    p.add_argument("--glibc-defaults", action="store_true",
                   help="leave glibc's allocator as it is (by default freed memory is kept, as the app keeps it)")
    args = p.parse_args()
    if not args.glibc_defaults:
        keep_freed_memory()
    torch.set_num_threads(args.threads)
    if args.what == "app-lam-costs":  # one process of `allocator`
        print(json.dumps(app_lam_costs(args.scales)))
        return
    print(machine() + "\n")
    {"app": lambda: bench_app(args.repeats, args.scales),
     "official": lambda: bench_official(args.repeats, args.presets, args.batch, args.fold, args.precisions),
     "forward": lambda: bench_forward(args.released, args.repeats, args.data, args.faces),
     "profile": lambda: bench_profile(args.precisions),
     "allocator": lambda: bench_allocator(args.repeats, args.scales)}[args.what]()


if __name__ == "__main__":
    main()
