"""Deprecated: moved to analysis.studies.distances (this path is kept for existing commands and notebooks)."""
import sys
import warnings

from .studies import distances

# Run as a command, the warning is __main__'s own, which Python shows by default; imported, the importer's.
warnings.warn("analysis.distances is deprecated: use analysis.studies.distances", DeprecationWarning,
              stacklevel=1 if __name__ == "__main__" else 2)
if __name__ == "__main__":
    distances.main()
else:
    sys.modules[__name__] = distances  # the same module: its attributes, and monkeypatching them, are shared
