"""Opt-in capture of what the graph and attention layers computed, for analysis.

    with capture(model) as cap:
        sr = model(lr)
    cap.groups[g][0]["adjacency"]   # (B, heads, 64, 64) 0/1, before self-loops ('window' scope:
                                    # (B, nW, heads, 64, 64), one graph per window)
    cap.blocks[i]["attention"]      # (B, nW, heads, 64, 64) softmax
    cap.blocks[i]["attention_graph"]  # graph blocks: after the adjacency is applied

Capture one forward pass per context. Outside the context the model runs its normal (fused) path and
records nothing.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from .model import GVTNet


@dataclass
class Capture:
    """groups[g]: one dict per adjacency computed in group g, i.e. per roll ('shift', 'size',
    'node_features' (B, heads, n, m), 'distance' and 'adjacency' (B, heads, n, n); under graph_scope
    'window' each has a window axis after B: (B, nW, heads, n, d) and (B, nW, heads, n, n)); blocks: one
    dict per block, in order ('group', 'block', 'kind', 'shift', 'attention' and 'attention_graph'
    (B, nW, heads, n, n)); size: the padded LR size."""

    groups: list[list[dict]] = field(default_factory=list)
    blocks: list[dict] = field(default_factory=list)
    size: tuple[int, int] | None = None


@contextlib.contextmanager
def capture(model: GVTNet):
    cap = Capture()
    records = []
    for g, group in enumerate(model.layers):
        group.record = []
        for b, blk in enumerate(group.blocks):
            blk.attn.record = []
            records.append((g, b, blk))
    try:
        yield cap
    finally:
        for group in model.layers:
            cap.groups.append(group.record)
            if group.record and cap.size is None:
                cap.size = group.record[0]["size"]
            group.record = None
        for g, b, blk in records:
            for rec in blk.attn.record:
                cap.blocks.append({"group": g, "block": b, "kind": blk.kind, **rec})
            blk.attn.record = None
