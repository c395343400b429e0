"""The app's computations, one module per tab, as plain functions: file paths, numbers and PIL images in;
Sessions, image files, figures and dicts out. ui.py only wires them to components, and the tests call them
directly.

Errors a visitor can cause raise gr.Error with the real reason (Gradio would otherwise show a generic
"error"); notices that do not stop the work go through gr.Info / gr.Warning.
"""
