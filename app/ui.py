"""The Gradio layout and its wiring. Every callback here only unpacks components and calls a tab's module
in app/tabs."""
from __future__ import annotations

import gradio as gr

from analysis import attention, lam
from analysis.studies import ablation

from .captions import ATTENTION_CAPTION, DISTANCE_CAPTION, MASS_CAPTION, ROLLOUT_CAPTION
from .examples import example_files, group_file, lfw_files
from .state import MODELS, SESSION_TTL_S, VISITORS
from .tabs.api import api_graph, api_lam, api_upscale
from .tabs.graph import (EDGE_CHOICES, GRAPH_SCOPES, attention_depth_view, attention_view, face_picker, graph_view,
                         rollout_view, select_graph_pixel, select_query)
from .tabs.inputs import CENTRE, FACE, P_CHOICES, REAL, SIMULATE
from .tabs.lam import STUDY_FACES, lam_picker, lam_study_view, lam_view, place_lam
from .tabs.model import ablation_figure, ablation_summary, load_checkpoint, model_card, model_summary
from .tabs.photo import chosen_face, photo_view
from .tabs.restore import restore, restore_view
from .tabs.threshold import threshold_faces_view, threshold_view

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
        # Released when the visitor leaves (VISITORS.leave), else an hour after they last changed
        session = gr.State(None, time_to_live=SESSION_TTL_S)  # this visitor's Session
        custom = gr.State(None, time_to_live=SESSION_TTL_S)  # this visitor's uploaded checkpoint, if any
        compare = gr.State(None, time_to_live=SESSION_TTL_S)  # an uploaded model of another architecture

        def on_leave(request: gr.Request):
            VISITORS.leave(demo, request.session_hash)

        demo.unload(on_leave)
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                photo = PhotoInput(label="Photo", elem_id="photo", sources=["upload", "webcam", "clipboard"],
                                   height=260, **IMAGE)
                gr.Examples(example_files(), inputs=photo, label="Examples (no download)")
                scale = gr.Radio([("x4", 4), ("x8", 8)], value=4, label="Scale")
                mode = gr.Radio([("Simulate: downscale the face, restore it, compare", SIMULATE),
                                 ("Real low-resolution input: restore it as it is", REAL)],
                                value=SIMULATE, label="Mode")
                crop = gr.Radio([("Find the face", FACE), ("Centre square", CENTRE)], value=FACE,
                                label="Crop")
                ensemble = gr.Radio([("Off", ""), ("Mirror: the face and its mirror image, 2x slower", "flip"),
                                     ("8 flips/transposes (the paper's GVTNet+), 8x slower", "d8")],
                                    value="", label="Self-ensemble",
                                    info="Averages restorations of transformed copies. The shipped weights were "
                                         "trained upright: the mirror helps them, the 8-fold one does not.")
                gr.Examples([[f, REAL, CENTRE] for f in lfw_files()], inputs=[photo, mode, crop],
                            label="Real low-resolution faces (LFW, 25x25: restored as they are)")
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
                        others_view = gr.Gallery(label="Other models compared (GVTNet retrained without its graph; "
                                                       "an upload from the Model tab)", columns=3,
                                                 height=260, format="png")
                        download = gr.DownloadButton("Download the restoration (PNG)")
                    with gr.Tab("Photo"):
                        gr.Markdown("Every face of a whole photo, restored and blended back into a bicubic upscale "
                                    "of it (scale, self-ensemble and model as in the rest of the app). Choose a face "
                                    "below to make it the face every other tab shows.")
                        with gr.Row():
                            with gr.Column(scale=1):
                                p_photo = PhotoInput(label="Whole photo", elem_id="group-photo",
                                                     sources=["upload", "clipboard"], height=260, **IMAGE)
                                gr.Examples([group_file()], inputs=p_photo, label="Composed photo (no download)")
                            p_boxes = gr.Image(label="Faces found: green restored, orange left to the background",
                                               interactive=False, height=320, scale=2, elem_id="photo-boxes", **IMAGE)
                        p_notes = gr.Markdown(elem_id="photo-notes")
                        p_slider = gr.ImageSlider(label="Restored | bicubic: drag the handle to compare",
                                                  max_height=480, elem_id="photo-slider", **IMAGE)
                        p_gallery = gr.Gallery(label="Restored faces: click one to show it in every tab", columns=6,
                                               height="auto", format="png", allow_preview=False, elem_id="photo-faces")
                        p_download = gr.DownloadButton("Download the restored photo (PNG)")
                        p_faces = gr.State([], time_to_live=SESSION_TTL_S)  # (number, LR crop) of each gallery face
                    with gr.Tab("Neighbour graph"):
                        with gr.Row():
                            g_group = gr.Slider(0, 3, 0, step=1, label="Group")
                            g_head = gr.Slider(0, 3, 0, step=1, label="Head")
                            g_threshold = gr.Slider(0, 1, 0.85, step=0.01, label="Threshold T", elem_id="threshold")
                            g_off = gr.Checkbox(False, label="Graph off (every edge kept, same weights)",
                                                elem_id="graph-off")
                        with gr.Row():
                            g_p = gr.Dropdown(list(P_CHOICES), value="model's own", label="Minkowski p")
                            g_rule = gr.Radio(["released", "paper"], value="released", label="Neighbour rule")
                            g_scope = gr.Radio(list(GRAPH_SCOPES.items()), value="group", label="Graphs")
                            g_edges = gr.Radio(list(EDGE_CHOICES.items()), value="auto", label="Lines show")
                        with gr.Row():
                            g_face = gr.Image(label="Click a pixel to select its window and node", interactive=False,
                                              height=440, scale=1, min_width=420, elem_id="graph-face", **IMAGE)
                            with gr.Column(scale=1):
                                g_caption = gr.Markdown(elem_id="graph-caption")
                                g_stats = gr.Dataframe(headers=["statistic", "value", "meaning"], interactive=False,
                                                       label="This graph (self-loops left out)", wrap=True,
                                                       column_widths=["28%", "14%", "58%"], max_height=360,
                                                       elem_id="graph-stats")
                        with gr.Row():
                            g_overview = gr.Plot(label="Every group and head at once", scale=3, elem_id="graph-overview")
                            g_heatmap = gr.Plot(label="This window's adjacency", scale=2)
                        gr.Markdown("Each small square is one group's and head's adjacency in the selected window: "
                                    "row = the node that attends, column = the node attended to, dark = cut by the "
                                    "threshold, the green line the selected node's row; the number is the share of "
                                    "pairs kept.")
                    with gr.Tab("Attention"):
                        gr.Markdown("Click the face to choose the query pixel. GVTNet (graph settings of the "
                                    "Neighbour graph tab) is compared with the same weights with the graph off and "
                                    "with the SwinIR baseline.")
                        with gr.Row():
                            a_picker = gr.Image(label="Click the query pixel", interactive=False, height=400, scale=2,
                                                min_width=400, elem_id="attention-picker", **IMAGE)
                            with gr.Column(scale=3):
                                with gr.Row():
                                    a_group = gr.Slider(0, 3, 0, step=1, label="Group")
                                    a_block = gr.Slider(0, 1, 1, step=1, label="Block (in the group)")
                                    a_head = gr.Slider(0, 3, 0, step=1, label="Head")
                                a_plot = gr.Plot(label="The query's attention in one block and head",
                                                 elem_id="attention")
                                gr.Markdown(ATTENTION_CAPTION)
                        a_rollout = gr.Plot(label="Where the whole network looks", elem_id="rollout")
                        with gr.Row():
                            a_fusion = gr.Radio(list(attention.HEAD_FUSIONS), value="mean", label="Fuse heads by",
                                                scale=1)
                            gr.Markdown(ROLLOUT_CAPTION)
                        a_distance = gr.Plot(label="How far each block looks", elem_id="attention-distance")
                        gr.Markdown(DISTANCE_CAPTION)
                        a_mass = gr.Plot(label="Where each block's attention goes", elem_id="attention-mass")
                        gr.Markdown(MASS_CAPTION)
                    with gr.Tab("Threshold effects"):
                        with gr.Row():
                            t_at = gr.Textbox("0.25, 0.5, 0.85, 1.0", label="Thumbnails at thresholds")
                            t_run = gr.Button("Run the sweep", variant="primary")
                        t_plot = gr.Plot(label="Sweep over T (p and rule from the Neighbour graph tab)")
                        t_gallery = gr.Gallery(label="Restorations", columns=4, height=220, format="png")
                        gr.Markdown("One face moves by hundredths of a dB. Over several faces, the band is the "
                                    "spread between faces and the dashed line the same weights with the graph off: "
                                    "where the band holds that line, T does not matter for this model. (More faces: "
                                    "`python -m analysis.studies.sweep FOLDER --weights ...`.)")
                        t_faces_run = gr.Button("Sweep over the example faces and this one")
                        t_faces_plot = gr.Plot(label="PSNR change and edge density over the faces",
                                               elem_id="threshold-faces")
                        t_faces_table = gr.Dataframe(
                            headers=["T", "PSNR change (dB, Y)", "± std", "edge density", "± std"], interactive=False,
                            label="Mean and spread over the faces (change against the model's own T)")
                    with gr.Tab("LAM"):
                        with gr.Row():
                            l_picker = gr.Image(label="Click the restoration to place the window", interactive=False,
                                                height=320, scale=1, **IMAGE)
                            with gr.Column(scale=1):
                                l_window = gr.Radio([8, 16, 32], value=16, label="Window (SR px)")
                                l_run = gr.Button("Run LAM", variant="primary")
                                l_di = gr.Markdown(elem_id="lam-di")
                        l_gallery = gr.Gallery(label="Attribution (overlay, KDE)", columns=4, height=260, format="png")
                        gr.Markdown(lam.SPREAD_CAPTION)
                        l_spread = gr.Image(label="Spread of the attribution (log scale, 50/90/99% contours)",
                                            interactive=False, **IMAGE)
                        l_json = gr.JSON(visible=False)
                        with gr.Accordion("Across faces: a small study", open=False):
                            gr.Markdown(f"LAM of every model at the eyes, nose and mouth of {STUDY_FACES} faces "
                                        "(the examples and yours), with the window size above: mean DI per "
                                        "model and the paired differences. `python -m analysis.studies.lam_study` runs "
                                        "it on many faces.")
                            l_study = gr.Button("Run the small study")
                            l_study_table = gr.Markdown(elem_id="lam-study")
                            l_study_plot = gr.Image(label="DI per window, paired differences", interactive=False,
                                                    **IMAGE)
                    with gr.Tab("Model"):
                        preset = gr.Dropdown(presets, value=presets[0] if presets else None,
                                             label="Shipped preset (GVTNet and its SwinIR baseline)")
                        checkpoint = gr.File(label="Or upload a checkpoint: ours (.safetensors), the released "
                                                   "GVTNet's (.pth), or another SR network to compare (SwinIR, "
                                                   "HAT, ESRGAN, ...: anything spandrel detects)",
                                             file_types=[".safetensors", ".pth", ".pt"], type="filepath")
                        summary = gr.Markdown()
                        gr.Markdown(ablation_summary())
                        gr.Image(ablation_figure(), label="Reach against quality, one point per trained network",
                                 interactive=False, **IMAGE)
                        gr.Markdown(ablation.FIGURE_CAPTION)
                        with gr.Accordion("Model card", open=False):
                            gr.Markdown(model_card())

        # -- callbacks: unpack components, call app/tabs -----------------------------------------------------
        def on_restore(path, scale_, mode_, crop_, ensemble_, preset_, custom_, compare_):
            if path is None:  # the photo was cleared
                return [None] * 15
            s = restore(path, scale_, mode_, crop_, ensemble_, preset_, custom_, compare_)
            v = restore_view(s)
            cfg = s.model.cfg
            groups, heads, depth = gr.update(maximum=len(cfg.depths) - 1), gr.update(maximum=cfg.num_heads - 1), \
                gr.update(maximum=max(cfg.depths) - 1)
            source = "Uploaded checkpoint" if custom_ is not None else f"Shipped '{preset_}' weights"
            return (s, v["vs_bicubic"], v["vs_original"], v["metrics"], v["lr"], v["gvtnet"], v["baseline"],
                    v["download"], groups, heads, groups, depth, heads, model_summary(s.model, source, s.others),
                    v["others"])

        def on_graph(s, group, head, t, p, rule, off, scope, edges):
            if s is None:
                return None, None, None, None, None
            return graph_view(s, group, head, t, p, rule, off, scope, edges)

        def on_attention(s, group, block, head, *settings):
            if s is None:
                return None, None
            return attention_view(s, group, block, head, *settings), face_picker(s, s.query)

        def on_query(s, group, block, head, fusion, *settings):
            if s is None:
                return None, None, None
            return *on_attention(s, group, block, head, *settings), rollout_view(s, fusion, *settings)

        def on_attention_tab(s, group, block, head, fusion, *settings):
            if s is None:
                return None, None, None, None, None
            return *on_query(s, group, block, head, fusion, *settings), *attention_depth_view(s, *settings)

        def on_rollout(s, fusion, *settings):
            return None if s is None else rollout_view(s, fusion, *settings)

        def on_pick_node(s, group, head, t, p, rule, off, scope, edges, evt: gr.SelectData):
            if s is None:
                _no_face()
            s = select_graph_pixel(s, evt.index)
            return s, *graph_view(s, group, head, t, p, rule, off, scope, edges)  # one round trip

        def on_pick_query(s, evt: gr.SelectData):
            if s is None:
                _no_face()
            return select_query(s, evt.index)

        def on_pick_window(s, evt: gr.SelectData):
            if s is None:
                _no_face()
            return place_lam(s, evt.index)

        def on_lam_picker(s, window):
            return None if s is None else lam_picker(s, window)

        def on_sweep(s, p, rule, at):
            if s is None:
                _no_face()
            return threshold_view(s, p, rule, at)

        def on_faces_sweep(s, p, rule, progress=gr.Progress()):
            if s is None:
                _no_face()
            return threshold_faces_view(s, p, rule, lambda done, total: progress((done, total), desc="settings"))

        def on_lam(s, window, request: gr.Request, progress=gr.Progress()):
            if s is None:
                _no_face()

            def step(done, total):  # a visitor who closed the tab stops the job here, freeing its worker
                VISITORS.check(request.session_hash, "LAM", done, total)
                progress((done, total), desc="LAM path steps")

            v = lam_view(s, window, step)
            res = v["models"]
            items = [(r[k], f"{name} {k}") for name, r in res.items() for k in ("overlay", "kde")]
            di = " · ".join(f"**{name}**: DI = {r['di']:.2f}" for name, r in res.items())
            return (items, f"Diffusion index (higher: the window draws on more of the face): {di} "
                           f"(computed in {v['precision']})", res, v["spread"])

        def on_lam_study(s, window, request: gr.Request, progress=gr.Progress()):
            if s is None:
                _no_face()

            def step(done, total):
                VISITORS.check(request.session_hash, "LAM study", done, total)
                progress((done, total), desc="face-windows")

            return lam_study_view(s, window, step)

        graph_in = [session, g_group, g_head, g_threshold, g_p, g_rule, g_off, g_scope, g_edges]
        graph_out = [g_face, g_caption, g_overview, g_heatmap, g_stats]
        graph_settings = [g_threshold, g_p, g_rule, g_off, g_scope]  # the Attention tab's GVTNet follows them
        attention_in = [session, a_group, a_block, a_head, *graph_settings]
        attention_out = [a_plot, a_picker]
        query_in = [session, a_group, a_block, a_head, a_fusion, *graph_settings]
        query_out = [a_plot, a_picker, a_rollout]
        attention_tab_out = query_out + [a_distance, a_mass]
        private = dict(api_visibility="private")

        # What was computed on the previous face or model; cleared when either changes.
        results_out = [l_gallery, l_di, l_json, l_spread, l_study_table, l_study_plot, t_plot, t_gallery,
                       t_faces_plot, t_faces_table]

        def after_restore(event):
            # Each view follows the new face on its own, so that one view that cannot show it (a model without
            # graph blocks has no graph) leaves no other view on the previous face.
            event.success(lambda: [None] * len(results_out), None, results_out, **private)
            event.success(on_graph, graph_in, graph_out, **private)
            event.success(on_attention_tab, query_in, attention_tab_out, **private)
            event.success(on_lam_picker, [session, l_window], l_picker, **private)

        restore_event = gr.on(
            [photo.change, scale.change, mode.change, crop.change, ensemble.change, preset.change],
            on_restore, [photo, scale, mode, crop, ensemble, preset, custom, compare],
            [session, vs_bicubic, vs_original, metrics, lr_view, sr_view, baseline_view, download,
             g_group, g_head, a_group, a_block, a_head, summary, others_view],
            trigger_mode="always_last", **private)
        after_restore(restore_event)

        # The graph follows its controls live; only the latest value is computed while a slider moves.
        gr.on([g_group.change, g_head.change, g_threshold.change, g_p.change, g_rule.change, g_off.change,
               g_scope.change, g_edges.change], on_graph, graph_in, graph_out, trigger_mode="always_last", **private) \
            .success(on_attention_tab, query_in, attention_tab_out, **private)
        g_face.select(on_pick_node, graph_in, [session] + graph_out, **private)

        gr.on([a_group.change, a_block.change, a_head.change], on_attention, attention_in, attention_out,
              trigger_mode="always_last", **private)
        a_picker.select(on_pick_query, session, session, **private) \
            .success(on_query, query_in, query_out, **private)
        a_fusion.change(on_rollout, [session, a_fusion, *graph_settings], a_rollout, **private)

        t_run.click(on_sweep, [session, g_p, g_rule, t_at], [t_plot, t_gallery], **private)
        t_faces_run.click(on_faces_sweep, [session, g_p, g_rule], [t_faces_plot, t_faces_table], **private)

        l_picker.select(on_pick_window, session, session, **private) \
            .success(on_lam_picker, [session, l_window], l_picker, **private)
        l_window.change(on_lam_picker, [session, l_window], l_picker, **private)
        l_run.click(on_lam, [session, l_window], [l_gallery, l_di, l_json, l_spread], concurrency_id="lam", **private)
        l_study.click(on_lam_study, [session, l_window], [l_study_table, l_study_plot], concurrency_id="lam", **private)

        upload_event = checkpoint.change(load_checkpoint, checkpoint, [custom, compare], **private)
        after_restore(upload_event.success(
            on_restore, [photo, scale, mode, crop, ensemble, preset, custom, compare],
            [session, vs_bicubic, vs_original, metrics, lr_view, sr_view, baseline_view, download,
             g_group, g_head, a_group, a_block, a_head, summary, others_view], **private))

        def on_photo(path, scale_, ensemble_, preset_, custom_, progress=gr.Progress()):
            if path is None:  # the photo was cleared
                return None, "", None, [], None, []
            v = photo_view(path, scale_, ensemble_, preset_, custom_,
                           lambda done, total: progress((done, total), desc="faces"))
            return v["boxes"], v["notes"], v["slider"], v["gallery"], v["download"], v["faces"]

        def on_choose_face(faces, mode_, crop_, evt: gr.SelectData):
            # The face becomes the input of the left column, as it is (real mode, no crop), which restores it.
            # A setting already right is left alone: each change would restore the face once more.
            path, number = chosen_face(faces, evt.index)
            gr.Info(f"Face {number} is now the face of the other tabs.")
            return (path, REAL if mode_ != REAL else gr.update(),
                    CENTRE if crop_ != CENTRE else gr.update())

        photo_out = [p_boxes, p_notes, p_slider, p_gallery, p_download, p_faces]
        gr.on([p_photo.change, scale.change, ensemble.change, preset.change], on_photo,
              [p_photo, scale, ensemble, preset, custom], photo_out, trigger_mode="always_last", **private)
        upload_event.success(on_photo, [p_photo, scale, ensemble, preset, custom], photo_out, **private)
        p_gallery.select(on_choose_face, [p_faces, mode, crop], [photo, mode, crop], **private)

        # -- the API: stateless endpoints on hidden components, for gradio_client ------------------------------
        with gr.Column(visible=False):
            api_image = PhotoInput(label="image", **IMAGE)
            api_scale = gr.Number(4, precision=0, label="scale")
            api_mode = gr.Radio([SIMULATE, REAL], value=SIMULATE, label="mode")
            api_crop = gr.Radio([FACE, CENTRE], value=FACE, label="crop")
            api_threshold = gr.Number(0.85, label="threshold")
            api_p = gr.Dropdown(list(P_CHOICES), value="model's own", label="minkowski_p")
            api_rule = gr.Radio(["released", "paper"], value="released", label="neighbour_rule")
            api_group = gr.Number(0, precision=0, label="group")
            api_head = gr.Number(0, precision=0, label="head")
            api_row = gr.Number(56, precision=0, label="row")
            api_col = gr.Number(56, precision=0, label="col")
            api_window = gr.Number(16, precision=0, label="window")
            api_pixel_row = gr.Number(None, precision=0, label="row")  # optional: the window of this LR pixel
            api_pixel_col = gr.Number(None, precision=0, label="col")
            api_graph_off = gr.Checkbox(False, label="graph_off")
            api_scope = gr.Radio(list(GRAPH_SCOPES.values()), value="group", label="graph_scope")
            api_sr = gr.Image(label="sr", **IMAGE)
            api_json = gr.JSON(label="result")
            api_buttons = [gr.Button() for _ in range(3)]
        api_buttons[0].click(api_upscale, [api_image, api_scale, api_mode, api_crop], api_sr, api_name="upscale")
        api_buttons[1].click(api_graph, [api_image, api_scale, api_threshold, api_p, api_rule, api_group,
                                         api_head, api_pixel_row, api_pixel_col, api_graph_off, api_scope],
                             api_json, api_name="graph")
        api_buttons[2].click(api_lam, [api_image, api_scale, api_row, api_col, api_window], api_json,
                             api_name="lam", concurrency_id="lam", concurrency_limit=1)
    # Two jobs of each event at a time, one torch thread each (see state.py): the two cores stay busy, memory
    # stays bounded, and everyone else waits in the queue, seeing their place, rather than failing. LAM, the
    # slowest job and the largest (over a GB at a time), has one queue for the page and the API, run one job
    # at a time (a shared queue takes the lowest limit given).
    demo.queue(default_concurrency_limit=2)
    return demo
