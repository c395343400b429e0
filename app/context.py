"""What every tab module is given: the visitor's state, the inputs of the left column that every tab shares,
and the hooks through which a tab follows a new face or model, and draws only when it is shown."""
from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field, fields

import gradio as gr

from gvtnet import GraphSettings

from .state import SESSION_TTL_S

PRIVATE = dict(api_visibility="private")  # the page's own events; the API is app/tabs/api.py's
# The Neighbour graph tab's controls as they start (T as released, the model's own p).
DEFAULT_GRAPH = GraphSettings(threshold=0.85, neighbour_rule="released", graph_scope="group")


@dataclass(frozen=True)
class Listener:
    fn: Callable
    inputs: list
    outputs: list


@dataclass
class Context:
    """Built by ui.py; each tab's `build(ctx)` adds its components and events to it.

    session / custom / compare: this visitor's Session (app.state), uploaded GVTNet and uploaded model of
    another architecture. graph: the GraphSettings of the Neighbour graph tab's controls, which the
    Attention and Threshold tabs follow. shown: the title of the tab on screen. photo ... ensemble: the
    left column; preset / checkpoint: the Model tab's, set when it is built."""

    demo: gr.Blocks
    photo: gr.Image
    scale: gr.Radio
    mode: gr.Radio
    crop: gr.Radio
    ensemble: gr.Radio
    session: gr.State = field(default_factory=lambda: gr.State(None, time_to_live=SESSION_TTL_S))
    custom: gr.State = field(default_factory=lambda: gr.State(None, time_to_live=SESSION_TTL_S))
    compare: gr.State = field(default_factory=lambda: gr.State(None, time_to_live=SESSION_TTL_S))
    graph: gr.State = field(default_factory=lambda: gr.State(DEFAULT_GRAPH))
    shown: gr.State = field(default_factory=lambda: gr.State("Restore"))
    preset: gr.Dropdown | None = None
    checkpoint: gr.File | None = None
    uploads: list = field(default_factory=list)  # the Model tab's events after which the session's model changed
    loads: list = field(default_factory=list)  # events that set the face input (examples, the Photo tab's choice)
    _new_face: list[Listener] = field(default_factory=list)
    _on_show: dict[str, list[Listener]] = field(default_factory=dict)
    _finish: list[Callable[[], None]] = field(default_factory=list)
    _results: list = field(default_factory=list)  # (component, what it shows while a restore runs)

    @contextmanager
    def tab(self, title: str):
        """A tab of the page; selecting it records it as shown and runs its `on_show` listeners."""
        with gr.Tab(title) as t:
            yield
        t.select(lambda: title, None, self.shown, **PRIVATE)
        self._finish.append(lambda: [t.select(x.fn, x.inputs, x.outputs, **PRIVATE)
                                     for x in self._on_show.get(title, [])])

    def on_new_face(self, fn: Callable, inputs: list, outputs: list) -> None:
        """Run fn after every successful restore (a new face, setting or model)."""
        self._new_face.append(Listener(fn, inputs, outputs))

    def on_show(self, title: str, fn: Callable, inputs: list, outputs: list) -> None:
        """Run fn whenever the tab `title` is selected."""
        self._on_show.setdefault(title, []).append(Listener(fn, inputs, outputs))

    def results(self, *components, pending=None) -> None:
        """Components holding what was computed on a face: cleared the moment the face or model changes (before
        the restore), so that no tab shows a previous face's figures, tables or errors meanwhile; `pending`
        is what they show until the restore ends (None: nothing; a line saying that it is on its way)."""
        self._results.extend((c, pending) for c in components)

    def after_build(self, fn: Callable[[], None]) -> None:
        """Wiring that needs another tab's components: run once every tab is built."""
        self._finish.append(fn)

    def restart(self, start):
        """The first step of a restore after `start` (an event, or a list of triggers for gr.on): the
        session and every result dropped at once (no queue), so that a tab shown while the restore runs
        draws nothing stale; what follows is chained to the event returned."""
        def clear():
            return [None, *(pending for _, pending in self._results)]

        outputs = [self.session, *(c for c, _ in self._results)]
        if isinstance(start, list):
            return gr.on(start, clear, None, outputs, queue=False, show_progress="hidden", **PRIVATE)
        return start.success(clear, None, outputs, queue=False, show_progress="hidden", **PRIVATE)

    def follow(self, event) -> None:
        """Attach every new-face listener to a restore `event`."""
        for x in self._new_face:
            event.success(x.fn, x.inputs, x.outputs, **PRIVATE)

    def finish(self) -> None:
        for fn in self._finish:
            fn()


RESTORING = "*Restoring the new face: this view follows in a moment.*"


def up_to_date(drawn: dict, title: str, key) -> bool:
    """Whether the tab `title` already shows what `key` describes (its inputs); records `key` as drawn. A
    tab's view keeps its `drawn` dict on the session, which a new face replaces."""
    if drawn.get(title) == key:
        return True
    drawn[title] = key
    return False


def values(view) -> list:
    """A view dataclass's fields in order, as Gradio takes outputs (dataclasses.astuple would deep-copy every
    figure)."""
    return [getattr(view, f.name) for f in fields(view)]
