"""Every view shows the current face and model: the views follow a new face each on their own, a model
without graph blocks clears the graph with a reason instead of stopping the others, and visitors at once
get what each of them gets alone."""
from __future__ import annotations

import threading

import pytest
from PIL import Image

from conftest import ASSETS


def test_each_view_follows_a_new_face_on_its_own():
    """Every restore (a visitor's change of an input, each example set, the Photo tab's choice, a checkpoint
    upload) first clears every earlier result at once (no queue), then restores once; the graph, the
    Attention tab and the LAM picker each wait for the restore itself, not for one another: a view that
    fails cannot leave the next on the previous face. The Photo tab re-runs after an upload too."""
    from app.ui import build_app

    demo = build_app()
    deps = {d["id"]: d for d in demo.config["dependencies"]}
    name = {i: demo.fns[i].name for i in deps}
    where = {i: f"{demo.fns[i].fn.__module__}.{name[i]}" for i in deps}  # the tab's module, the function
    restores = [i for i in deps if name[i] == "on_restore"]
    assert len(restores) == 5  # a visitor's change; two example sets; the Photo tab's choice; an upload
    for r in restores:
        followers = {where[i] for i, d in deps.items() if d["trigger_after"] == r and d["trigger_only_on_success"]}
        assert {"app.tabs.neighbour_graph.on_new_face", "app.tabs.attention.on_new_face",
                "app.tabs.lam.on_picker"} <= followers
        clear = deps[r]["trigger_after"]
        assert where[clear] == "app.context.clear" and deps[clear]["queue"] is False
    upload = next(i for i in deps if name[i] == "load_checkpoint")
    assert "on_photo" in {name[i] for i, d in deps.items() if d["trigger_after"] == upload}


def test_a_restore_shows_a_loading_line_and_nothing_stale():
    """While a restore runs, every earlier result is gone and the tabs that draw from the new face say that
    it is on its way (the Neighbour graph tab opened then showed the previous face's plots)."""
    from app.context import RESTORING
    from app.ui import build_app

    demo = build_app()
    deps = {d["id"]: d for d in demo.config["dependencies"]}
    clear = next(deps[i]["trigger_after"] for i in deps if demo.fns[i].name == "on_restore")
    shown = dict(zip(deps[clear]["outputs"], demo.fns[clear].fn()))
    by_id = {demo.blocks[i].elem_id: v for i, v in shown.items() if demo.blocks[i].elem_id}
    assert by_id["graph-caption"] == RESTORING
    assert by_id["restore-status"].startswith("*Restoring")
    assert by_id["sr"] is None and by_id["graph-overview"] is None and by_id["lam-picker"] is None
    assert sum(v is None for v in shown.values()) == len(shown) - 2  # the session and every other result


def test_a_model_without_graph_blocks_clears_the_graph_with_a_reason(tmp_path, astronaut_face):
    from app.context import values
    from app.tabs.attention import attention_view
    from app.tabs.lam import lam_picker
    from app.tabs.model import load_checkpoint
    from app.tabs.neighbour_graph import graph_view
    from app.tabs.restore import restore

    path = tmp_path / "face.png"
    astronaut_face.save(path)
    swinir, _ = load_checkpoint(str(ASSETS / "swinir-light-x4.safetensors"))  # a GVTNet config without G blocks
    s = restore(str(path), 4, "simulate", "centre", "", "light", swinir)
    face, caption, overview, heatmap, stats = values(graph_view(s, 0, 0))
    assert face and "no graph blocks" in caption and overview is heatmap is stats is None
    assert attention_view(s, 0, 1, 0) is not None  # the other views still work
    assert lam_picker(s, 16)


@pytest.mark.server
@pytest.mark.slow
def test_visitors_at_once_get_what_each_gets_alone(app_url, tmp_path, astronaut_face, hopper_face):
    """Six visitors at once, faces of several sizes, x4 and x8, restorations and graphs mixed: every answer
    is the one the same request gets alone (the models are shared by every visitor)."""
    from gradio_client import Client, handle_file

    faces = {}
    for name, img, side in (("a40", astronaut_face, 40), ("h24", hopper_face, 24), ("a128", astronaut_face, 128),
                            ("h52", hopper_face, 52)):
        faces[name] = str(tmp_path / f"{name}.png")
        img.resize((side, side), Image.BICUBIC).save(faces[name])
    requests = [("/upscale", (face, scale, mode)) for face in faces for scale in (4, 8) for mode in ("simulate", "real")]
    requests += [("/graph", (face, 4, 0.5)) for face in faces]

    def ask(client, request):
        api, (face, *args) = request
        out = client.predict(handle_file(faces[face]), *args, api_name=api)
        return Image.open(out).tobytes() if api == "/upscale" else repr(out)

    alone = {r: ask(Client(app_url, verbose=False), r) for r in requests}
    answers, errors = [], []

    def visitor(k):
        try:
            client = Client(app_url, verbose=False)
            for r in requests[k::3] + requests[: k + 1]:
                answers.append((r, ask(client, r)))
        except Exception as e:  # noqa: BLE001 - any failure is the test's finding
            errors.append(repr(e))

    threads = [threading.Thread(target=visitor, args=(k % 3,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors
    wrong = [r for r, a in answers if a != alone[r]]
    assert len(answers) > 2 * len(requests) and not wrong, wrong


def test_a_new_view_is_one_module_and_one_line(monkeypatch):
    """A tab module needs only a TITLE and build(ctx): added to ui.TABS, it gets its tab and follows new faces
    through the shared context like the shipped ones."""
    import types

    import gradio as gr

    from app import ui

    def build(ctx):
        size = gr.Markdown(elem_id="face-size")
        ctx.on_new_face(lambda s: f"{s.lr.width} px", [ctx.session], size)

    monkeypatch.setattr(ui, "TABS", [*ui.TABS, types.SimpleNamespace(TITLE="Face size", build=build)])
    demo = ui.build_app()
    tabs = [b for b in demo.blocks.values() if isinstance(b, gr.Tab)]
    assert [t.label for t in tabs][-1] == "Face size"
    restores = [d["id"] for d in demo.config["dependencies"] if demo.fns[d["id"]].name == "on_restore"]
    sizes = [d for d in demo.config["dependencies"] if demo.fns[d["id"]].name == "<lambda>"
             and d["trigger_after"] in restores and demo.fns[d["id"]].fn.__module__ == __name__]
    assert len(sizes) == len(restores) == 5  # after each way of setting a new face, and after an upload
