"""Workarounds of our dependencies, each kept here with the reason for it. tests/test_compat.py shows
that each is still needed (or that the private API it uses still exists) and fails once that changes, so
that it can be removed or adapted then."""
from __future__ import annotations

import ctypes
import functools
import sys

import torch

_torchvision_ops: torch.library.Library | None = None  # kept alive: dropping it would unregister the ops


def import_spandrel():
    """spandrel, imported on first use. It imports torchvision for two non-SR architectures (LaMa,
    RestoreFormer); PyPI's torchvision wheel is built for CUDA torch and, beside a CPU build of torch, fails
    while registering shapes for two of its C++ operators it could not load. Declaring those two operators
    (no kernels: calling them still fails) lets its Python half, and so spandrel, import."""
    global _torchvision_ops
    try:
        import spandrel
    except RuntimeError as e:
        if "torchvision::" not in str(e):
            raise
        for name in [m for m in sys.modules if m.split(".")[0] in ("torchvision", "spandrel")]:
            del sys.modules[name]  # the half-imported modules
        _torchvision_ops = torch.library.Library("torchvision", "FRAGMENT")
        for op in ("nms", "qnms"):
            _torchvision_ops.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        import spandrel
    return spandrel


def spandrel_call(descriptor):
    """How a spandrel descriptor runs its network, as fn(model, image) (a few architectures take extra
    arguments). Private (`_call_fn`) because spandrel's public call runs in inference mode, which LAM's
    gradients cannot pass: we call the network through this instead."""
    return descriptor._call_fn


# oneDNN's prepacked weights, and PyTorch's choice of convolution backend that decides where they give the
# same bits: the private PyTorch APIs the package runs on (torch.compile's CPU backend uses the same
# operators; PyTorch has no public prepacked layer). F.conv2d reorders a convolution's weight into oneDNN's
# layout on every call, in fp32 as in bf16, and F.linear a bf16 weight (an fp32 one goes to MKL as it is).
# At one 16x16 face that reorder was 6-15% of the face's time in bf16, and about 3% in fp32 on AVX-512
# (docs/PERFORMANCE.md). The packed tensors are opaque: they can be shared, never copied or saved.


@functools.cache
def packing_works(dtype: torch.dtype = torch.bfloat16) -> bool:
    """Whether this CPU's oneDNN packs weights of `dtype`. bf16 needs AVX-512 (BW, VL, DQ) or
    AVX-NE-CONVERT, and is refused elsewhere (an AVX2-only CPU); tried once, on a tiny layer of each kind."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        pack_linear(torch.zeros(8, 8, dtype=dtype))
        pack_conv2d(torch.nn.Conv2d(8, 8, 3, padding=1).to(dtype), torch.Size((1, 8, 8, 8)))
    except RuntimeError:
        return False
    return True


def conv_runs_onednn(conv: torch.nn.Conv2d, input_shape: torch.Size) -> bool:
    """Whether conv(x) runs oneDNN for a channels-last x of `input_shape` in the weight's dtype, as
    PyTorch's own choice of backend decides (private: torch._C._select_conv_backend). In fp32 it picks
    another kernel for small inputs of one image (torch 2.13: under 20,480 values, with a 3x3 kernel),
    whose bits a packed weight would not give."""
    x = torch.empty(input_shape, dtype=conv.weight.dtype).contiguous(memory_format=torch.channels_last)
    backend = torch._C._select_conv_backend(x, conv.weight, conv.bias, list(conv.stride), list(conv.padding),
                                             list(conv.dilation), False, [0, 0], conv.groups, None)
    return backend == torch._C._ConvBackend.Mkldnn


def pack_linear(weight: torch.Tensor) -> torch.Tensor:
    """An (out, in) Linear weight in oneDNN's layout, for `packed_linear`."""
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach(), None)


def packed_linear(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """F.linear(x, weight, bias) with the weight as `pack_linear` made it: the same bits, for contiguous x
    (..., in) in bf16, or in fp32 under autocast, which F.linear would cast to bf16 first (as is done here)."""
    linear_op, _ = packed_ops()
    return linear_op(x.to(packed.dtype), packed, bias, "none", [], "")


def pack_conv2d(conv: torch.nn.Conv2d, input_shape: torch.Size) -> torch.Tensor:
    """A Conv2d's weight (bf16 or fp32) in the oneDNN layout its kernel takes for inputs of `input_shape`
    (N, C, H, W) (packed for one shape, it ran up to 32x slower on others: hence one per shape)."""
    return torch._C._nn.mkldnn_reorder_conv2d_weight(conv.weight.detach().to_mkldnn(), list(conv.padding),
                                                      list(conv.stride), list(conv.dilation), conv.groups,
                                                      list(input_shape))


@functools.cache
def packed_ops() -> tuple:
    """The two operators (linear, convolution) that `packed_linear` and `packed_conv2d` run: the products of a
    snapshot, named only here, for those two and for a benchmark that records them
    (benchmarks.bench_models.record_dense)."""
    return torch.ops.mkldnn._linear_pointwise.default, torch.ops.mkldnn._convolution_pointwise.default


def packed_conv2d(x: torch.Tensor, packed: torch.Tensor, conv: torch.nn.Conv2d) -> torch.Tensor:
    """conv(x) with the weight as `pack_conv2d` made it for x's shape: the same bits, for channels-last x."""
    _, conv_op = packed_ops()
    return conv_op(x.to(packed.dtype), packed, conv.bias, conv.padding, conv.stride, conv.dilation, conv.groups,
                   "none", [], "")


# glibc's allocator. PyTorch takes every CPU tensor from malloc and gives it back when it is freed (it has no
# cache on the CPU, unlike on a GPU), so glibc's defaults decide whether a tensor's memory is reused or
# faulted in again page by page: they give each thread its own arena (heaps of at most 64 MB), serve blocks
# over a threshold that starts at 128 KB with fresh maps, and hand the heap's free top back to the system.

def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:  # not glibc
        return None


GLIBC = _glibc()
# mallopt's parameters (malloc.h) and the values keep_freed_memory sets
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8
KEPT_ALLOCATOR = {M_ARENA_MAX: 1, M_MMAP_THRESHOLD: 32 << 20, M_TRIM_THRESHOLD: 1 << 30}


def keep_freed_memory() -> bool:
    """Let glibc keep the memory freed tensors held for the next ones, instead of handing it back to the system
    and faulting it in again: one arena for every thread, blocks under 32 MB (glibc's own highest threshold)
    from the heap, and up to 1 GB of free heap top kept. A LAM frees its batch's activations (up to tens of MB
    each) after every backward pass; with glibc's defaults the app's LAM at x4 took 110,000-190,000 page faults
    and 1.2x the time (docs/PERFORMANCE.md: `bench_lam allocator`). For a process that runs such work: call it
    at its start, before it starts threads (a thread that has an arena keeps it). `return_freed_memory` still
    hands the free memory back on demand. Returns whether it applied (glibc only); elsewhere nothing changes."""
    return GLIBC is not None and all(GLIBC.mallopt(p, v) == 1 for p, v in KEPT_ALLOCATOR.items())


def return_freed_memory() -> None:
    """Hand the heap's free pages back to the system now, whatever keep_freed_memory keeps: so that a server's
    resident memory falls once what visitors uploaded has been released. Elsewhere (no glibc) nothing is done."""
    if GLIBC is not None:
        GLIBC.malloc_trim(0)
