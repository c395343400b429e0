"""`inspect(model, lr)`: one forward pass of a GVTNet (or its SwinIR baseline) with everything the analysis
needs captured as numpy arrays, together with the geometry that places each patch node and each attention
window on the face.

Geometry. A block of group g rolls the padded LR map (H, W) by (-shift, -shift), then cuts it into
windows of ws x ws = n tokens. Strided layout (GVT): the rolled map is a ws x ws grid of blocks of
(H/ws) x (W/ws) pixels; token t = j*ws + i of window k = a*(W/ws) + b is the pixel at offset (a, b) inside
grid block (j, i), so every window spans the whole face with one pixel per block. Contiguous layout
(Swin): window k is the k-th ws x ws tile, token t its pixel (j, i). Rolled pixel (r, c) is LR pixel
((r + shift) mod H, (c + shift) mod W). The released graph ('group' scope) has one node per grid block,
node n = block n; its graph is shared by every window, where it links token p to token q. Under 'window'
scope each window has its own graph over its own tokens. The s x s HR pixels of LR pixel (r, c) start at
(r*s, c*s). Pixels with r >= h or c >= w are mirror padding: part of the computation, not of the face.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gvtnet.capture import capture


@dataclass
class GroupGraph:
    """The patch graph of one residual group at one roll.

    scope 'group': adjacency (heads, n, n) bool, directed: adjacency[h, p, q] = node p may attend to node q;
        distance the same shape (float32); node_features (heads, n, m), m pixels per grid block.
    scope 'window': one graph per window: adjacency and distance (nW, heads, n, n), node_features
        (nW, heads, n, d), each token's per-head channels.
    Under the released rule the diagonal is already True (D[p, p] = 0 < T * rowmax); the model then adds
    the identity on top, so a node's attention to itself is weighted 2.
    node_map: (h, w) int, the grid-block node covering each visible LR pixel; centres_lr / centres_hr:
    (n, 2) float (row, col) of each grid block's centre as seen on the face (the centre of its largest
    visible piece, for a block that wraps round the roll's seam), NaN for a block wholly in the padding.
    """

    group: int
    shift: int
    scope: str
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
    (H, W) the size the blocks saw; layout 'strided' | 'contiguous'; scope the graph scope; num_groups the
    model's residual groups; graphs: {(group, shift): GroupGraph}, one per roll of every group that has
    graph blocks (empty for SwinIR); blocks: every block's attention, in order."""

    lr: torch.Tensor
    sr: torch.Tensor
    scale: int
    lr_size: tuple[int, int]
    padded_size: tuple[int, int]
    window_size: int
    num_heads: int
    layout: str
    scope: str
    num_groups: int
    graphs: dict[tuple[int, int], GroupGraph]
    blocks: list[BlockAttention]

    @property
    def groups(self) -> list[GroupGraph | None]:
        """groups[g]: the graph of model group g's first graph block, None where group g has no graph block."""
        return [self.graph(g) if self.has_graph(g) else None for g in range(self.num_groups)]

    def has_graph(self, group: int) -> bool:
        return any(g == group for g, _ in self.graphs)

    def graph(self, group: int, shift: int | None = None) -> GroupGraph:
        """The graph of `group` at roll `shift` (default: the roll of the group's first graph block)."""
        shift = self.shift_of(group) if shift is None else shift
        if (group, shift) not in self.graphs:
            raise ValueError(f"group {group} has no graph at roll {shift}; graphs: {sorted(self.graphs)}")
        return self.graphs[group, shift]

    def shift_of(self, group: int) -> int:
        """The roll of the group's first graph block, else of its first block."""
        kinds = [b for b in self.blocks_of(group) if b.kind == "G"] or self.blocks_of(group)
        if not kinds:
            raise ValueError(f"the model has {self.num_groups} groups, not {group + 1}")
        return kinds[0].shift

    def block(self, group: int, block: int) -> BlockAttention:
        return next(b for b in self.blocks if b.group == group and b.block == block)

    def blocks_of(self, group: int) -> list[BlockAttention]:
        return [b for b in self.blocks if b.group == group]

    def hr_node_map(self, group: int) -> np.ndarray:
        """(s*h, s*w) int: the node whose LR pixel each HR pixel comes from."""
        s = self.scale
        return self.graph(group).node_map.repeat(s, axis=0).repeat(s, axis=1)

    # -- windows ----------------------------------------------------------------------------------------

    @property
    def num_windows(self) -> int:
        """Attention windows of the padded LR map (the same number in every group and layout)."""
        ws = self.window_size
        return (self.padded_size[0] // ws) * (self.padded_size[1] // ws)

    def window_at(self, group: int, row: int, col: int, shift: int | None = None) -> int:
        """The window that LR pixel (row, col) falls in, in `group`'s blocks (default roll: `shift_of`)."""
        return int(window_token(self._geometry(group, shift), row, col)[0])

    def token_at(self, group: int, row: int, col: int, shift: int | None = None) -> int:
        """The token (graph node) that LR pixel (row, col) is within its window."""
        return int(window_token(self._geometry(group, shift), row, col)[1])

    def window_pixels(self, group: int, window: int, shift: int | None = None) -> np.ndarray:
        """(n, 2) int: the padded-map LR (row, col) of each of the window's tokens, in token order
        (strided: one pixel in each grid block; contiguous: a ws x ws tile). Rows >= h or columns >= w are
        padding."""
        if not 0 <= window < self.num_windows:
            raise ValueError(f"window {window} is not one of the {self.num_windows} windows")
        return window_pixels(self._geometry(group, shift), window)

    def window_graph(self, group: int, window: int, shift: int | None = None) -> np.ndarray:
        """(heads, n, n) bool: the adjacency window `window` uses (for 'group' scope, the shared one)."""
        if not 0 <= window < self.num_windows:
            raise ValueError(f"window {window} is not one of the {self.num_windows} windows")
        gg = self.graph(group, shift)
        return gg.adjacency[window] if gg.scope == "window" else gg.adjacency

    def visible(self, pixels: np.ndarray) -> np.ndarray:
        """(k,) bool: which of (k, 2) LR pixels lie on the face rather than in the padding."""
        return (pixels[:, 0] < self.lr_size[0]) & (pixels[:, 1] < self.lr_size[1])

    def _geometry(self, group: int, shift: int | None) -> Geometry:
        return Geometry(self.padded_size, self.shift_of(group) if shift is None else shift, self.window_size,
                        self.layout)


@dataclass(frozen=True)
class Geometry:
    """The window partition of one roll: padded LR size (H, W), roll, window size and layout."""

    padded: tuple[int, int]
    shift: int
    ws: int
    layout: str


def window_token(geo: Geometry, row, col) -> tuple[np.ndarray, np.ndarray]:
    """(window, token) of LR pixels (row, col) of the padded map (ints or broadcastable int arrays)."""
    (hgt, wid), ws = geo.padded, geo.ws
    r, c = (np.asarray(row) - geo.shift) % hgt, (np.asarray(col) - geo.shift) % wid  # rolled coordinates
    if geo.layout == "strided":
        bh, bw = hgt // ws, wid // ws
        return (r % bh) * bw + c % bw, (r // bh) * ws + c // bw
    return (r // ws) * (wid // ws) + c // ws, (r % ws) * ws + c % ws


def window_pixels(geo: Geometry, window: int) -> np.ndarray:
    """(ws*ws, 2) int: LR (row, col) of window `window`'s tokens in token order (the inverse of
    `window_token`)."""
    (hgt, wid), ws = geo.padded, geo.ws
    j, i = np.divmod(np.arange(ws * ws), ws)
    if geo.layout == "strided":
        a, b = divmod(window, wid // ws)
        rows, cols = j * (hgt // ws) + a, i * (wid // ws) + b
    else:
        a, b = divmod(window, wid // ws)
        rows, cols = a * ws + j, b * ws + i
    return np.stack([(rows + geo.shift) % hgt, (cols + geo.shift) % wid], axis=1)


def node_index_map(padded: tuple[int, int], shift: int, grid: int = 8) -> np.ndarray:
    """(H, W) int map: the node n = j*grid + i that covers each pixel of the padded map (see module doc)."""
    hgt, wid = padded
    rows = ((np.arange(hgt) - shift) % hgt) // (hgt // grid)
    cols = ((np.arange(wid) - shift) % wid) // (wid // grid)
    return rows[:, None] * grid + cols[None, :]


def _visible_run_centre(coords: np.ndarray, limit: int) -> float:
    """Mean of the longest run of consecutive coordinates below `limit` in `coords` (one block's rows or
    columns in rolled order, which jump back to 0 where the block wraps); NaN if none is below it."""
    best, run = [], []
    for v in coords:
        if v >= limit:
            run = []
        elif run and v == run[-1] + 1:
            run = run + [v]
        else:
            run = [v]
        if len(run) > len(best):
            best = run
    return float(np.mean(best)) if best else float("nan")


def node_centres(padded: tuple[int, int], shift: int, grid: int = 8, visible: tuple[int, int] | None = None) -> np.ndarray:
    """(grid*grid, 2) float (row, col) LR coordinates of each grid block's centre as seen inside the visible
    crop rows < visible[0], cols < visible[1] (default: the whole padded map): a block cut by the roll's
    seam or by the crop is placed at the centre of its largest visible piece, a block with no visible
    pixel at NaN."""
    (hgt, wid), (vh, vw) = padded, visible or padded
    bh, bw = hgt // grid, wid // grid
    rows = [_visible_run_centre((j * bh + np.arange(bh) + shift) % hgt, vh) for j in range(grid)]
    cols = [_visible_run_centre((i * bw + np.arange(bw) + shift) % wid, vw) for i in range(grid)]
    centres = np.array([[r, c] for r in rows for c in cols])
    centres[np.isnan(centres).any(axis=1)] = np.nan
    return centres


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
    graphs = {}
    for g, records in enumerate(cap.groups):
        for rec in records:  # one per roll: the graph blocks of a group share one graph per roll
            centres = node_centres(padded, rec["shift"], cfg.window_size, visible=(h, w))
            graphs[g, rec["shift"]] = GroupGraph(
                group=g, shift=rec["shift"], scope=cfg.graph_scope,
                adjacency=rec["adjacency"][0].cpu().numpy() > 0.5,
                distance=rec["distance"][0].float().cpu().numpy(),
                node_features=rec["node_features"][0].float().cpu().numpy(),
                node_map=node_index_map(padded, rec["shift"], cfg.window_size)[:h, :w],
                centres_lr=centres,
                centres_hr=lr_to_hr(centres, cfg.upscale),
            )
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
                      scope=cfg.graph_scope, num_groups=len(model.layers), graphs=graphs, blocks=blocks)
