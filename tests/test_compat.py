"""Deprecated names that still work (and warn), and the workarounds of dependencies (gvtnet/compat.py,
app/compat.py): each test shows that its workaround is still needed, or that the private API it relies on
still exists, and fails once that is no longer so."""
from __future__ import annotations

import importlib
import os
import platform
import subprocess
import sys

import pytest

from conftest import ROOT


def fresh_import(name: str):
    """Import `name` as if for the first time (a module warns only when it is first imported)."""
    sys.modules.pop(name, None)
    return importlib.import_module(name)


def python_c(code: str, *args: str, **env: str) -> str:
    """The standard output of `python -c code args` in a fresh process, run from the project (which -c puts on
    its path) with `env` added to the environment; a failure shows its standard error."""
    run = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env={**os.environ, **env}, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


# ----------------------------------------------------------------------------------------------------
# Deprecated module names


def test_gvtnet_graph_is_an_alias_of_gvtnet_adjacency():
    from gvtnet import adjacency

    with pytest.warns(DeprecationWarning, match="gvtnet.adjacency"):
        graph = fresh_import("gvtnet.graph")
    assert graph.adjacency is adjacency.adjacency and graph.node_features is adjacency.node_features
    assert graph.chebyshev_distance is adjacency.chebyshev_distance


def test_gvtnet_infer_is_an_alias_of_gvtnet_upscale_files():
    from gvtnet import upscale_files

    with pytest.warns(DeprecationWarning, match="gvtnet.upscale_files"):
        infer = fresh_import("gvtnet.infer")
    assert infer.main is upscale_files.main and infer.image_files is upscale_files.input_output_paths


def test_python_m_gvtnet_infer_warns_and_runs_the_new_command():
    run = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", "gvtnet.infer", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "--photo" in run.stdout
    assert "DeprecationWarning" in run.stderr and "python -m gvtnet.upscale_files" in run.stderr


# ----------------------------------------------------------------------------------------------------
# gvtnet/compat.py


def test_torchvision_still_fails_to_import_without_the_workaround():
    """A plain `import torchvision` fails beside this torch (the wheel's C++ operators do not load), so
    import_spandrel still has to declare them. Once this import works, the declarations can go."""
    run = subprocess.run([sys.executable, "-c", "import torchvision"], capture_output=True, text=True, timeout=300)
    assert run.returncode != 0, ("`import torchvision` works now: gvtnet.compat.import_spandrel's operator "
                                 "declarations and sys.modules surgery are no longer needed; remove them")
    assert "torchvision::" in run.stderr  # the failure the workaround catches, not another


def test_import_spandrel_imports_it_with_the_workaround():
    from gvtnet.compat import import_spandrel

    assert import_spandrel().ModelLoader is not None


def test_spandrel_descriptors_still_have_the_private_call_fn():
    """SpandrelSR runs a network as spandrel does through the descriptor's private `_call_fn` (spandrel's
    public call runs in inference mode, which LAM's gradients cannot pass)."""
    import torch

    from gvtnet.compat import import_spandrel, spandrel_call

    spandrel = import_spandrel()
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(0)
    state = ESRGAN(num_filters=8, num_blocks=1, scale=4).state_dict()
    descriptor = spandrel.ModelLoader().load_from_state_dict(state)
    assert hasattr(descriptor, "_call_fn"), "spandrel's descriptors lost `_call_fn`: adapt gvtnet.compat.spandrel_call"
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(spandrel_call(descriptor)(descriptor.model, x).clamp(0, 1), descriptor(x))


def test_pytorchs_choice_of_convolution_backend_is_still_what_gvtnet_compat_reads():
    """gvtnet.compat.conv_runs_onednn asks PyTorch's private backend choice whether F.conv2d runs oneDNN, so
    that an fp32 snapshot packs a convolution only where the packed weight gives F.conv2d's bits. In fp32 it
    must still answer no for a small one-image input, yes for depthwise and for a batch, and those packed
    convolutions must give F.conv2d's bits."""
    import torch

    from gvtnet.compat import conv_runs_onednn, pack_conv2d, packed_conv2d, packing_works

    assert hasattr(torch._C, "_select_conv_backend") and hasattr(torch._C._ConvBackend, "Mkldnn"), \
        "PyTorch's convolution backend choice changed: adapt gvtnet.compat.conv_runs_onednn"
    assert packing_works(torch.float32)
    torch.manual_seed(0)
    dense, depthwise = (torch.nn.Conv2d(24, 24, 3, padding=1, groups=g).requires_grad_(False) for g in (1, 24))
    cases = {(dense, (1, 24, 16, 16)): False, (dense, (2, 24, 16, 16)): True, (dense, (1, 24, 32, 32)): True,
             (depthwise, (1, 24, 16, 16)): True}
    for (conv, shape), onednn in cases.items():
        assert conv_runs_onednn(conv, torch.Size(shape)) is onednn, (conv, shape)
        if onednn:
            x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
            assert torch.equal(packed_conv2d(x, pack_conv2d(conv, x.shape), conv), conv(x))


def test_onednn_packed_weights_still_exist_and_give_f_linear_and_conv2d_bits():
    """gvtnet.compat's pack_* / packed_* use the private torch.ops.mkldnn operators that snapshots run their
    layers through (bf16; fp32 convolutions above): they must still exist and give F.linear's and F.conv2d's
    bits."""
    import torch
    import torch.nn.functional as F

    from gvtnet.compat import pack_conv2d, pack_linear, packed_conv2d, packed_linear, packing_works

    assert hasattr(torch.ops.mkldnn, "_reorder_linear_weight") and hasattr(torch.ops.mkldnn, "_linear_pointwise") \
        and hasattr(torch.ops.mkldnn, "_convolution_pointwise"), "torch.ops.mkldnn changed: adapt gvtnet.compat"
    if not packing_works():  # an AVX2-only CPU: oneDNN refuses bf16 packing, and snapshots do without it
        with pytest.raises(RuntimeError, match="bf16 path needs"):
            pack_linear(torch.zeros(8, 8, dtype=torch.bfloat16))
        return
    torch.manual_seed(0)
    weight, bias = (0.05 * torch.randn(72, 48)).bfloat16(), (0.05 * torch.randn(72)).bfloat16()
    packed = pack_linear(weight)
    for shape in ((1, 48), (37, 48), (2, 16, 16, 48), (3, 7, 5, 48)):
        x = torch.randn(shape)
        assert torch.equal(packed_linear(x.bfloat16(), packed, bias), F.linear(x.bfloat16(), weight, bias))
        with torch.autocast("cpu", torch.bfloat16):  # an fp32 input is cast as autocast casts it
            assert torch.equal(packed_linear(x, packed, None), F.linear(x, weight, None))
    for cin, cout, groups, kernel in ((24, 24, 24, 3), (24, 40, 1, 3), (3, 24, 1, 3), (24, 12, 1, 1)):
        conv = torch.nn.Conv2d(cin, cout, kernel, padding=kernel // 2, groups=groups).bfloat16()
        conv = conv.to(memory_format=torch.channels_last).requires_grad_(False)
        for shape in ((1, cin, 16, 16), (3, cin, 8, 24)):
            x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
            expected = conv(x.bfloat16())
            assert torch.equal(packed_conv2d(x.bfloat16(), pack_conv2d(conv, x.shape), conv), expected)
            with torch.autocast("cpu", torch.bfloat16):
                assert torch.equal(packed_conv2d(x, pack_conv2d(conv, x.shape), conv), expected)


def test_where_onednn_cannot_pack_bf16_a_bf16_snapshot_runs_unpacked():
    """On a CPU without AVX-512 (emulated here by capping both kernel libraries to AVX2, in a fresh process)
    oneDNN refuses to pack bf16 weights: a bf16 snapshot then keeps none and still computes what autocast
    does, bit for bit. fp32 convolutions are packed there as anywhere, with the plain model's bits."""
    code = """
import torch, gvtnet
from gvtnet.compat import packing_works
torch.manual_seed(0)
model = gvtnet.build_model("official-x8", depths=(2,), embed_dim=24, num_heads=2).eval()
snapshot = gvtnet.freeze(model, "bf16")
lr = torch.rand(1, 3, 16, 16)
with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
    expected = model(lr).float().clamp(0, 1)
with torch.no_grad():
    expected_fp32 = model(lr).clamp(0, 1)
assert torch.backends.cpu.get_cpu_capability() == "AVX2" and not packing_works()
assert all(getattr(m, "packed", None) is None for m in snapshot.modules())
assert torch.equal(gvtnet.super_resolve(snapshot, lr), expected)
fp32 = gvtnet.freeze(model, "fp32")  # fp32 convolutions are packed here too
assert packing_works(torch.float32) and torch.equal(gvtnet.super_resolve(fp32, lr), expected_fp32)
assert any(v is not None for m in fp32.modules() if getattr(m, "packed", None) for v in m.packed.values())
print("ok")
"""
    assert python_c(code, ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX2").strip() == "ok"


# ----------------------------------------------------------------------------------------------------
# app/compat.py


def test_gradio_state_holder_still_forgets_a_session_as_app_compat_uses_it():
    """app.compat reaches into Gradio's state holder (no public API drops a session); on this Gradio it
    still has what app.compat uses, and forgetting a session drops its state and Gradio's record of it."""
    import gradio as gr
    from gradio.state_holder import StateHolder

    from app.compat import forget_session, session_hashes

    with gr.Blocks() as demo:
        state = gr.State("a visitor's value")
    StateHolder().set_blocks(demo)  # what serving the Blocks does
    demo.state_holder["visitor"][state._id] = "changed"
    assert session_hashes(demo) == ["visitor"] and demo.state_holder["visitor"][state._id] == "changed"
    forget_session(demo, "visitor")
    assert session_hashes(demo) == [] and "visitor" not in demo.state_holder.time_last_used


# glibc's allocator (gvtnet/compat.py)

ON_GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
needs_glibc = pytest.mark.skipif(not ON_GLIBC, reason="glibc's allocator only: elsewhere nothing is set")

# A fresh process that frees its tensors as LAM does: a batch's worth held at once, in a thread of its own
# (the app's LAMs each run in one), then freed; its page faults a batch over four such threads in turn, after one
# to warm up, with or without the setting.
THREAD_BATCHES = """
import resource, sys, threading, torch
from gvtnet.compat import keep_freed_memory
if sys.argv[1] == "kept":
    assert keep_freed_memory()
def batches():
    for _ in range(10):
        held = [torch.ones(2_000_000) for _ in range(8)]  # 8 x 8 MB
def faults_a_batch():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t = threading.Thread(target=batches)
    t.start()
    t.join()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10
faults_a_batch()
print(sum(faults_a_batch() for _ in range(4)) / 4)
"""


def test_glibc_is_found_on_glibc_and_optional_elsewhere():
    from gvtnet import compat

    assert (compat.GLIBC is not None) == ON_GLIBC, "glibc without mallopt or malloc_trim"
    assert compat.keep_freed_memory() == ON_GLIBC  # elsewhere: False, and nothing changes
    compat.return_freed_memory()  # either way, harmless


@needs_glibc
def test_keep_freed_memory_is_still_needed_and_stops_the_page_faults():
    """With glibc's defaults, a thread's freed batch of tensors (64 MB) is faulted in again on its next batches:
    2,980-5,570 page faults a batch here, over four threads in turn (33 runs). Kept, it is mostly reused: 0-490,
    at most 12% of the same run's default (now and then a thread's batches still take fresh pages, up to 980 a
    batch; hence the margin). Once the default stops faulting, keep_freed_memory can go."""
    default, kept = (float(python_c(THREAD_BATCHES, setting)) for setting in ("default", "kept"))
    assert default > 500, f"glibc's defaults took only {default:.0f} page faults a batch: the setting may be unneeded"
    assert kept < default / 4, (kept, default)


@needs_glibc
def test_return_freed_memory_still_hands_back_what_keep_freed_memory_keeps():
    """Freed memory that the setting keeps (resident, in this process) goes back to the system on demand, as the
    app does when a visitor leaves."""
    code = """
import torch
from gvtnet.compat import keep_freed_memory, return_freed_memory
def resident_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
assert keep_freed_memory()
start = resident_mb()
held = [torch.ones(2_000_000) for _ in range(25)]  # 200 MB
del held
kept = resident_mb() - start
return_freed_memory()
print(kept, resident_mb() - start)
"""
    kept, returned = map(float, python_c(code).split())
    assert kept > 150 and returned < 20, (kept, returned)
