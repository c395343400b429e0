"""Speed of every preset on this machine, and of the released code side by side.

    python -m benchmarks.bench_models                       # all presets
    python -m benchmarks.bench_models --released PATH/basicsr/archs/GVTNet_arch.py

Per preset: parameters, GFLOPs of one forward pass (the modules' own `flops`), forward time per face
(batch 1) and forward+backward time per face (a training step on a batch, divided by its size), with the
achieved GFLOP/s. With --released, the released implementation and ours run in turn on the same input,
and the speed-up is taken pair by pair (robust to a machine whose speed drifts). Times are medians with the interquartile range.
"""
from __future__ import annotations

import argparse
import platform
import statistics
from datetime import date

import torch

from benchmarks.timing import summary, timed
from gvtnet import PRESETS, GVTNet, build_model
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


def bench_released(arch_file: str, upscale: int, repeats: int) -> dict:
    """The released implementation and ours with the same weights, called in turn on the same input."""
    from benchmarks.released import build_released

    torch.manual_seed(0)
    released = build_released(arch_file, upscale)
    state = released_to_ours(released.state_dict())
    models = {"released": released, "ours": GVTNet(infer_config(state)).eval()}
    models["ours"].load_state_dict(state)
    x = torch.rand(1, 3, 32 // (upscale // 4), 32 // (upscale // 4))
    times = {name: [] for name in models}
    with torch.inference_mode():
        reference = released(x)
        diffs = {name: (m(x) - reference).abs().max().item() for name, m in models.items()}
        for _ in range(repeats):
            for name, m in models.items():
                times[name] += timed(lambda: m(x), 1)
    rows = [{"name": name, "ms": times[name], "max_abs_diff": diffs[name],
             "speedup": [a / b for a, b in zip(times["released"], times[name])]} for name in models]
    return {"upscale": upscale, "rows": rows, "gflops": models["ours"].flops(*x.shape[-2:]) / 1e9}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="*", default=list(PRESETS))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--batch", type=int, default=16, help="faces per training step")
    p.add_argument("--released", help="path to basicsr/archs/GVTNet_arch.py of a checkout of the released code")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{date.today()}, {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{args.threads} threads; fp32 2048^3 matmul: {matmul_gflops():.0f} GFLOP/s\n")
    if args.released:
        print("| scale | implementation | ms per face | speed-up over released (per pair) | GFLOP/s | max abs diff |")
        print("|---|---|---|---|---|---|")
        for upscale in (8, 4):
            r = bench_released(args.released, upscale, args.repeats)
            for row in r["rows"]:
                rate = r["gflops"] / statistics.median(row["ms"])
                print(f"| x{upscale} | {row['name']} | {summary(row['ms'], 1e3, 1)} | {summary(row['speedup'])} | "
                      f"{rate:.0f} | {row['max_abs_diff']:.1e} |", flush=True)
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
