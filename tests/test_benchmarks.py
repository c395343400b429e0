"""The benchmarks' floor measurements replay exactly the arithmetic of a forward pass, and their records name
the machine."""
import re
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

import gvtnet
from benchmarks.bench_models import dense_replay


def test_dense_replay_holds_every_matmul_and_conv_of_the_forward():
    model = gvtnet.build_model("light-x8").eval()
    x = torch.rand(1, 3, 16, 16)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x)
    replay, ops, gflops = dense_replay(model, x)
    # first conv; 4 groups x (2 blocks x (4 linear + 2 depthwise convs + 2 attention matmuls), the graph's
    # Gram matrix, the group's conv); the conv after the body and the upsampler's
    assert ops == 1 + 4 * (2 * (4 + 2 + 2) + 1 + 1) + 2
    assert gflops * 1e9 == counter.get_total_flops()
    replay()


def test_profile_groups_operators_by_kind():
    from torch.profiler import ProfilerActivity, profile

    from benchmarks.bench_lam import operator_shares

    a, w = torch.randn(512, 512), torch.randn(64, 64, 3, 3)
    x = torch.randn(1, 64, 64, 64)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            a @ a
            torch.nn.functional.conv2d(x, w, padding=1)
    shares = operator_shares(prof.key_averages())
    assert abs(sum(shares.values()) - 1) < 1e-9
    assert shares["matrix products"] > 0.1 and shares["convolutions"] > 0.1
    assert shares["matrix products"] + shares["convolutions"] > 0.9  # nothing else ran


def test_the_rest_of_a_path_counts_each_operator_s_bytes_once():
    """Hand-counted: a softmax reads and writes its (256, 256) fp32 map; a cast to fp32 is one copy_ that
    reads bf16 and writes fp32 (its parent _to_copy not counted again); an add reads two maps and writes
    one; views and matrix products move nothing here."""
    from torch.profiler import ProfilerActivity, profile

    from benchmarks.bench_lam import other_traffic

    s, h, a, b = torch.randn(256, 256), torch.randn(100, 100, dtype=torch.bfloat16), torch.randn(64, 64), torch.randn(64, 64)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True, profile_memory=True) as prof:
        torch.softmax(s, -1)
        h.float()
        torch.add(a, b)
        a.view(-1)
        a @ b
    nbytes, count = other_traffic(prof.events())
    assert count == 3
    assert nbytes == 2 * 256 * 256 * 4 + 100 * 100 * (2 + 4) + 3 * 64 * 64 * 4


def test_interleaved_rounds_give_every_run_every_place():
    """bench_lam's rounds rotate the order, so that no run is always timed after the same one (a run's place
    in the order moved its time by a few percent); each run's times are one per round."""
    from collections import Counter

    from benchmarks.bench_lam import interleaved

    calls = []
    runs = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    times = interleaved(runs, 6)
    rounds = [calls[3 + 3 * r: 6 + 3 * r] for r in range(6)]  # after one warm-up of each
    assert calls[:3] == list("abc") and all(sorted(r) == list("abc") for r in rounds)
    places = Counter((r.index(name), name) for r in rounds for name in r)
    assert places == Counter({(place, name): 2 for place in range(3) for name in "abc"})
    assert all(len(t) == 6 for t in times.values())


def test_record_dense_holds_the_backward_passes_products_too():
    """A convolution and a linear layer, forward and backward to the input only (as LAM runs them): the
    recording has both forward products, the convolution's backward and the linear layer's input gradient,
    with the FLOPs that FlopCounterMode counts for the same work, and it replays (a broadcast gradient,
    with zero strides, included)."""
    from benchmarks.bench_models import record_dense

    conv, fc = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Linear(8, 4)
    for p in (*conv.parameters(), *fc.parameters()):
        p.requires_grad_(False)
    x = torch.rand(2, 3, 8, 8, requires_grad=True)

    def step():
        fc(conv(x).permute(0, 2, 3, 1)).sum().backward()

    with FlopCounterMode(display=False) as counter:
        step()
    replay, ops, gflops = record_dense(step)
    assert ops == 4  # convolution, addmm; mm (the input gradient of the linear layer), convolution_backward
    assert gflops * 1e9 == counter.get_total_flops()
    replay()


def test_a_bf16_snapshots_replay_holds_its_packed_products():
    """A bf16 snapshot runs its linear layers and convolutions through oneDNN's packed operators where the
    CPU packs (gvtnet.compat); the replay must hold those too, as many products as the plain fp32 model's."""
    model = gvtnet.build_model("light-x8").eval()
    x = torch.rand(1, 3, 16, 16)
    assert dense_replay(gvtnet.freeze(model, "bf16"), x, "bf16")[1] == dense_replay(model, x)[1]


def test_machine_names_the_cpu_its_kernel_flags_and_what_auto_picks():
    from benchmarks.timing import KERNEL_FLAGS, machine
    from gvtnet.inference import resolve_precision

    line = machine()
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    flags = set(re.search(r"^flags\s*:\s*(.+)$", cpuinfo, re.M).group(1).split()) if cpuinfo else set()
    if model:
        assert model.group(1).strip() in line
    listed = set(re.search(r"flags ([^;]+);", line).group(1).split())
    assert listed & set(KERNEL_FLAGS) == flags & set(KERNEL_FLAGS)
    assert f"capability {torch.backends.cpu.get_cpu_capability()}," in line
    assert f"auto = {resolve_precision('auto')};" in line and f"torch {torch.__version__}," in line
