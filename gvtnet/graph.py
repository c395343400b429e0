"""Deprecated alias of `gvtnet.adjacency`, the patch graph's adjacency (renamed so that it is not mistaken
for `analysis.graphs` or the app's graph tab): importing it warns and re-exports that module."""
import warnings

from .adjacency import DISTANCE_BASES, NEIGHBOUR_RULES, adjacency, chebyshev_distance, node_features

__all__ = ["DISTANCE_BASES", "NEIGHBOUR_RULES", "adjacency", "chebyshev_distance", "node_features"]

warnings.warn("gvtnet.graph is deprecated: use gvtnet.adjacency", DeprecationWarning, stacklevel=2)
