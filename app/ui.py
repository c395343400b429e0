"""The page: the left column every tab shares, then one tab per module of app/tabs, each building its own
components and events (see app/context.py); the API's endpoints last."""
from __future__ import annotations

import gradio as gr

from .context import Context
from .examples import example_files, lfw_files
from .state import MODELS, VISITORS
from .tabs import api, attention, lam, model, neighbour_graph, photo, restore, threshold
from .tabs.inputs import CENTRE, FACE, IMAGE, REAL, SIMULATE, PhotoInput

INTRO = """# GVTNet Explorer
Face super-resolution with a **Graph Vision Transformer**: restore a face, then look inside the network at
the patch graph its graph layers build, where its attention goes, what the graph threshold changes, and which
input pixels a restored region depends on (LAM). Runs on a CPU with the shipped light models."""

# Tables keep every word and number whole: a cell wraps only between words, and a table wider than its tab
# scrolls sideways (Gradio's prose style breaks anywhere, "0.70/50", "se/ed/s"). app.py passes it to launch().
CSS = """
.unbroken-table td, .unbroken-table th, .unbroken-table td *, .unbroken-table th * {
  overflow-wrap: normal !important; word-break: normal !important; hyphens: none !important; }
.unbroken-table.prose table { display: block; overflow-x: auto; }
"""

TABS = [restore, photo, neighbour_graph, attention, threshold, lam, model]  # in the page's order


def build_app() -> gr.Blocks:
    MODELS.preload()
    # delete_cache bounds the disk a long-running Space uses for results
    with gr.Blocks(title="GVTNet Explorer", delete_cache=(1800, 3600)) as demo:
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                face = PhotoInput(label="Photo", elem_id="photo", sources=["upload", "webcam", "clipboard"],
                                  height=260, **IMAGE)
                examples = [gr.Examples(example_files(), inputs=face, label="Examples (no download)")]
                scale = gr.Radio([("x4", 4), ("x8", 8)], value=4, label="Scale")
                mode = gr.Radio([("Simulate: downscale the face, restore it, compare", SIMULATE),
                                 ("Real low-resolution input: restore it as it is", REAL)],
                                value=SIMULATE, label="Mode")
                crop = gr.Radio([("Find the face", FACE), ("Centre square", CENTRE)], value=FACE, label="Crop")
                ensemble = gr.Radio([("Off", ""), ("Mirror: the face and its mirror image, 2x slower", "flip"),
                                     ("8 flips/transposes (the paper's GVTNet+), 8x slower", "d8")],
                                    value="", label="Self-ensemble",
                                    info="Averages restorations of transformed copies. The shipped weights were "
                                         "trained upright: the mirror helps them, the 8-fold one does not.")
                examples.append(gr.Examples([[f, REAL, CENTRE] for f in lfw_files()], inputs=[face, mode, crop],
                                            label="Real low-resolution faces (LFW, 25x25: restored as they are)"))
            with gr.Column(scale=3):
                ctx = Context(demo, face, scale, mode, crop, ensemble)
                ctx.loads.extend(e.load_input_event for e in examples)  # each restores once, after it is set
                with gr.Tabs():
                    for tab in TABS:
                        with ctx.tab(tab.TITLE):
                            tab.build(ctx)
        ctx.finish()
        api.build()

        def on_leave(request: gr.Request):  # released now, not an hour later (app.state.Visitors)
            VISITORS.leave(demo, request.session_hash)

        demo.unload(on_leave)
    # Two jobs of each event at a time, one torch thread each (set by app.py): the two cores stay busy, memory
    # stays bounded, and everyone else waits in the queue, seeing their place, rather than failing. LAM, the
    # slowest job and the largest (over a GB at a time), has one queue for the page and the API, run one job
    # at a time (a shared queue takes the lowest limit given).
    demo.queue(default_concurrency_limit=2)
    return demo
