"""Timing helpers shared by the benchmarks: medians with the interquartile range, and the machine they ran on."""
from __future__ import annotations

import datetime
import platform
import statistics
import time

import torch

# /proc/cpuinfo flags that decide which kernels run: AVX2/AVX-512, and native bf16 (AVX512-BF16, AMX)
KERNEL_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def machine() -> str:
    """One line for a benchmark's record: when (UTC), the CPU and its kernel flags, torch's capability and
    threads, and what precision='auto' picks here (from a short measurement: gvtnet.inference.bf16_speedup)."""
    from gvtnet.inference import bf16_speedup, resolve_precision
    info = {}  # the first processor's fields
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
    except OSError:  # not Linux
        pass
    cpu, flags = info.get("model name") or platform.processor() or "unknown CPU", info.get("flags", "").split()
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    kernel_flags = " ".join(f for f in KERNEL_FLAGS if f in flags) or "without " + "/".join(KERNEL_FLAGS)
    return (f"{when}; {cpu}, flags {kernel_flags}; "
            f"torch {torch.__version__}, capability {torch.backends.cpu.get_cpu_capability()}, "
            f"{torch.get_num_threads()} threads; bf16 matmul {bf16_speedup():.2f}x fp32's speed, so auto = "
            f"{resolve_precision('auto')}; Python {platform.python_version()}")


def timed(fn, repeats: int, warmup: int = 1) -> list[float]:
    """Seconds of `repeats` calls of fn, after `warmup` uncounted ones (allocator, oneDNN caches)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def summary(times: list[float], scale: float = 1.0, digits: int = 2) -> str:
    """'median (q1-q3)' of times multiplied by scale."""
    q = statistics.quantiles(times, n=4, method="inclusive") if len(times) > 1 else times * 3
    return f"{statistics.median(times) * scale:.{digits}f} ({q[0] * scale:.{digits}f}-{q[2] * scale:.{digits}f})"
