"""`inspect(model, lr)`: one forward pass of a GVTNet (or its SwinIR baseline) with everything the analysis
needs captured as numpy arrays, together with the geometry that places each patch node on the face.

Geometry of the strided (GVT) layout: the padded LR map (H, W) is cut into a grid x grid array of blocks
of (H/grid) x (W/grid) pixels; node n = j*grid + i is block (j, i) of the map ROLLED by (-shift, -shift),
so in LR coordinates it covers rows (j*H/grid + r + shift) mod H, r < H/grid, and columns likewise.
The s x s HR pixels of LR pixel (r, c) start at (r*s, c*s).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gvtnet.capture import capture


@dataclass
class GroupGraph:
    """The patch graph of one residual group.

    adjacency: (heads, n, n) bool, directed: adjacency[h, p, q] = node p may attend to node q. Under the
        released rule the diagonal is already True (D[p, p] = 0 < T * rowmax); the model then adds the
        identity on top, so a node's attention to itself is weighted 2.
    distance: (heads, n, n) float32; node_features: (heads, n, m) float32.
    node_map: (h, w) int, the node covering each LR pixel; centres_lr / centres_hr: (n, 2) float (row, col)
        pixel coordinates of each node's block centre (a block that wraps round the border is placed at its
        unwrapped position mod H, W, i.e. on the border).
    """

    shift: int
    adjacency: np.ndarray
    distance: np.ndarray
    node_features: np.ndarray
    node_map: np.ndarray
    centres_lr: np.ndarray
    centres_hr: np.ndarray


@dataclass
class BlockAttention:
    """Attention of one block: attention (nW, heads, n, n) softmax rows (query token -> key token);
    attention_graph the same after the adjacency (graph blocks; None for Swin-type blocks)."""

    group: int
    block: int
    kind: str
    shift: int
    attention: np.ndarray
    attention_graph: np.ndarray | None


@dataclass
class Inspection:
    """What `inspect` returns. sr: (1, 3, s*h, s*w) tensor, exactly model(lr); lr_size (h, w); padded_size
    (H, W) the size the blocks saw; layout 'strided' | 'contiguous'; groups empty for models without
    graph blocks."""

    lr: torch.Tensor
    sr: torch.Tensor
    scale: int
    lr_size: tuple[int, int]
    padded_size: tuple[int, int]
    window_size: int
    num_heads: int
    layout: str
    groups: list[GroupGraph]
    blocks: list[BlockAttention]

    def block(self, group: int, block: int) -> BlockAttention:
        return next(b for b in self.blocks if b.group == group and b.block == block)

    def blocks_of(self, group: int) -> list[BlockAttention]:
        return [b for b in self.blocks if b.group == group]

    def hr_node_map(self, group: int) -> np.ndarray:
        """(s*h, s*w) int: the node whose LR pixel each HR pixel comes from."""
        s = self.scale
        return self.groups[group].node_map.repeat(s, axis=0).repeat(s, axis=1)


def node_index_map(padded: tuple[int, int], shift: int, grid: int = 8) -> np.ndarray:
    """(H, W) int map: the node n = j*grid + i that covers each pixel of the padded map (see module doc)."""
    hgt, wid = padded
    rows = ((np.arange(hgt) - shift) % hgt) // (hgt // grid)
    cols = ((np.arange(wid) - shift) % wid) // (wid // grid)
    return rows[:, None] * grid + cols[None, :]


def node_centres(padded: tuple[int, int], shift: int, grid: int = 8) -> np.ndarray:
    """(grid*grid, 2) float (row, col) LR pixel coordinates of each node's block centre."""
    bh, bw = padded[0] // grid, padded[1] // grid
    j, i = np.divmod(np.arange(grid * grid), grid)
    rows = (j * bh + shift + (bh - 1) / 2) % padded[0]
    cols = (i * bw + shift + (bw - 1) / 2) % padded[1]
    return np.stack([rows, cols], axis=1)


def lr_to_hr(points: np.ndarray, scale: int) -> np.ndarray:
    """LR pixel coordinates -> HR pixel coordinates of the same point (pixel centres map to centres)."""
    return (points + 0.5) * scale - 0.5


@torch.no_grad()
def inspect(model: torch.nn.Module, lr: torch.Tensor) -> Inspection:
    """Run `model` (a GVTNet) on one LR face (1, 3, h, w) in [0, 1] and capture its graphs and attention.
    The output is the model's own: capture only records, it does not change the computation."""
    if lr.ndim != 4 or lr.shape[0] != 1:
        raise ValueError(f"inspect takes one face, (1, 3, h, w); got {tuple(lr.shape)}")
    cfg = model.cfg
    with capture(model) as cap:
        sr = model(lr)
    h, w = lr.shape[-2:]
    padded = model.padded_size(h, w)
    groups = []
    for records in cap.groups:
        if not records:
            continue
        rec = records[0]  # one roll per group under the released shift rule
        centres = node_centres(padded, rec["shift"], cfg.window_size)
        groups.append(GroupGraph(
            shift=rec["shift"],
            adjacency=rec["adjacency"][0].cpu().numpy() > 0.5,
            distance=rec["distance"][0].float().cpu().numpy(),
            node_features=rec["node_features"][0].float().cpu().numpy(),
            node_map=node_index_map(padded, rec["shift"], cfg.window_size)[:h, :w],
            centres_lr=centres,
            centres_hr=lr_to_hr(centres, cfg.upscale),
        ))
    blocks = [
        BlockAttention(
            group=b["group"], block=b["block"], kind=b["kind"], shift=b["shift"],
            attention=b["attention"][0].float().cpu().numpy(),
            attention_graph=b["attention_graph"][0].float().cpu().numpy() if b["kind"] == "G" else None,
        )
        for b in cap.blocks
    ]
    return Inspection(lr=lr, sr=sr, scale=cfg.upscale, lr_size=(h, w), padded_size=padded,
                      window_size=cfg.window_size, num_heads=cfg.num_heads, layout=cfg.window_layout,
                      groups=groups, blocks=blocks)
