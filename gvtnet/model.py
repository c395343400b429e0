"""GVTNet (Graph Vision Transformer for face super-resolution) and its SwinIR baseline, in one file.

One configurable network: `GVTNetConfig` selects between the authors' released computation, the
paper's text, its ablations and the plain SwinIR baseline. Feature maps flow as (B, H, W, C) tensors, so
that a conv on them is a free `permute` to channels-last and no (B, L, C) reshapes are needed.

Every module reports its own cost with `flops(h, w)`: floating-point operations (2 per multiply-add) of
one forward pass on an h x w low-resolution input, counting convolutions, linear layers and attention
matmuls (not norms or activations), as SwinIR does.
"""
from __future__ import annotations

import copy
import functools
import itertools
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .adjacency import DISTANCE_BASES, NEIGHBOUR_RULES, adjacency, node_features
from .compat import conv_runs_onednn, pack_conv2d, pack_linear, packed_conv2d, packed_linear

CELEBA_MEAN = (0.5430, 0.4217, 0.3605)  # the released GVTNet's input mean
SWINIR_MEAN = (0.4488, 0.4371, 0.4040)  # SwinIR's (DIV2K) input mean
GRAPH_SCOPES = ("group", "window")


@dataclass(frozen=True)
class GraphSettings:
    """Graph settings a trained GVTNet can run under without retraining (`GVTNet.variant`), as one value;
    a field left None keeps the model's own."""

    threshold: float | None = None
    minkowski_p: float | None = None
    neighbour_rule: Literal["released", "paper"] | None = None
    graph_scope: Literal["group", "window"] | None = None
    use_graph: bool | None = None  # False: every edge kept (the identity still added)

    def changes(self) -> dict:
        """{config field: value} of the fields set."""
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class GVTNetConfig:
    """Everything that defines a network. Defaults are the released GVTNet at x4."""

    upscale: int = 4
    embed_dim: int = 180
    depths: tuple[int, ...] = (6, 6, 6, 6, 6, 6)
    num_heads: int = 6
    window_size: int = 8
    mlp_ratio: float = 2.0
    drop_path_rate: float = 0.1
    rgb_mean: tuple[float, float, float] = CELEBA_MEAN
    # Block kinds, repeated along each group: 'S' Swin-type window attention, 'G' graph attention.
    block_pattern: str = "SG"
    # 'strided': released windows, each spanning the whole face (token (j, i) = grid block (j, i)), with
    # heads as interleaved channels; 'contiguous': Swin's local windows, heads as channel blocks.
    window_layout: Literal["strided", "contiguous"] = "strided"
    # 'per_group': the released rule (group g shifts by 0, ws-2, 0, ws-4, ...); 'alternate': Swin's
    # (block b of every group shifts by 0 when b is even, ws/2 when odd).
    shift_rule: Literal["per_group", "alternate"] = "per_group"
    # q/k/v and output projection: depthwise 3x3 + pointwise conv (released) or a Linear layer (Swin).
    dwconv: bool = True
    # The graph layer.
    threshold: float = 0.85
    minkowski_p: float = 2.0
    neighbour_rule: Literal["released", "paper"] = "released"
    distance_basis: Literal["gram", "features"] = "gram"
    # 'post_softmax': softmax(qk + bias) * A (released); 'mask': softmax over neighbours only.
    adjacency_mode: Literal["post_softmax", "mask"] = "post_softmax"
    graph_qk_scale: bool = False  # scale q by head_dim^-0.5 in the graph layer (the paper's text)
    # False switches the graph off at inference: every edge kept (the identity is still added, as
    # released), so the same weights can be seen with and without their graph.
    use_graph: bool = True
    # 'group' (released): one graph per group and head from the 8x8 grid blocks, shared by every window;
    # 'window' (the paper's text read literally): each window's own graph over its own tokens, from each
    # token's per-head channel vector (the heads as the attention splits them).
    graph_scope: Literal["group", "window"] = "group"
    # Reconstruction: 'pixelshuffle' (conv to 64 channels, log2(s) x [conv, shuffle 2], conv) or
    # 'pixelshuffledirect' (one conv and one shuffle, SwinIR's lightweight head).
    upsampler: Literal["pixelshuffle", "pixelshuffledirect"] = "pixelshuffle"
    bicubic_skip: bool = False  # add the bicubic upscale of the input, so the network learns a residual

    def __post_init__(self):
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not a multiple of num_heads {self.num_heads}")
        if set(self.block_pattern) - {"S", "G"} or not self.block_pattern:
            raise ValueError(f"block_pattern must be a string of 'S' and 'G', got {self.block_pattern!r}")
        if self.upscale & (self.upscale - 1) or self.upscale < 2:
            raise ValueError(f"upscale must be a power of two, got {self.upscale}")
        if self.neighbour_rule not in NEIGHBOUR_RULES or self.distance_basis not in DISTANCE_BASES:
            raise ValueError("unknown neighbour_rule or distance_basis")
        if self.graph_scope not in GRAPH_SCOPES:
            raise ValueError(f"graph_scope must be one of {GRAPH_SCOPES}, got {self.graph_scope!r}")
        if any(self.shift(g, 0) < 0 for g in range(len(self.depths))):
            raise ValueError("the per-group shift rule supports at most window_size groups")

    def kind(self, block: int) -> str:
        return self.block_pattern[block % len(self.block_pattern)]

    @property
    def has_graph(self) -> bool:
        """Whether any block is a graph block (the pattern repeats along each group, from its first block)."""
        return "G" in self.block_pattern[: max(self.depths)]

    def shift(self, group: int, block: int) -> int:
        """Cyclic shift of a block's attention, before any reduction for small inputs."""
        if self.shift_rule == "alternate":
            return self.window_size // 2 if block % 2 else 0
        return self.window_size - group - 1 if group % 2 else 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GVTNetConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown config fields: {sorted(unknown)}")
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**d)


# ----------------------------------------------------------------------------------------------------
# Window geometry


def to_windows(x: torch.Tensor, ws: int, layout: str, heads: int, parts: int = 1,
               heads_interleaved: bool | None = None) -> torch.Tensor:
    """(B, H, W, parts*C) -> (parts, B, nW, heads, ws*ws, C/heads), contiguous, in a single copy.

    'contiguous' (Swin): window k = (k // (W/ws), k % (W/ws)) holds ws x ws neighbouring pixels, token t
    row-major inside it; the channels of each part are `heads` consecutive blocks. 'strided' (released):
    token t = (j, i) is grid block (j, i) of (H/ws) x (W/ws) pixels, window k = (h, w) takes the pixel at
    offset (h, w) inside every block, and heads are interleaved (channel j*heads + head), as the released
    code splits them; gathering them here is free, as the copy is made anyway.
    heads_interleaved overrides the layout's own head order (a snapshot's q/k/v: WindowAttention.group_heads).
    """
    b, h, w, c = x.shape
    d = c // parts // heads
    interleaved = layout == "strided" if heads_interleaved is None else heads_interleaved
    channels, head, chan = ((d, heads), 7, 6) if interleaved else ((heads, d), 6, 7)
    if layout == "strided":
        x = x.view(b, ws, h // ws, ws, w // ws, parts, *channels).permute(5, 0, 2, 4, head, 1, 3, chan)
    else:
        x = x.view(b, h // ws, ws, w // ws, ws, parts, *channels).permute(5, 0, 1, 3, head, 2, 4, chan)
    return x.reshape(parts, b, (h // ws) * (w // ws), heads, ws * ws, d)


def from_windows(x: torch.Tensor, h: int, w: int, layout: str) -> torch.Tensor:
    """Inverse of `to_windows` for one part: (B, nW, heads, ws*ws, d) -> (B, H, W, C), heads interleaved
    again for 'strided'."""
    b, _, heads, n, d = x.shape
    ws = math.isqrt(n)
    x = x.view(b, h // ws, w // ws, heads, ws, ws, d)
    if layout == "strided":
        x = x.permute(0, 4, 1, 5, 2, 6, 3)
    else:
        x = x.permute(0, 1, 4, 2, 5, 3, 6)
    return x.reshape(b, h, w, heads * d)


@functools.lru_cache(maxsize=64)
def shift_mask(h: int, w: int, ws: int, shift: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Swin's shifted-window mask, (nW, ws*ws, ws*ws) of 0 / -inf: the 3 x 3 roll regions of an h x w map,
    labelled and partitioned into CONTIGUOUS windows. The released code applies it, as it is, to its
    strided windows (window k gets row k), which is what `GVTNet` does for the strided layout too.
    Swin and the released code mask with -100 instead of -inf. exp(-100) is a denormal float, which x86
    computes several times slower: softmax took 7x as long on masked scores (docs/PERFORMANCE.md). The
    weights -100 leaves, under 4e-44, are below any output's last bit; -inf makes them exact zeros.
    Cached per device (building it costs as much as a block at 32x32), so that every call returns the same
    tensor, which `WindowAttention.bias` keeps: the result is shared, never modify it."""
    labels = torch.zeros(h, w, device=device)
    cuts = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    for n, (rows, cols) in enumerate((r, c) for r in cuts for c in cuts):
        labels[rows, cols] = n
    windows = to_windows(labels.view(1, h, w, 1), ws, "contiguous", heads=1)[0, 0, :, 0, :, 0]
    diff = windows.unsqueeze(1) - windows.unsqueeze(2)
    return torch.zeros_like(diff).masked_fill(diff != 0, float("-inf"))


def cyclic_shift(x: torch.Tensor, shift: int) -> torch.Tensor:
    """(B, H, W, C) rolled by `shift` pixels along H and W (negative: towards the origin), i.e.
    `torch.roll(x, (shift, shift), (1, 2))`, as one gather of pixels instead of torch.roll's copy per
    dimension (part of the one-face speed-up in docs/PERFORMANCE.md)."""
    b, h, w, c = x.shape
    return x.reshape(b, h * w, c).index_select(1, _shift_index(h, w, shift, x.device)).view(b, h, w, c)


@functools.lru_cache(maxsize=64)
def _shift_index(h: int, w: int, shift: int, device: torch.device) -> torch.Tensor:
    with torch.inference_mode(False):  # an ordinary tensor, which autograd may save for backward
        return torch.roll(torch.arange(h * w, device=device).view(h, w), (shift, shift), (0, 1)).flatten()


def relative_position_index(ws: int) -> torch.Tensor:
    """(ws*ws, ws*ws) index into a ((2ws-1)^2, heads) bias table, as in Swin."""
    coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (ws - 1)
    return rel[..., 0] * (2 * ws - 1) + rel[..., 1]


# ----------------------------------------------------------------------------------------------------
# Linear layers and convolutions, which on a snapshot run through weights packed for oneDNN

_MISSING = object()


def kept_entry(kept: dict, key, make: Callable[[], torch.Tensor | None]) -> torch.Tensor | None:
    """kept[key], made by `make()` the first time: what a snapshot keeps per input size (biases, packed
    weights, or None for a size a convolution runs unpacked). At most 16 entries (faces of many sizes, a
    photo: bounded, and the common sizes come back). A dict's get and set are atomic, so threads sharing a
    snapshot each read a complete entry."""
    value = kept.get(key, _MISSING)
    if value is _MISSING:
        if len(kept) >= 16:
            kept.clear()
        value = kept[key] = make()
    return value


def runs_packed(x: torch.Tensor, packed: dict | None, dtype: torch.dtype) -> bool:
    """Whether a layer with `packed` weights of `dtype` (a dict, which `gvtnet.freeze` gives a snapshot's
    layers) runs x through them: where x takes no gradient and runs in that dtype, as it is or cast by
    autocast."""
    if packed is None or (x.requires_grad and torch.is_grad_enabled()):
        return False
    device = x.device.type
    return (torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype) == dtype


def packed_caches(model: nn.Module) -> list[dict]:
    """The dicts of packed weights of `model`'s layers (none unless it is a snapshot)."""
    return [m.packed for m in model.modules() if getattr(m, "packed", None) is not None]


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, packed: dict | None) -> torch.Tensor:
    """F.linear(x, weight, bias); on a bf16 snapshot through the weight packed once for oneDNN
    (gvtnet.compat): the same bits, faster. Only for contiguous x: F.linear sums a strided input in another
    order."""
    if not (runs_packed(x, packed, weight.dtype) and x.is_contiguous()):
        return F.linear(x, weight, bias)
    return packed_linear(x, kept_entry(packed, "weight", lambda: pack_linear(weight)), bias)


class Conv2d(nn.Conv2d):
    """nn.Conv2d that on a snapshot runs through its weight packed for oneDNN, once per input shape
    (gvtnet.compat), where F.conv2d would run oneDNN too: the same bits as F.conv2d, for the channels-last
    maps the model passes it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.packed: dict | None = None  # set by gvtnet.freeze

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (runs_packed(x, self.packed, self.weight.dtype) and x.is_contiguous(memory_format=torch.channels_last)):
            return super().forward(x)
        packed = kept_entry(self.packed, x.shape,
                            lambda: pack_conv2d(self, x.shape) if conv_runs_onednn(self, x.shape) else None)
        return super().forward(x) if packed is None else packed_conv2d(x, packed, self)


# ----------------------------------------------------------------------------------------------------
# Modules


class SeparableConv(nn.Module):
    """Depthwise 3x3 conv then pointwise (1x1) conv, on (B, H, W, C) maps."""

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.depthwise = Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.pointwise = nn.Conv2d(dim, out_dim, 1)  # its weights, run as a linear layer on (B, H, W, C)
        self.packed: dict | None = None  # set by gvtnet.freeze (bf16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.depthwise(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return linear(y, self.pointwise.weight.flatten(1), self.pointwise.bias, self.packed)

    def flops(self, h: int, w: int) -> int:
        c, o = self.pointwise.in_channels, self.pointwise.out_channels
        return 2 * h * w * (9 * c + c * o)


class Projection(nn.Linear):
    """A Linear layer (Swin's q/k/v and output projection, the MLP's), with the FLOPs of a (B, H, W, C) map."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__(in_features, out_features)
        self.packed: dict | None = None  # set by gvtnet.freeze (bf16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias, self.packed)

    def flops(self, h: int, w: int) -> int:
        return 2 * h * w * self.in_features * self.out_features


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows, with a relative-position bias.

    kind 'S' (the paper's STL): softmax(q k^T / sqrt(d) + bias + shift mask) v.
    kind 'G' (GVT layer): softmax(q k^T + bias) * A, then @ v, with A the group's adjacency (released), or
    with mode 'mask' a softmax over the neighbours only.
    Input and output (B, H, W, C), already rolled; H, W multiples of the window size.
    """

    def __init__(self, cfg: GVTNetConfig, kind: str):
        super().__init__()
        dim, ws = cfg.embed_dim, cfg.window_size
        self.kind, self.dim, self.num_heads, self.window_size = kind, dim, cfg.num_heads, ws
        self.layout = cfg.window_layout
        self.apply_graph_settings(cfg)
        proj = SeparableConv if cfg.dwconv else Projection
        self.qkv = proj(dim, 3 * dim)
        self.proj = proj(dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, cfg.num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(ws), persistent=False)
        self.record: list | None = None  # set by `capture` to collect attention maps
        self.heads_interleaved = self.layout == "strided"  # the q/k/v rows' head order (see group_heads)
        # Set by `gvtnet.inference.freeze` on a snapshot whose weights never change: (h, w, dtype) of the
        # input and scores -> bias + shift mask. Within one block the size fixes the mask (its shift is fixed).
        self.frozen_biases: dict[tuple[int, int, torch.dtype], torch.Tensor] | None = None

    def apply_graph_settings(self, cfg: GVTNetConfig) -> None:
        """Take the graph settings (GVTNet.GRAPH_FIELDS) of `cfg`; the weights stay."""
        self.adjacency_mode = cfg.adjacency_mode
        self.scale = (self.dim // self.num_heads) ** -0.5 if self.kind == "S" or cfg.graph_qk_scale else 1.0

    def group_heads(self) -> None:
        """Reorder the q/k/v layer's output rows, in place, so that each head's channels are consecutive
        instead of interleaved (the strided layout's order): for a snapshot's own copy of the weights
        (gvtnet.freeze). Each output channel is the same dot product as before, so the forward pass gives
        the same bits, and the window copy of q/k/v moves runs of C/heads channels instead of single
        ones (about 2% of an official-x8 face; docs/PERFORMANCE.md). The gradient to the input sums the rows in
        another order (LAM's maps move by float error; in bf16 where it is emulated, an AVX2 CPU, by 0.2% of
        a map's largest value). state_dict() still gives the released order."""
        if not self.heads_interleaved:
            return
        _, layer = self.qkv_rows_layer()
        rows = grouped_head_rows(self.dim, self.num_heads)
        with torch.no_grad():
            for p in (layer.weight, layer.bias):
                p.copy_(p[rows])
        self.heads_interleaved = False
        self.register_state_dict_post_hook(_interleave_head_rows)

    def qkv_rows_layer(self) -> tuple[str, nn.Module]:
        """The layer whose output rows are q, k and v, and its name under this module."""
        return ("qkv.pointwise", self.qkv.pointwise) if isinstance(self.qkv, SeparableConv) else ("qkv", self.qkv)

    def bias(self, mask: torch.Tensor | None = None, size: tuple[int, int] | None = None,
             dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Relative-position bias, (heads, n, n), plus a shift mask (nW, n, n) if given: (nW, heads, n, n), in
        `dtype` (the scores'). On a frozen snapshot it is gathered and cast once per input `size` (h, w) and
        dtype, and kept (`kept_entry`): at one small face these gathers and adds are a few percent of the
        forward pass. The kept tensors are never modified.
        Adding the mask first is exact, as it holds only 0 and -inf."""
        table, kept = self.relative_position_bias_table, self.frozen_biases
        if kept is None or size is None:
            return self._gather(table, mask).to(dtype)

        def make():
            with torch.no_grad(), torch.inference_mode(False):  # an ordinary tensor, usable with autograd
                return self._gather(table, mask).to(dtype)
        return kept_entry(kept, (*size, dtype), make)

    def _gather(self, table: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        n = self.window_size**2
        # contiguous: adding a permuted view to the scores takes twice as long
        bias = table[self.relative_position_index.view(-1)].view(n, n, -1).permute(2, 0, 1).contiguous()
        return bias if mask is None else bias + mask.to(bias.dtype).unsqueeze(1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, adj: torch.Tensor | None = None):
        """mask: (nW, n, n) additive shift mask or None ('S'); adj: adjacency with self-loops ('G'), one per
        group and head (B, heads, n, n) or one per window (B, nW, heads, n, n)."""
        b, h, w, c = x.shape
        qkv = self.qkv(x)
        q, k, v = to_windows(qkv, self.window_size, self.layout, self.num_heads, 3, self.heads_interleaved)
        q = q * self.scale if self.scale != 1.0 else q  # the released graph layer does not scale
        scores = q @ k.transpose(-2, -1)
        # Under bf16 autocast the scores stay bf16: an fp32 bias or adjacency would promote them, and every
        # pass over the largest tensor of the block (add, softmax, A, their backward) would move twice the
        # bytes and end in a cast back to bf16 for attn @ v (the app's x4 LAM ran 13% faster without those;
        # docs/PERFORMANCE.md).
        scores = scores + self.bias(mask if self.kind == "S" else None, (h, w), scores.dtype)
        if adj is not None:
            adj = (adj.unsqueeze(1) if adj.ndim == 4 else adj).to(scores.dtype)  # 4 dims: one graph for every window
        if self.kind == "G" and self.adjacency_mode == "mask":
            scores = scores.masked_fill(adj == 0, float("-inf"))
        attn = torch.softmax(scores, dim=-1)
        attn_graph = attn * adj if self.kind == "G" and self.adjacency_mode == "post_softmax" else attn
        if self.record is not None:
            self.record.append({"attention": attn.detach(), "attention_graph": attn_graph.detach()})
        return self.proj(from_windows(attn_graph @ v, h, w, self.layout))

    def flops(self, h: int, w: int) -> int:
        attn = 2 * 2 * h * w * self.window_size**2 * self.dim  # q k^T and attn v
        return self.qkv.flops(h, w) + attn + self.proj.flops(h, w)


def grouped_head_rows(dim: int, heads: int) -> torch.Tensor:
    """(3*dim,) order of q/k/v rows that takes interleaved heads (row j*heads + h of each part) to
    consecutive ones (row h*d + j), d = dim / heads: rows_grouped = rows[order]."""
    return torch.arange(3 * dim).view(3, dim // heads, heads).transpose(1, 2).flatten()


def _interleave_head_rows(attn: WindowAttention, state: dict, prefix: str, _metadata) -> None:
    """state_dict hook of a WindowAttention whose q/k/v rows `group_heads` reordered: the saved weights
    keep the released (interleaved) order."""
    name, _ = attn.qkv_rows_layer()
    back = torch.argsort(grouped_head_rows(attn.dim, attn.num_heads))
    for key in (f"{prefix}{name}.weight", f"{prefix}{name}.bias"):
        state[key] = state[key][back]


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = Projection(dim, hidden), Projection(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))

    def flops(self, h: int, w: int) -> int:
        return self.fc1.flops(h, w) + self.fc2.flops(h, w)


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth: the whole residual branch x dropped per sample with probability p while training."""
    if not training or p == 0:
        return x
    keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - p)
    return x * keep / (1 - p)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)) under a cyclic roll, then x + MLP(LN(x))."""

    def __init__(self, cfg: GVTNetConfig, kind: str, shift: int, drop_prob: float):
        super().__init__()
        self.kind, self.shift = kind, shift
        self.norm1 = nn.LayerNorm(cfg.embed_dim)
        self.attn = WindowAttention(cfg, kind)
        self.norm2 = nn.LayerNorm(cfg.embed_dim)
        self.mlp = Mlp(cfg.embed_dim, int(cfg.embed_dim * cfg.mlp_ratio))
        self.drop_prob = drop_prob

    def forward(self, x, shift: int, mask=None, adj=None):
        y = self.norm1(x)
        if shift:
            y = cyclic_shift(y, -shift)
        y = self.attn(y, mask, adj)
        if self.attn.record:
            self.attn.record[-1]["shift"] = shift
        if shift:
            y = cyclic_shift(y, shift)
        x = x + drop_path(y, self.drop_prob, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.drop_prob, self.training)

    def flops(self, h: int, w: int) -> int:
        return self.attn.flops(h, w) + self.mlp.flops(h, w)


class Group(nn.Module):
    """A residual group (SwinIR's RSTB): blocks, a 3x3 conv, and a skip over both. Its graph blocks share
    one adjacency per roll, computed from the group's input (detached: the graph gets no gradient)."""

    def __init__(self, cfg: GVTNetConfig, index: int, drop_probs: list[float]):
        super().__init__()
        self.apply_graph_settings(cfg)
        self.blocks = nn.ModuleList(
            Block(cfg, cfg.kind(b), cfg.shift(index, b), p) for b, p in enumerate(drop_probs)
        )
        self.conv = Conv2d(cfg.embed_dim, cfg.embed_dim, 3, padding=1)
        self.record: list | None = None  # set by `capture` to collect adjacencies

    def apply_graph_settings(self, cfg: GVTNetConfig) -> None:
        """Take the graph settings (GVTNet.GRAPH_FIELDS) of `cfg`; the weights stay."""
        self.cfg = cfg

    def graph(self, x: torch.Tensor, shift: int) -> torch.Tensor:
        """Adjacency with self-loops of the group input rolled by `shift`: (B, heads, n, n) for the 'group'
        scope, (B, nW, heads, n, n) for 'window' (window k's graph from its own tokens' vectors)."""
        cfg = self.cfg
        x = cyclic_shift(x, -shift) if shift else x
        if cfg.graph_scope == "window":
            z = to_windows(x.detach(), cfg.window_size, cfg.window_layout, cfg.num_heads)[0]  # (B, nW, heads, n, d)
        else:
            z = node_features(x.detach(), cfg.num_heads, cfg.window_size)
        adj, dist = adjacency(z, cfg.threshold, cfg.minkowski_p, cfg.neighbour_rule, cfg.distance_basis)
        if not cfg.use_graph:
            adj = torch.ones_like(adj)
        if self.record is not None:
            self.record.append({"shift": shift, "size": tuple(x.shape[1:3]), "node_features": z,
                                "distance": dist, "adjacency": adj})
        return adj + torch.eye(adj.shape[-1], dtype=adj.dtype, device=adj.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        ws = self.cfg.window_size
        graphs = {}
        y = x
        for blk in self.blocks:
            # Inputs no larger than a window are not shifted (as in Swin and the released code).
            shift = blk.shift if min(h, w) > ws else 0
            mask = adj = None
            if blk.kind == "S" and shift:
                mask = shift_mask(h, w, ws, shift, x.device)
            if blk.kind == "G":
                if shift not in graphs:
                    graphs[shift] = self.graph(x, shift)
                adj = graphs[shift]
            y = blk(y, shift, mask, adj)
        y = self.conv(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return y + x

    def flops(self, h: int, w: int) -> int:
        c = self.cfg.embed_dim
        return sum(blk.flops(h, w) for blk in self.blocks) + 2 * h * w * 9 * c * c


class Upsampler(nn.Module):
    """Reconstruction head: features (B, C, h, w) -> image (B, 3, s*h, s*w)."""

    def __init__(self, cfg: GVTNetConfig, num_feat: int = 64):
        super().__init__()
        self.kind, self.scale, c = cfg.upsampler, cfg.upscale, cfg.embed_dim
        if self.kind == "pixelshuffle":
            self.conv_before_upsample = nn.Sequential(Conv2d(c, num_feat, 3, padding=1), nn.LeakyReLU())
            steps = []
            for _ in range(int(math.log2(self.scale))):
                steps += [Conv2d(num_feat, 4 * num_feat, 3, padding=1), nn.PixelShuffle(2)]
            self.upsample = nn.Sequential(*steps)
            self.conv_last = Conv2d(num_feat, 3, 3, padding=1)
        else:
            self.upsample = nn.Sequential(Conv2d(c, 3 * self.scale**2, 3, padding=1), nn.PixelShuffle(self.scale))

    def forward(self, x):
        if self.kind == "pixelshuffle":
            return self.conv_last(self.upsample(self.conv_before_upsample(x)))
        return self.upsample(x)

    def flops(self, h: int, w: int) -> int:
        total = 0
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                total += 2 * h * w * m.in_channels * m.out_channels * 9
                if m.out_channels == 4 * m.in_channels and self.kind == "pixelshuffle":
                    h, w = 2 * h, 2 * w  # the shuffle after this conv doubles the resolution
        return total


class GVTNet(nn.Module):
    """Image in [0, 1], (B, 3, h, w) of any size -> (B, 3, s*h, s*w). Inputs are mirror-padded to a multiple
    of the window size (and of its grid, for strided windows) and the output cropped back, as in SwinIR."""

    def __init__(self, cfg: GVTNetConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.embed_dim
        self.register_buffer("mean", torch.tensor(cfg.rgb_mean).view(1, 3, 1, 1), persistent=False)
        self.conv_first = Conv2d(3, c, 3, padding=1)
        self.embed_norm = nn.LayerNorm(c)
        dpr = torch.linspace(0, cfg.drop_path_rate, sum(cfg.depths), device="cpu").tolist()
        starts = [sum(cfg.depths[:g]) for g in range(len(cfg.depths))]
        self.layers = nn.ModuleList(
            Group(cfg, g, dpr[s : s + d]) for g, (s, d) in enumerate(zip(starts, cfg.depths))
        )
        self.norm = nn.LayerNorm(c)
        self.conv_after_body = Conv2d(c, c, 3, padding=1)
        self.upsampler = Upsampler(cfg)
        self.apply(self._init_weights)
        if cfg.bicubic_skip:  # start as plain bicubic and learn the residual from there
            last = [m for m in self.upsampler.modules() if isinstance(m, nn.Conv2d)][-1]
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        # Features are kept channels-last (they are (B, H, W, C) tensors between convs); conv weights in
        # the same format spare oneDNN a weight reorder on every call.
        self.to(memory_format=torch.channels_last)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    # Config fields that change what the network computes but not its weights.
    GRAPH_FIELDS = ("threshold", "minkowski_p", "neighbour_rule", "distance_basis", "adjacency_mode",
                    "graph_qk_scale", "use_graph", "graph_scope")

    def variant(self, settings: GraphSettings | None = None, **changes) -> GVTNet:
        """The same weights (shared, not copied) under other graph settings: a `GraphSettings` and/or any of
        GRAPH_FIELDS, e.g. `variant(threshold=0.6)`. The original is untouched, so concurrent users of one
        model can each try their own. A copy of the modules only, sharing every tensor: nothing is built or
        initialised anew, so a new threshold costs little."""
        changes = (settings.changes() if settings is not None else {}) | changes
        if set(changes) - set(self.GRAPH_FIELDS):
            raise ValueError(f"only {self.GRAPH_FIELDS} can change without retraining")
        shared = {id(t): t for t in itertools.chain(self.parameters(), self.buffers(), packed_caches(self))}
        other = copy.deepcopy(self, shared)
        other.cfg = replace(self.cfg, **changes)
        for m in other.modules():
            if hasattr(m, "apply_graph_settings"):
                m.apply_graph_settings(other.cfg)
        return other.train(self.training)

    def padded_size(self, h: int, w: int) -> tuple[int, int]:
        ws = self.cfg.window_size
        return -(-h // ws) * ws, -(-w // ws) * ws

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) shallow features -> deep features of the same shape."""
        y = self.embed_norm(x.permute(0, 2, 3, 1))
        for layer in self.layers:
            y = layer(y)
        return self.norm(y).permute(0, 3, 1, 2)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        ph, pw = self.padded_size(h, w)
        x = img - self.mean
        if (ph, pw) != (h, w):
            # mirror padding needs a border smaller than the image; tiny inputs repeat their edge instead
            mode = "reflect" if ph - h < h and pw - w < w else "replicate"
            x = F.pad(x, (0, pw - w, 0, ph - h), mode=mode)
        x = self.conv_first(x.contiguous(memory_format=torch.channels_last))
        x = self.conv_after_body(self.forward_features(x)) + x
        out = self.upsampler(x)[..., : h * self.cfg.upscale, : w * self.cfg.upscale]
        if self.cfg.bicubic_skip:
            return out + F.interpolate(img, scale_factor=self.cfg.upscale, mode="bicubic", align_corners=False)
        return out + self.mean

    def flops(self, h: int, w: int) -> int:
        """FLOPs of one forward pass on an h x w input (after padding to the window grid)."""
        h, w = self.padded_size(h, w)
        c = self.cfg.embed_dim
        convs = 2 * h * w * 9 * (3 * c + c * c)  # conv_first, conv_after_body
        return convs + sum(g.flops(h, w) for g in self.layers) + self.upsampler.flops(h, w)
