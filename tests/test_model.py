"""The model: exact to the released code, any input size, every ablation switch wired, FLOPs honest."""
from __future__ import annotations

import json
from dataclasses import fields, replace

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch.utils.flop_counter import FlopCounterMode

import gvtnet
from conftest import perturbed
from gvtnet.adjacency import chebyshev_distance
from gvtnet.model import GraphSettings, GVTNet, GVTNetConfig, cyclic_shift, drop_path, shift_mask, to_windows
from gvtnet.weights import infer_config, released_to_ours

GRAPH_SETTINGS = [f.name for f in fields(GraphSettings)]


def released(fixtures_dir, name):
    """Our model with the fixture's released weights, and the fixture's inputs/outputs."""
    state = released_to_ours(load_file(fixtures_dir / f"{name}-weights.safetensors"))
    model = gvtnet.GVTNet(infer_config(state)).eval()
    model.load_state_dict(state)
    return model, load_file(fixtures_dir / f"{name}-io.safetensors")


@pytest.mark.parametrize("name", ["tiny-x4", "tiny-x8"])
def test_matches_released_code(fixtures_dir, name):
    model, io = released(fixtures_dir, name)
    configs = json.loads((fixtures_dir / "configs.json").read_text())[name]
    assert model.cfg.minkowski_p == float(configs["p"]) and model.cfg.threshold == configs["gkk"]
    with torch.no_grad(), gvtnet.capture(model) as cap:
        out = model(io["input"])
    assert (out - io["output"]).abs().max().item() < 1e-5
    for g, records in enumerate(cap.groups):
        assert len(records) == 1  # one adjacency per group, shared by its graph blocks
        assert torch.equal(records[0]["adjacency"], io[f"adjacency_group{g}"].float())


def test_fused_path_equals_captured_path(fixtures_dir):
    model, io = released(fixtures_dir, "tiny-x4")
    with torch.no_grad():
        plain = model(io["input"])
        with gvtnet.capture(model):
            captured = model(io["input"])
    assert torch.allclose(plain, captured, atol=1e-6)


@pytest.mark.parametrize("layout", ["strided", "contiguous"])
def test_windows_take_heads_in_either_channel_order(layout):
    """to_windows gives head h of part p the channels p*C + j*heads + h (interleaved: the strided layout's
    own order) or p*C + h*d + j (consecutive: contiguous's, and a snapshot's q/k/v), at the same pixels."""
    c, heads, d = 12, 3, 4
    channel = torch.arange(3.0 * c).expand(1, 16, 16, 3 * c).contiguous()
    pixel = torch.arange(256.0).view(1, 16, 16, 1).expand(1, 16, 16, 3 * c).contiguous()
    part, head, j = torch.meshgrid(torch.arange(3), torch.arange(heads), torch.arange(d), indexing="ij")
    for interleaved in (True, False):
        got = to_windows(channel, 8, layout, heads, 3, interleaved)  # (3, B, nW, heads, n, d)
        want = part * c + (j * heads + head if interleaved else head * d + j)
        assert torch.equal(got, want[:, None, None, :, None, :].float().expand_as(got))
        assert torch.equal(to_windows(pixel, 8, layout, heads, 3, interleaved), to_windows(pixel, 8, layout, heads, 3))


def test_shift_mask_matches_released_buffer(fixtures_dir):
    weights = load_file(fixtures_dir / "tiny-x4-weights.safetensors")
    for g, shift in [(1, 6), (3, 4), (5, 2)]:
        buf = weights[f"layers.{g}.residual_group.blocks.0.attn.attn_mask"]
        mask = shift_mask(32, 32, 8, shift)  # -inf where the released buffer has -100 (see its docstring)
        assert torch.equal(mask == float("-inf"), buf == -100) and torch.equal(mask == 0, buf == 0)
        assert buf.unique().tolist() == [-100, 0]
    assert not any(k.startswith("layers.0.") and k.endswith("attn_mask") for k in weights)


@pytest.mark.parametrize("preset,count", [("official-x4", 12_029_799), ("official-x8", 12_177_511),
                                          ("swinir-x4", 11_900_199), ("swinir-x8", 12_047_911)])
def test_parameter_counts(preset, count):
    model = gvtnet.build_model(preset)
    assert sum(p.numel() for p in model.parameters()) == count


@pytest.mark.parametrize("preset", ["light-x4", "light-x8", "swinir-light-x4", "swinir-light-x8"])
def test_light_presets_are_light(preset):
    assert sum(p.numel() for p in gvtnet.build_model(preset).parameters()) < 1_000_000


@pytest.mark.parametrize("preset", ["light-x4", "swinir-light-x8"])
def test_any_input_size_equals_padding_by_hand(preset):
    model = perturbed(preset, bicubic_skip=False)  # the skip upsamples the unpadded input, by design
    s = model.cfg.upscale
    x = torch.rand(1, 3, 13, 21)
    with torch.no_grad():
        out = model(x)
        padded = F.pad(x - model.mean, (0, 3, 0, 3), mode="reflect") + model.mean
        by_hand = model(padded)[..., : 13 * s, : 21 * s]
    assert out.shape == (1, 3, 13 * s, 21 * s)  # no mirrored border left
    assert torch.allclose(out, by_hand, atol=1e-5)


def test_tiny_input_is_padded_without_error():
    with torch.no_grad():
        assert perturbed("light-x4")(torch.rand(1, 3, 3, 5)).shape == (1, 3, 12, 20)


ABLATIONS = [dict(block_pattern="G"), dict(block_pattern="S"), dict(dwconv=False), dict(minkowski_p=1.0),
             dict(minkowski_p=float("inf")), dict(threshold=0.6), dict(neighbour_rule="paper"),
             dict(distance_basis="features"), dict(adjacency_mode="mask"), dict(graph_qk_scale=True),
             dict(window_layout="contiguous"), dict(shift_rule="alternate"), dict(graph_scope="window"),
             dict(graph_scope="window", window_layout="contiguous")]


@pytest.mark.parametrize("change", ABLATIONS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_every_ablation_switch_changes_the_computation(change):
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        # weights large enough that attention is far from uniform, so every switch shows
        base = perturbed("light-x8", std=0.2, minkowski_p=2.0)(x)
        other = perturbed("light-x8", std=0.2, **{"minkowski_p": 2.0, **change})(x)
    assert other.shape == base.shape and torch.isfinite(other).all()
    assert not torch.allclose(base, other, atol=1e-6)


def test_variant_shares_weights_and_leaves_the_original_alone():
    model = perturbed("light-x8")
    x = torch.rand(1, 3, 16, 16)
    other = model.variant(threshold=0.3, minkowski_p=1.0)
    assert model.cfg.threshold == 0.85 and other.cfg.threshold == 0.3
    assert other.conv_first.weight.data_ptr() == model.conv_first.weight.data_ptr()
    with torch.no_grad():
        assert not torch.allclose(model(x), other(x))
        assert torch.allclose(model(x), model.variant(threshold=0.85)(x))
    with pytest.raises(ValueError):
        model.variant(embed_dim=64)


# One other value for each field a variant may change.
OTHER_GRAPH_SETTINGS = {"threshold": 0.4, "minkowski_p": 1.0, "neighbour_rule": "paper", "distance_basis": "features",
                        "adjacency_mode": "mask", "graph_qk_scale": True, "use_graph": False, "graph_scope": "window"}


@pytest.mark.parametrize("field", GVTNet.GRAPH_FIELDS)
def test_a_variant_computes_what_a_network_built_with_its_settings_does(field):
    """variant copies the modules and re-applies the graph settings instead of building anew: for every field
    it may change, its output equals that of a network built from the changed config and given the weights."""
    model = perturbed("light-x8", std=0.2)
    change = {field: OTHER_GRAPH_SETTINGS[field]}
    built = GVTNet(replace(model.cfg, **change))
    built.load_state_dict(model.state_dict())
    x = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        want = built(x)
        assert torch.equal(model.variant(**change)(x), want)
        if field in GRAPH_SETTINGS:
            assert torch.equal(model.variant(GraphSettings(**change))(x), want)
        assert not torch.equal(model(x), want)  # the setting matters here, so the test can fail


def test_graph_settings_are_one_value_with_the_models_own_where_unset():
    s = GraphSettings(threshold=0.5, use_graph=False)
    assert s.changes() == {"threshold": 0.5, "use_graph": False} and GraphSettings().changes() == {}
    assert set(GRAPH_SETTINGS) <= set(GVTNet.GRAPH_FIELDS)
    model = perturbed("light-x8")
    other = model.variant(s, minkowski_p=1.0)  # settings and single fields together
    assert (other.cfg.threshold, other.cfg.use_graph, other.cfg.minkowski_p) == (0.5, False, 1.0)
    assert model.variant(GraphSettings()).cfg == model.cfg


@pytest.mark.parametrize("pattern,depths,expected", [("SG", (2, 2), True), ("G", (1, 1), True),
                                                      ("S", (2, 2), False), ("SG", (1, 1), False)])
def test_has_graph_when_any_block_built_is_a_graph_block(pattern, depths, expected):
    model = gvtnet.GVTNet(GVTNetConfig(embed_dim=12, num_heads=2, depths=depths, block_pattern=pattern))
    assert model.cfg.has_graph is expected
    assert expected == any(b.kind == "G" for g in model.layers for b in g.blocks)


def test_invalid_configs_are_refused():
    with pytest.raises(ValueError):
        GVTNetConfig(embed_dim=50, num_heads=6)
    with pytest.raises(ValueError):
        GVTNetConfig(block_pattern="SX")
    with pytest.raises(ValueError):
        GVTNetConfig(upscale=3)
    with pytest.raises(ValueError):
        GVTNetConfig.from_dict({"embed_dim": 60, "gkk": 0.8})
    with pytest.raises(ValueError, match="graph_scope"):
        GVTNetConfig(graph_scope="image")


@pytest.mark.parametrize("preset,size", [("light-x4", 32), ("swinir-light-x8", 16), ("official-x8", 16)])
def test_flops_report_matches_torch_flop_counter(preset, size):
    """Each module's own FLOPs add up to what torch counts for the matmuls and convolutions."""
    model = gvtnet.build_model(preset).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.rand(1, 3, size, size))
    assert model.flops(size, size) == pytest.approx(counter.get_total_flops(), rel=0.01)


def test_graph_off_keeps_every_edge():
    """use_graph=False is the same weights with every edge kept: an all-ones adjacency, and the output of
    a threshold so high (2 x the row maximum) that no pair is cut."""
    model = perturbed("light-x4", std=0.2)
    x = torch.rand(1, 3, 24, 24)
    off = model.variant(use_graph=False)
    with torch.no_grad(), gvtnet.capture(off) as cap:
        out = off(x)
    for records in cap.groups:
        assert all(torch.equal(r["adjacency"], torch.ones_like(r["adjacency"])) for r in records)
    with torch.no_grad():
        assert torch.allclose(out, model.variant(threshold=2.0)(x), atol=1e-6)
        assert not torch.allclose(out, model(x), atol=1e-4)  # the graph does cut edges at T = 0.85


def test_window_scope_is_a_variant_of_the_same_weights():
    """graph_scope='window' through `variant`: one graph per window, captured as (B, nW, heads, n, n), and
    back to 'group' the released computation exactly."""
    model = perturbed("light-x4", std=0.2)
    x = torch.rand(2, 3, 24, 16)
    window = model.variant(graph_scope="window")
    with torch.no_grad(), gvtnet.capture(window) as cap:
        out = window(x)
    adj = cap.groups[0][0]["adjacency"]
    assert adj.shape == (2, 6, 4, 64, 64)  # 3 x 2 windows of the 24 x 16 map
    assert not torch.equal(adj[:, 0], adj[:, 1])
    with torch.no_grad():
        assert not torch.allclose(out, model(x), atol=1e-4)
        assert torch.equal(window.variant(graph_scope="group")(x), model(x))


def test_cyclic_shift_is_torch_roll():
    """The one-gather shift equals torch.roll both ways, on odd sizes, and its cached index made under
    inference_mode still serves a forward pass with gradients."""
    x = torch.randn(3, 24, 16, 5)
    with torch.inference_mode():
        for shift in (-7, -3, 3, 5):
            assert torch.equal(cyclic_shift(x, shift), torch.roll(x, (shift, shift), dims=(1, 2)))
    x.requires_grad_(True)
    g = torch.randn_like(x)
    (grad,) = torch.autograd.grad(cyclic_shift(x, -3), x, g)
    assert torch.equal(grad, torch.roll(g, (3, 3), dims=(1, 2)))


def test_chebyshev_distance_is_cdist_at_p_inf():
    """Equal to torch.cdist(p=inf) bit for bit, in one chunk or many, and for bf16 input as autocast
    computes cdist (in float32)."""
    torch.manual_seed(0)
    for shape, chunk_bytes in [((2, 6, 64, 64), 2 << 20), ((3, 5, 7, 9), 1), ((4, 16), 2 << 20)]:
        v = torch.randn(shape)
        assert torch.equal(chebyshev_distance(v, chunk_bytes), torch.cdist(v, v, p=float("inf")))
    v = torch.randn(2, 6, 64, 64).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(chebyshev_distance(v), torch.cdist(v, v, p=float("inf")))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_minus_inf_mask_changes_no_output(monkeypatch, precision):
    """The shift mask's -inf (for the released -100) changes no bit of the output: the weights -100
    leaves are below every output's last bit."""
    torch.manual_seed(0)
    model = gvtnet.build_model("light-x4", bicubic_skip=False).eval()  # (a skip starts as bicubic only)
    x = torch.rand(2, 3, 32, 32)  # 32x32: shifted windows with masks in groups 1 and 3
    ours = gvtnet.super_resolve(model, x, precision=precision)
    minus_100 = lambda *args: shift_mask(*args).clamp(min=-100.0)  # noqa: E731
    monkeypatch.setattr(gvtnet.model, "shift_mask", minus_100)
    assert torch.equal(gvtnet.super_resolve(model, x, precision=precision), ours)


def test_drop_path_drops_whole_samples_while_training_only():
    x = torch.rand(2000, 3, 4) + 0.5
    torch.manual_seed(0)
    out = drop_path(x, 0.25, training=True)
    kept = (out != 0).flatten(1)
    assert torch.equal(kept.all(1), kept.any(1))  # each sample is kept or dropped whole
    assert torch.allclose(out[kept.all(1)], x[kept.all(1)] / 0.75)  # and the kept ones rescaled
    assert abs(kept.all(1).float().mean().item() - 0.75) < 0.04
    assert drop_path(x, 0.25, training=False) is x and drop_path(x, 0.0, training=True) is x
