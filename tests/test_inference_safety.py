"""Inference that stays right: threads sharing one model get what each call gets alone, and no change of
weights, by any route, leaves a stale result behind. Snapshots (`gvtnet.freeze`) are the fast path."""
from __future__ import annotations

import copy
import random
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

import gvtnet
from gvtnet.inference import freeze, super_resolve
from gvtnet.model import GVTNet, WindowAttention

SIZES = [(24, 24), (32, 32), (24, 40), (40, 24), (16, 16), (20, 28)]  # shifted, unshifted, padded, mirrored


def uncached(model: GVTNet, lr: torch.Tensor, precision: str = "fp32") -> torch.Tensor:
    """The model's output computed by a fresh copy, with nothing kept from any earlier call."""
    fresh = GVTNet(model.cfg)
    fresh.load_state_dict(copy.deepcopy(model.state_dict()))
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
        return fresh.eval()(lr).float().clamp(0, 1)


def trained_like(preset: str, seed: int) -> GVTNet:
    """A light model whose output depends on every weight (a new one is plain bicubic: its last conv is 0)."""
    torch.manual_seed(seed)
    model = gvtnet.build_model(preset).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return model


@pytest.fixture
def model() -> GVTNet:
    return trained_like("light-x4", 0)


def test_threads_sharing_models_get_what_each_call_gets_alone(model):
    x8 = trained_like("light-x8", 1)
    models = {"plain": model, "frozen": freeze(model), "frozen-bf16": freeze(model, "bf16"), "x8": freeze(x8)}
    inputs = {size: torch.rand(1, 3, *size) for size in SIZES}
    tasks = [(name, size, precision) for name in models for size in SIZES
             for precision in (("bf16",) if name == "frozen-bf16" else ("fp32", "bf16") if name == "plain" else ("fp32",))]

    def run(task):
        name, size, precision = task
        return super_resolve(models[name], inputs[size], precision=precision)

    alone = {task: run(task) for task in tasks}
    order = tasks * 12
    random.Random(0).shuffle(order)
    with ThreadPoolExecutor(max_workers=6) as pool:
        outputs = list(pool.map(run, order))
    wrong = [task for task, out in zip(order, outputs) if not torch.equal(out, alone[task])]
    assert not wrong, f"{len(wrong)} of {len(order)} outputs differ from the same call alone: {wrong[:5]}"


def _ema(model):
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.5))
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(0.5)
    ema.update_parameters(other)
    return ema.module


def _adam_step(model):
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model(torch.rand(1, 3, 16, 16)).mean().backward()
    opt.step()
    return model.eval()


def _scaled_state(model):
    return {k: v * 0.9 for k, v in model.state_dict().items()}


CHANGES = {
    "load_state_dict": lambda m: m.load_state_dict(_scaled_state(m)) and m,
    "load_state_dict assign": lambda m: m.load_state_dict(_scaled_state(m), assign=True) and m,
    "optimizer step": _adam_step,
    "EMA update": _ema,
    "in place": lambda m: [p.mul_(1.1) for p in m.parameters()] and m,
    "through .data": lambda m: [p.data.mul_(1.1) for p in m.parameters()] and m,  # no version bump
    "variant": lambda m: m.variant(threshold=0.3, minkowski_p=1.0),
}


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("change", list(CHANGES))
def test_every_change_of_weights_is_seen(model, change, precision):
    lr = torch.rand(1, 3, 32, 24)
    super_resolve(model, lr, precision=precision)  # anything an earlier call could have kept
    snapshot = freeze(model, precision)
    before = super_resolve(snapshot, lr)
    with torch.no_grad() if change != "optimizer step" else torch.enable_grad():
        changed = CHANGES[change](model)
    expected = uncached(changed, lr, precision)
    assert not torch.equal(expected, before)  # the change changes the output
    assert torch.equal(super_resolve(changed, lr, precision=precision), expected)
    assert torch.equal(super_resolve(freeze(changed, precision), lr), expected)
    assert torch.equal(super_resolve(snapshot, lr), before)  # a snapshot keeps the weights it was made with


def test_a_bf16_snapshot_computes_what_autocast_does(model):
    lr = torch.rand(2, 3, 16, 16)
    snapshot = freeze(model, "bf16")
    assert torch.equal(super_resolve(snapshot, lr), uncached(model, lr, "bf16"))
    assert snapshot.conv_first.weight.dtype == torch.bfloat16 and model.conv_first.weight.dtype == torch.float32
    assert freeze(snapshot, "bf16") is snapshot and freeze(snapshot, "fp32") is not snapshot
    with pytest.raises(ValueError, match="bf16 weights"):
        super_resolve(snapshot, lr, precision="fp32")
    with torch.inference_mode():  # a snapshot made here still takes gradients to its input (LAM)
        inner = freeze(model)
    x = lr.clone().requires_grad_()
    inner(x).sum().backward()
    assert x.grad is not None and not any(p.requires_grad for p in inner.parameters())


def test_a_bf16_snapshot_runs_its_layers_prepacked_and_still_takes_gradients(monkeypatch):
    """Every linear layer and convolution of a bf16 snapshot (depthwise q/k/v too) runs through weights
    packed for oneDNN, once per layer (and per input size for a convolution), unless its input needs a
    gradient (LAM); its variants share the packed weights."""
    import gvtnet.model as model_module
    from gvtnet.compat import packing_works

    if not packing_works():  # an AVX2-only CPU (tests/test_compat.py checks that snapshots do without it there)
        assert all(getattr(m, "packed", None) is None for m in freeze(gvtnet.build_model("light-x4"), "bf16").modules())
        return
    calls = []
    for name in ("packed_linear", "packed_conv2d"):
        op = getattr(model_module, name)
        monkeypatch.setattr(model_module, name, lambda *a, op=op: calls.append(a[1]) or op(*a))
    for preset in ("light-x4", "official-x8"):  # plain and depthwise-separable q/k/v
        torch.manual_seed(0)
        model = gvtnet.build_model(preset, depths=(2,), embed_dim=24, num_heads=2).eval()
        snapshot = freeze(model, "bf16")
        linears = [m for m in snapshot.modules() if getattr(m, "packed", None) is not None and not isinstance(m, nn.Conv2d)]
        convs = [m for m in snapshot.modules() if isinstance(m, model_module.Conv2d)]
        assert len(linears) == 4 * 2 and all(m.packed == {} for m in linears + convs)  # 4 in each of 2 blocks
        lr = torch.rand(1, 3, 16, 16)
        for size in ((16, 16), (16, 16), (24, 16)):
            calls.clear()
            super_resolve(snapshot, torch.rand(1, 3, *size))
            assert len(calls) == len(linears) + len(convs)
        assert all(len(m.packed) == 1 for m in linears) and all(len(m.packed) == 2 for m in convs)
        assert len({id(w) for w in calls}) == len(calls)  # each layer its own
        out = super_resolve(snapshot, lr)
        assert torch.equal(out, uncached(model, lr, "bf16"))
        calls.clear()
        x = lr.clone().requires_grad_()
        with torch.autocast("cpu", torch.bfloat16):
            snapshot(x).float().sum().backward()
        assert not calls and x.grad is not None and x.grad.abs().sum() > 0
        with torch.no_grad(), torch.autocast("cpu", torch.float16):  # autocast to another dtype: unpacked
            snapshot(lr)
        assert not calls
        other = snapshot.variant(threshold=0.5)  # copies modules, shares tensors: packed ones too
        assert [id(m.packed) for m in other.modules() if getattr(m, "packed", None) is not None] == \
            [id(m.packed) for m in snapshot.modules() if getattr(m, "packed", None) is not None]
        assert torch.equal(super_resolve(other, lr), super_resolve(model.variant(threshold=0.5), lr, precision="bf16"))
        assert torch.equal(super_resolve(freeze(snapshot, "fp32"), lr, precision="bf16"), out)


def test_an_fp32_snapshot_packs_its_convolutions_where_f_conv2d_runs_onednn(monkeypatch):
    """An fp32 snapshot runs a convolution through its weight packed for oneDNN at each input size where
    F.conv2d runs oneDNN too (gvtnet.compat.conv_runs_onednn), and as F.conv2d where it picks another kernel:
    the plain model's bits at every size. Its linear layers stay unpacked, and an input that needs a
    gradient (LAM) runs unpacked."""
    import gvtnet.model as model_module
    from gvtnet.compat import conv_runs_onednn

    calls = []
    op = model_module.packed_conv2d
    monkeypatch.setattr(model_module, "packed_conv2d", lambda *a: calls.append(a[2]) or op(*a))
    torch.manual_seed(0)
    model = gvtnet.build_model("official-x8", depths=(2,), embed_dim=24, num_heads=2).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))  # an output that depends on every convolution
    snapshot = freeze(model)
    convs = [m for m in snapshot.modules() if isinstance(m, model_module.Conv2d)]
    assert all(m.packed == {} for m in convs)
    assert all(m.packed is None for m in snapshot.modules() if hasattr(m, "packed") and not isinstance(m, nn.Conv2d))
    for size in ((16, 16), (32, 32), (24, 16), (16, 16)):
        calls.clear()
        lr = torch.rand(1, 3, *size)
        assert torch.equal(super_resolve(snapshot, lr), uncached(model, lr))
        assert len(calls) == len(set(map(id, calls))) and calls  # each packed convolution once, at least one
    entries = [(m, shape, packed) for m in convs for shape, packed in m.packed.items()]
    assert all((packed is not None) == conv_runs_onednn(m, shape) for m, shape, packed in entries)
    assert {packed is None for _, _, packed in entries} == {True, False}  # both kinds at these sizes
    calls.clear()
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    snapshot(x).sum().backward()
    assert not calls and x.grad is not None


def test_a_snapshot_groups_its_heads_and_keeps_the_models_state_dict(model, tmp_path):
    """A snapshot's q/k/v rows hold each head's channels together (for a faster window copy), with the
    same output to the bit; what it saves is the model's weights, in their own order."""
    snapshot = freeze(model)
    attns = [m for m in snapshot.modules() if isinstance(m, WindowAttention)]
    assert attns and not any(m.heads_interleaved for m in attns)
    first = model.layers[0].blocks[0].attn.qkv.pointwise
    assert not torch.equal(attns[0].qkv.pointwise.weight, first.weight)  # reordered, not a copy
    lr = torch.rand(1, 3, 24, 24)
    assert torch.equal(super_resolve(snapshot, lr), uncached(model, lr))
    gvtnet.save_model(snapshot, tmp_path / "snapshot.safetensors")
    saved, own = gvtnet.load_model(tmp_path / "snapshot.safetensors").state_dict(), model.state_dict()
    assert saved.keys() == own.keys() and all(torch.equal(saved[k], own[k]) for k in own)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_snapshot_gathers_each_bias_once_per_size(monkeypatch, model, precision):
    """On a second call at a size seen before, no block gathers its bias again: the masked blocks' too.
    (Under bf16 autocast the residual stream is bf16, and a mask cast to it was once new on every call.)"""
    gathers = []
    gather = WindowAttention._gather
    monkeypatch.setattr(WindowAttention, "_gather", lambda self, *a: gathers.append(self) or gather(self, *a))
    snapshot = freeze(model, precision)
    blocks = sum(isinstance(m, WindowAttention) for m in snapshot.modules())
    with torch.inference_mode():
        for size in ((32, 32), (32, 32), (24, 40), (32, 32), (24, 40)):
            super_resolve(snapshot, torch.rand(1, 3, *size))
    assert len(gathers) == 2 * blocks  # one gather per block and size
