"""The Gradio layout and its wiring. Every callback here only unpacks components and calls callbacks.py."""
from __future__ import annotations

import gradio as gr

from . import callbacks as cb
from .examples import example_files
from .state import MODELS

INTRO = """# GVTNet Explorer
Face super-resolution with a **Graph Vision Transformer**: restore a face, then look inside the network at
the patch graph its graph layers build, where its attention goes, what the graph threshold changes, and which
input pixels a restored region depends on (LAM). Runs on a CPU with the shipped light models."""

IMAGE = dict(format="png", type="filepath")  # lossless: Gradio's default WebP would falsify any measurement


class PhotoInput(gr.Image):
    """gr.Image that passes the uploaded file on untouched. Gradio's own preprocessing opens the file with
    PIL first, so a damaged upload would fail there with a generic message instead of ours."""

    def preprocess(self, payload):
        if payload is None or payload.path is None:  # nothing, or a data: URL
            return super().preprocess(payload)
        return payload.path

    def get_block_name(self) -> str:
        return "image"  # the frontend's component


def _no_face():
    raise gr.Error("Pick a face first: upload a photo, use the webcam, or click an example.")


def build_app() -> gr.Blocks:
    MODELS.preload()
    presets = MODELS.presets()
    # delete_cache bounds the disk a long-running Space uses for results
    with gr.Blocks(title="GVTNet Explorer", delete_cache=(1800, 3600)) as demo:
        session = gr.State(None)  # this visitor's Session
        custom = gr.State(None)  # this visitor's uploaded checkpoint, if any
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                photo = PhotoInput(label="Photo", elem_id="photo", sources=["upload", "webcam", "clipboard"],
                                   height=260, **IMAGE)
                gr.Examples(example_files(), inputs=photo, label="Examples (no download)")
                scale = gr.Radio([("x4", 4), ("x8", 8)], value=4, label="Scale")
                mode = gr.Radio([("Simulate: downscale the face, restore it, compare", cb.SIMULATE),
                                 ("Real low-resolution input: restore it as it is", cb.REAL)],
                                value=cb.SIMULATE, label="Mode")
                crop = gr.Radio([("Find the face", cb.FACE), ("Centre square", cb.CENTRE)], value=cb.FACE,
                                label="Crop")
                ensemble = gr.Radio([("Off", ""), ("Mirror: the face and its mirror image, 2x slower", "flip"),
                                     ("8 flips/transposes (the paper's GVTNet+), 8x slower", "d8")],
                                    value="", label="Self-ensemble",
                                    info="Averages restorations of transformed copies. The shipped weights were "
                                         "trained upright: the mirror helps them, the 8-fold one does not.")
            with gr.Column(scale=3):
                with gr.Tabs():
                    with gr.Tab("Restore"):
                        with gr.Row():
                            vs_bicubic = gr.ImageSlider(label="GVTNet | bicubic", max_height=360, **IMAGE)
                            vs_original = gr.ImageSlider(label="GVTNet | original", max_height=360, **IMAGE)
                        metrics = gr.Dataframe(headers=["method", "PSNR (dB, Y)", "SSIM (Y)"], interactive=False,
                                               label="Against the original")
                        with gr.Row():
                            lr_view = gr.Image(label="Input (nearest upscale)", height=260, **IMAGE)
                            sr_view = gr.Image(label="GVTNet", elem_id="sr", height=260, **IMAGE)
                            baseline_view = gr.Image(label="SwinIR baseline", height=260, **IMAGE)
                        download = gr.DownloadButton("Download the restoration (PNG)")
                    with gr.Tab("Neighbour graph"):
                        with gr.Row():
                            g_group = gr.Slider(0, 3, 0, step=1, label="Group")
                            g_head = gr.Slider(0, 3, 0, step=1, label="Head")
                            g_threshold = gr.Slider(0, 1, 0.85, step=0.01, label="Threshold T", elem_id="threshold")
                            g_p = gr.Dropdown(list(cb.P_CHOICES), value="model's own", label="Minkowski p")
                            g_rule = gr.Radio(["released", "paper"], value="released", label="Neighbour rule")
                        with gr.Row():
                            g_picker = gr.Image(label="Click a patch to see its neighbours", interactive=False,
                                                height=320, scale=1, **IMAGE)
                            g_plot = gr.Plot(label="Graph over the face", scale=2, elem_id="graph")
                        with gr.Row():
                            g_heatmap = gr.Plot(label="Adjacency")
                            g_stats = gr.JSON(label="Statistics", elem_id="graph-stats")
                    with gr.Tab("Attention"):
                        with gr.Row():
                            a_group = gr.Slider(0, 3, 0, step=1, label="Group")
                            a_block = gr.Slider(0, 1, 1, step=1, label="Block (in the group)")
                            a_head = gr.Slider(0, 3, 0, step=1, label="Head")
                        gr.Markdown("Graph settings are those of the Neighbour graph tab. Graph blocks show the "
                                    "attention before and after the graph mask.")
                        with gr.Row():
                            a_picker = gr.Image(label="Click the query pixel", interactive=False, height=320, scale=1,
                                                **IMAGE)
                            a_plot = gr.Plot(label="Attention of the query", scale=3)
                    with gr.Tab("Threshold effects"):
                        with gr.Row():
                            t_at = gr.Textbox("0.25, 0.5, 0.85, 1.0", label="Thumbnails at thresholds")
                            t_run = gr.Button("Run the sweep", variant="primary")
                        t_plot = gr.Plot(label="Sweep over T (p and rule from the Neighbour graph tab)")
                        t_gallery = gr.Gallery(label="Restorations", columns=4, height=220, format="png")
                    with gr.Tab("LAM"):
                        with gr.Row():
                            l_picker = gr.Image(label="Click the restoration to place the window", interactive=False,
                                                height=320, scale=1, **IMAGE)
                            with gr.Column(scale=1):
                                l_window = gr.Radio([8, 16, 32], value=16, label="Window (SR px)")
                                l_run = gr.Button("Run LAM", variant="primary")
                                l_di = gr.Markdown(elem_id="lam-di")
                        l_gallery = gr.Gallery(label="Attribution (overlay, KDE)", columns=4, height=260, format="png")
                        l_json = gr.JSON(visible=False)
                    with gr.Tab("Model"):
                        preset = gr.Dropdown(presets, value=presets[0] if presets else None,
                                             label="Shipped preset (GVTNet and its SwinIR baseline)")
                        checkpoint = gr.File(label="Or upload a checkpoint (ours: .safetensors; released code: .pth)",
                                             file_types=[".safetensors", ".pth", ".pt"], type="filepath")
                        summary = gr.Markdown()
                        with gr.Accordion("Model card", open=False):
                            gr.Markdown(cb.model_card())

        # -- callbacks: unpack components, call callbacks.py -------------------------------------------------
        def on_restore(path, scale_, mode_, crop_, ensemble_, preset_, custom_):
            if path is None:  # the photo was cleared
                return [None] * 14
            s = cb.restore(path, scale_, mode_, crop_, ensemble_, preset_, custom_)
            v = cb.restore_view(s)
            cfg = s.model.cfg
            groups, heads, depth = gr.update(maximum=len(cfg.depths) - 1), gr.update(maximum=cfg.num_heads - 1), \
                gr.update(maximum=max(cfg.depths) - 1)
            source = "Uploaded checkpoint" if custom_ is not None else f"Shipped '{preset_}' weights"
            return (s, v["vs_bicubic"], v["vs_original"], v["metrics"], v["lr"], v["gvtnet"], v["baseline"],
                    v["download"], groups, heads, groups, depth, heads, cb.model_summary(s.model, source))

        def on_graph(s, group, head, t, p, rule):
            if s is None:
                return None, None, None, None
            fig, heat, stats = cb.graph_view(s, group, head, t, p, rule)
            return fig, heat, stats, cb.face_picker(s)

        def on_graph_plot(s, group, head, t, p, rule):
            return cb.graph_plot(s, group, head, t, p, rule), cb.face_picker(s)

        def on_attention(s, group, block, head, t, p, rule):
            if s is None:
                return None, None
            return cb.attention_view(s, group, block, head, t, p, rule), cb.face_picker(s, s.query)

        def on_pick_node(s, group, t, p, rule, evt: gr.SelectData):
            if s is None:
                _no_face()
            return cb.select_node(s, evt.index, group, t, p, rule)

        def on_pick_query(s, evt: gr.SelectData):
            if s is None:
                _no_face()
            return cb.select_query(s, evt.index)

        def on_pick_window(s, evt: gr.SelectData):
            if s is None:
                _no_face()
            return cb.place_lam(s, evt.index)

        def on_lam_picker(s, window):
            return None if s is None else cb.lam_picker(s, window)

        def on_sweep(s, p, rule, at):
            if s is None:
                _no_face()
            return cb.threshold_view(s, p, rule, at)

        def on_lam(s, window, progress=gr.Progress()):
            if s is None:
                _no_face()
            res = cb.run_lam(s, window, lambda done, total: progress((done, total), desc="LAM path steps"))
            items = [(r[k], f"{name} {k}") for name, r in res.items() for k in ("overlay", "kde")]
            di = " · ".join(f"**{name}**: DI = {r['di']:.2f}" for name, r in res.items())
            return items, f"Diffusion index (higher: the window draws on more of the face): {di}", res

        graph_in = [session, g_group, g_head, g_threshold, g_p, g_rule]
        graph_out = [g_plot, g_heatmap, g_stats, g_picker]
        attention_in = [session, a_group, a_block, a_head, g_threshold, g_p, g_rule]
        attention_out = [a_plot, a_picker]
        private = dict(api_visibility="private")

        def after_restore(event):
            return (event.success(on_graph, graph_in, graph_out, **private)
                    .success(on_attention, attention_in, attention_out, **private)
                    .success(on_lam_picker, [session, l_window], l_picker, **private))

        restore_event = gr.on(
            [photo.change, scale.change, mode.change, crop.change, ensemble.change, preset.change],
            on_restore, [photo, scale, mode, crop, ensemble, preset, custom],
            [session, vs_bicubic, vs_original, metrics, lr_view, sr_view, baseline_view, download,
             g_group, g_head, a_group, a_block, a_head, summary],
            trigger_mode="always_last", **private)
        after_restore(restore_event)

        # The graph follows its controls live; only the latest value is computed while a slider moves.
        gr.on([g_group.change, g_head.change, g_threshold.change, g_p.change, g_rule.change], on_graph,
              graph_in, graph_out, trigger_mode="always_last", **private) \
            .success(on_attention, attention_in, attention_out, **private)
        g_picker.select(on_pick_node, [session, g_group, g_threshold, g_p, g_rule], session, **private) \
            .success(on_graph_plot, graph_in, [g_plot, g_picker], **private)

        gr.on([a_group.change, a_block.change, a_head.change], on_attention, attention_in, attention_out,
              trigger_mode="always_last", **private)
        a_picker.select(on_pick_query, session, session, **private) \
            .success(on_attention, attention_in, attention_out, **private)

        t_run.click(on_sweep, [session, g_p, g_rule, t_at], [t_plot, t_gallery], **private)

        l_picker.select(on_pick_window, session, session, **private) \
            .success(on_lam_picker, [session, l_window], l_picker, **private)
        l_window.change(on_lam_picker, [session, l_window], l_picker, **private)
        l_run.click(on_lam, [session, l_window], [l_gallery, l_di, l_json], **private)

        upload_event = checkpoint.change(cb.load_checkpoint, checkpoint, custom, **private)
        after_restore(upload_event.success(
            on_restore, [photo, scale, mode, crop, ensemble, preset, custom],
            [session, vs_bicubic, vs_original, metrics, lr_view, sr_view, baseline_view, download,
             g_group, g_head, a_group, a_block, a_head, summary], **private))

        # -- the API: stateless endpoints on hidden components, for gradio_client ------------------------------
        with gr.Column(visible=False):
            api_image = PhotoInput(label="image", **IMAGE)
            api_scale = gr.Number(4, precision=0, label="scale")
            api_mode = gr.Radio([cb.SIMULATE, cb.REAL], value=cb.SIMULATE, label="mode")
            api_crop = gr.Radio([cb.FACE, cb.CENTRE], value=cb.FACE, label="crop")
            api_threshold = gr.Number(0.85, label="threshold")
            api_p = gr.Dropdown(list(cb.P_CHOICES), value="model's own", label="minkowski_p")
            api_rule = gr.Radio(["released", "paper"], value="released", label="neighbour_rule")
            api_group = gr.Number(0, precision=0, label="group")
            api_head = gr.Number(0, precision=0, label="head")
            api_row = gr.Number(56, precision=0, label="row")
            api_col = gr.Number(56, precision=0, label="col")
            api_window = gr.Number(16, precision=0, label="window")
            api_sr = gr.Image(label="sr", **IMAGE)
            api_json = gr.JSON(label="result")
            api_buttons = [gr.Button() for _ in range(3)]
        api_buttons[0].click(cb.api_upscale, [api_image, api_scale, api_mode, api_crop], api_sr, api_name="upscale")
        api_buttons[1].click(cb.api_graph, [api_image, api_scale, api_threshold, api_p, api_rule, api_group,
                                            api_head], api_json, api_name="graph")
        api_buttons[2].click(cb.api_lam, [api_image, api_scale, api_row, api_col, api_window], api_json,
                             api_name="lam")
    # Two jobs at a time, one torch thread each (see state.py): the two cores stay busy, memory stays
    # bounded, and everyone else waits in the queue rather than failing.
    demo.queue(default_concurrency_limit=2)
    return demo
