"""Speed of every preset on this machine, and of the released code side by side.

    python -m benchmarks.bench_models                       # all presets
    python -m benchmarks.bench_models --released PATH/basicsr/archs/GVTNet_arch.py

Per preset: parameters, GFLOPs of one forward pass (the modules' own `flops`), forward time per face
(batch 1) and forward+backward time per face (a training step on a batch, divided by its size), with the
achieved GFLOP/s. With --released, the released implementation, ours, and ours' matrix products and
convolutions replayed alone (the floor of any implementation built on these kernels) run in turn on the
same input, and speed-ups are taken pair by pair (robust to a machine whose speed drifts). Times are
medians with the interquartile range.
"""
from __future__ import annotations

import argparse
import statistics

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.timing import machine, summary, timed
from gvtnet import PRESETS, GVTNet, build_model
from gvtnet.compat import packed_ops
from gvtnet.inference import autocast
from gvtnet.weights import infer_config, released_to_ours


def lr_size(preset: str) -> int:
    return 32 if preset.endswith("x4") else 16


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    a = torch.rand(n, n)
    return 2 * n**3 / statistics.median(timed(lambda: a @ a, repeats)) / 1e9


def bench_preset(preset: str, repeats: int, batch: int) -> dict:
    torch.manual_seed(0)
    model = build_model(preset)
    s = lr_size(preset)
    x = torch.rand(1, 3, s, s)
    model.eval()
    with torch.inference_mode():
        fwd = timed(lambda: model(x), repeats)
    model.train()
    xb, yb = torch.rand(batch, 3, s, s), torch.rand(batch, 3, 128, 128)
    opt = torch.optim.Adam(model.parameters(), 1e-4)

    def step():
        opt.zero_grad()
        torch.nn.functional.l1_loss(model(xb), yb).backward()
        opt.step()

    train = [t / batch for t in timed(step, max(2, repeats // 4))]
    flops = model.flops(s, s)
    return {"preset": preset, "params": sum(p.numel() for p in model.parameters()), "gflops": flops / 1e9,
            "forward": fwd, "train": train, "gflops_per_s": flops / statistics.median(fwd) / 1e9}


aten = torch.ops.aten
# As dispatched under inference mode, where linear, conv2d and matmul arrive undecomposed; with autograd on
# they arrive as addmm, mm, bmm and convolution, and a backward pass adds convolution_backward.
# A bf16 snapshot's packed layers dispatch oneDNN's own operators (gvtnet.compat).
DENSE_OPS = {aten.linear.default, aten.conv2d.default, aten.matmul.default, aten.addmm.default, aten.mm.default,
             aten.bmm.default, aten.convolution.default, aten.convolution_backward.default, *packed_ops()}


class _Spec(tuple):
    """A tensor argument's (shape, stride, dtype), to make a fresh tensor of the same layout from."""


def _spec(a):
    """Tensors as their layout; a packed (opaque, oneDNN) weight as itself: weights are not activations."""
    return _Spec((a.shape, a.stride(), a.dtype)) if isinstance(a, torch.Tensor) and not a.is_mkldnn else a


def _fresh(a):
    """A random tensor with the layout of spec `a` (a broadcast one, with zero strides, included)."""
    if not isinstance(a, _Spec):
        return a
    shape, stride, dtype = a
    storage = 1 + sum((n - 1) * s for n, s in zip(shape, stride)) if all(shape) else 0
    return torch.empty(storage, dtype=dtype).normal_().as_strided(shape, stride)


class _DenseRecorder(TorchDispatchMode):
    """Records every matrix product and convolution dispatched while it is active, with its arguments."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in DENSE_OPS:
            self.calls.append((func, tree_map(_spec, args), tree_map(_spec, kwargs or {})))
        return func(*args, **(kwargs or {}))


def record_dense(fn):
    """The matrix products and convolutions that fn() dispatches (forward and backward passes alike), to be
    replayed back to back on fresh tensors of the same shapes, memory layouts and dtypes: a floor for any
    implementation that leaves its arithmetic to these library kernels (no norms, softmax, copies or graph
    construction in it). Returns (replay, number of ops, their GFLOPs)."""
    recorder = _DenseRecorder()
    with recorder:
        fn()
    is_spec = lambda a: isinstance(a, _Spec)  # noqa: E731
    calls = [(func, tree_map(_fresh, args, is_leaf=is_spec), tree_map(_fresh, kwargs, is_leaf=is_spec))
             for func, args, kwargs in recorder.calls]

    def replay():
        for func, args, kwargs in calls:
            func(*args, **kwargs)

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        replay()
    return replay, len(calls), counter.get_total_flops() / 1e9


def dense_replay(model: torch.nn.Module, x: torch.Tensor, precision: str = "fp32"):
    """`record_dense` of one forward pass of model(x) in inference mode, at `precision` (as autocast runs
    it)."""
    def forward():
        with torch.inference_mode(), autocast(precision):
            model(x)
    return record_dense(forward)


def bench_released(arch_file: str, upscale: int, repeats: int) -> dict:
    """The released implementation and ours with the same weights, and ours' matrix products and
    convolutions alone (`dense_replay`), called in turn on the same input."""
    from benchmarks.released import build_released

    torch.manual_seed(0)
    released = build_released(arch_file, upscale)
    state = released_to_ours(released.state_dict())
    ours = GVTNet(infer_config(state)).eval()
    ours.load_state_dict(state)
    x = torch.rand(1, 3, 32 // (upscale // 4), 32 // (upscale // 4))
    replay, ops, dense_gflops = dense_replay(ours, x)
    runs = {"released": lambda: released(x), "ours": lambda: ours(x),
            f"ours: its {ops} matmuls and convs alone ({dense_gflops:.2f} GFLOP)": replay}
    times = {name: [] for name in runs}
    with torch.inference_mode():
        reference = released(x)
        diffs = {"ours": (ours(x) - reference).abs().max().item()}
        for _ in range(repeats):
            for name, run in runs.items():
                times[name] += timed(run, 1)
    rows = [{"name": name, "ms": times[name], "max_abs_diff": diffs.get(name),
             "speedup": [a / b for a, b in zip(times["released"], times[name])] if name != "released" else None}
            for name in runs]
    return {"upscale": upscale, "rows": rows, "gflops": ours.flops(*x.shape[-2:]) / 1e9}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="*", default=list(PRESETS))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--batch", type=int, default=16, help="faces per training step")
    p.add_argument("--released", help="path to basicsr/archs/GVTNet_arch.py of a checkout of the released code")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{machine()}\nfp32 2048^3 matmul: {matmul_gflops():.0f} GFLOP/s\n")
    if args.released:
        print("| scale | implementation | ms per face | speed-up over released (per pair) | GFLOP/s | max abs diff |")
        print("|---|---|---|---|---|---|")
        for upscale in (8, 4):
            r = bench_released(args.released, upscale, args.repeats)
            for row in r["rows"]:
                rate = r["gflops"] / statistics.median(row["ms"])
                speedup = summary(row["speedup"]) if row["speedup"] else ""
                diff = f"{row['max_abs_diff']:.1e}" if row["max_abs_diff"] is not None else ""
                print(f"| x{upscale} | {row['name']} | {summary(row['ms'], 1e3, 1)} | {speedup} | {rate:.0f} | {diff} |",
                      flush=True)
        print()
    if args.presets:
        print(f"| preset | params | GFLOPs/face | forward ms/face | GFLOP/s | train ms/face (batch {args.batch}) |")
        print("|---|---|---|---|---|---|")
        for preset in args.presets:
            r = bench_preset(preset, args.repeats, args.batch)
            print(f"| {preset} | {r['params']:,} | {r['gflops']:.2f} | {summary(r['forward'], 1e3, 1)} | "
                  f"{r['gflops_per_s']:.0f} | {summary(r['train'], 1e3, 1)} |", flush=True)


if __name__ == "__main__":
    main()
