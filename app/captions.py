"""Captions the app shows under its figures: how to read each one."""
from analysis.attention import ATTENTION_CAPTION, DISTANCE_CAPTION, MASS_CAPTION, ROLLOUT_CAPTION

__all__ = ["ATTENTION_CAPTION", "DISTANCE_CAPTION", "MASS_CAPTION", "ROLLOUT_CAPTION"]
