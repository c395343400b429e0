"""Image quality as the face-SR literature reports it: PSNR and SSIM on RGB or on BT.601 luma (Y)."""
from __future__ import annotations

import numpy as np
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def luma(img: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8 RGB -> (h, w) float64 Y in [16, 235] (BT.601, as MATLAB's rgb2ycbcr)."""
    return rgb2ycbcr(img)[..., 0]


def _prepare(a: np.ndarray, b: np.ndarray, y_channel: bool, crop: int):
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if y_channel and a.ndim == 3:
        a, b = luma(a), luma(b)
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if crop:
        a, b = a[crop:-crop, crop:-crop], b[crop:-crop, crop:-crop]
    return a, b


def psnr(a: np.ndarray, b: np.ndarray, y_channel: bool = True, crop: int = 0) -> float:
    """PSNR in dB of two uint8 images (h, w[, 3]); `crop` border pixels are ignored."""
    a, b = _prepare(a, b, y_channel, crop)
    return float(peak_signal_noise_ratio(a, b, data_range=255))


def ssim(a: np.ndarray, b: np.ndarray, y_channel: bool = True, crop: int = 0) -> float:
    """SSIM (Gaussian window, sigma 1.5, as Wang et al. and BasicSR) of two uint8 images (h, w[, 3])."""
    a, b = _prepare(a, b, y_channel, crop)
    return float(structural_similarity(a, b, data_range=255, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False, channel_axis=-1 if a.ndim == 3 else None))
