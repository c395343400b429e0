"""Faces in memory: a folder of HR images of any size and format, as (HR, LR) uint8 tensor pairs.

Small sets (tens of thousands of 128x128 faces) are decoded once and kept, so that on a 2-core machine
the model, not JPEG decoding, is the bottleneck.
"""
from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from .images import HR_SIZE, ImageError, center_square, degrade, open_image

EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def image_files(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in EXTENSIONS)
    if not files:
        raise ValueError(f"{folder} holds no images ({', '.join(sorted(EXTENSIONS))})")
    return files


def split_files(files: list[Path], val_count: int, seed: int = 0) -> tuple[list[Path], list[Path]]:
    """Deterministic train/validation split: a seeded shuffle of the sorted names, the first val_count
    to validation."""
    order = list(files)
    random.Random(seed).shuffle(order)
    return sorted(order[val_count:]), sorted(order[:val_count])


def _load(path: Path, scale: int, hr_size: int):
    try:
        hr = center_square(open_image(path).convert("RGB"), hr_size)
    except ImageError:
        return None
    lr = degrade(hr, scale)
    return np.asarray(hr), np.asarray(lr)


def _as_batch(images) -> torch.Tensor:
    """(H, W, 3) uint8 arrays or PIL images -> one (N, 3, H, W) uint8 tensor."""
    return torch.from_numpy(np.stack([np.asarray(im) for im in images])).permute(0, 3, 1, 2).contiguous()


@dataclass
class FacePairs(torch.utils.data.Dataset):
    """HR (N, 3, S, S) and LR (N, 3, S/scale, S/scale) uint8 tensors; `skipped` counts unreadable files."""

    hr: torch.Tensor
    lr: torch.Tensor
    scale: int
    skipped: int = 0

    @classmethod
    def from_files(cls, files: list[Path], scale: int, hr_size: int = HR_SIZE, progress: bool = True):
        with ThreadPoolExecutor(max_workers=2) as pool:  # PIL decodes outside the GIL
            results = list(tqdm(pool.map(lambda p: _load(p, scale, hr_size), files), total=len(files),
                                desc="decoding faces", disable=not progress, leave=False))
        pairs = [r for r in results if r is not None]
        if not pairs:
            raise ValueError("none of the images could be read")
        hr, lr = _as_batch(p[0] for p in pairs), _as_batch(p[1] for p in pairs)
        return cls(hr, lr, scale, skipped=len(files) - len(pairs))

    def __len__(self) -> int:
        return len(self.hr)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Float (LR, HR) in [0, 1]."""
        return self.lr[i].float() / 255, self.hr[i].float() / 255

    def sample(self, batch: int, generator: torch.Generator, augment: bool = True, rotate: bool = True):
        """A random batch (LR, HR) as float tensors in [0, 1], each face randomly flipped and, with
        `rotate`, rotated by a multiple of 90 degrees (the same for its LR and HR)."""
        lr, hr = self._pick(batch, generator, augment, rotate)
        return lr.float() / 255, hr.float() / 255

    def sample_mosaic(self, batch: int, generator: torch.Generator, canvas: int, rotate: bool = True):
        """A random batch (LR, HR) of canvas x canvas HR images, each a crop at a random offset of
        augmented faces tiled edge to edge, degraded as a whole by PIL bicubic.

        Faces smaller than the canvas then sit among other content, as a CelebA face sits in its frame
        with hair and background around it, instead of touching the image border on every side.
        """
        px = self.hr.shape[-1]
        k = canvas // px + 1
        (tiles,) = self._pick(batch * k * k, generator, True, rotate, with_lr=False)
        grid = tiles.view(batch, k, k, 3, px, px).permute(0, 3, 1, 4, 2, 5).reshape(batch, 3, k * px, k * px)
        offsets = torch.randint(k * px - canvas + 1, (batch, 2), generator=generator).tolist()
        hr = torch.stack([grid[i, :, y:y + canvas, x:x + canvas] for i, (y, x) in enumerate(offsets)])
        lr = _as_batch(degrade(Image.fromarray(h), self.scale) for h in hr.permute(0, 2, 3, 1).numpy())
        return lr.float() / 255, hr.float() / 255

    def _pick(self, batch: int, generator: torch.Generator, augment: bool, rotate: bool, with_lr: bool = True):
        """(LR, HR) uint8 faces drawn at random and augmented alike; only (HR,) where the caller degrades
        its own LR (mosaics), with the same random draws either way."""
        idx = torch.randint(len(self), (batch,), generator=generator)
        faces = (self.lr[idx], self.hr[idx]) if with_lr else (self.hr[idx],)
        if augment:
            flips = torch.randint(2, (batch,), generator=generator).tolist()
            turns = torch.randint(4, (batch,), generator=generator).tolist() if rotate else [0] * batch
            faces = tuple(torch.stack([_augment(x, f, t) for x, f, t in zip(stack, flips, turns)])
                          for stack in faces)
        return faces


def _augment(x: torch.Tensor, flip: int, turns: int) -> torch.Tensor:
    x = x.flip(-1) if flip else x
    return torch.rot90(x, turns, dims=(-2, -1)) if turns else x
