"""GVTNet Explorer, the Gradio app: `build_app()` returns the Blocks; app.py at the root launches it."""
from .ui import build_app

__all__ = ["build_app"]
