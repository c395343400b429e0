"""GVTNet for face super-resolution: model, weights, inference, training and evaluation."""
from .capture import Capture, capture
from .inference import freeze, super_resolve, upscale
from .model import GraphSettings, GVTNet, GVTNetConfig
from .photo import PhotoResult, restore_photo
from .presets import PRESETS, build_model
from .sr_models import load_sr_model
from .weights import CheckpointError, load_model, save_model

__all__ = ["Capture", "capture", "freeze", "super_resolve", "upscale", "GraphSettings", "GVTNet", "GVTNetConfig", "PRESETS",
           "build_model", "load_model", "save_model", "CheckpointError", "PhotoResult", "restore_photo",
           "load_sr_model"]
