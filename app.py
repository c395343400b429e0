"""GVTNet Explorer: `python app.py` serves it at http://127.0.0.1:7860 (GRADIO_SERVER_NAME and
GRADIO_SERVER_PORT override); a Hugging Face Space runs this same file."""
import logging

import torch

from app import build_app
from app.state import MAX_UPLOAD_BYTES, SESSION_CAPACITY
from app.ui import CSS
from gvtnet.compat import keep_freed_memory

if __name__ == "__main__":
    # Before any thread starts: the tensors LAM frees after every batch are reused, not faulted in again
    keep_freed_memory()
    # One torch thread per job: on a small, shared CPU, several threads per forward pass spin against each
    # other and against the other jobs (measured 30x slower under load); the queue runs jobs side by side.
    torch.set_num_threads(1)
    # The app's own lines (one per restore, one per visitor's mistake) in the server log, with the time
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("app").setLevel(logging.INFO)
    # show_error: visitors see the real reason a request failed, not Gradio's generic message; uploads over
    # the cap are refused before they are stored (photos have a lower cap of their own, see app/state.py)
    build_app().launch(show_error=True, css=CSS, max_file_size=MAX_UPLOAD_BYTES, state_session_capacity=SESSION_CAPACITY)
