"""Analysis of GVTNet: graphs, attention, threshold effects and LAM, as figures for scripts, notebooks,
reports and the app (no GUI imports here). The study commands built on them (ablation, LAM study, ...) are
the package analysis.studies.

    from analysis import inspect
    ins = inspect(model, lr)                      # graphs and attention of one forward pass
    analysis.graphs.graph_figure(ins, hr_face, group=0, head=0, selected=27)
    analysis.lam.local_attribution_map(model, lr, row=48, col=48)
"""
from . import attention, graphs, lam, threshold
from .inspection import BlockAttention, GroupGraph, Inspection, inspect

__all__ = ["inspect", "Inspection", "GroupGraph", "BlockAttention", "attention", "graphs", "lam", "threshold"]
