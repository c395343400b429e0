"""One module per tab of the page. Each holds the tab's computations as plain functions (file paths, numbers,
PIL images and a Session in; image files, figures and small dataclasses out), which the tests call directly,
and `build(ctx)`, which lays the tab out and wires its own events through app.context.Context. A new view is
one module here with a TITLE and a `build`, and one entry in ui.TABS.

Errors a visitor can cause raise gr.Error with the real reason (Gradio would otherwise show a generic
"error"); notices that do not stop the work go through gr.Info / gr.Warning.
"""
