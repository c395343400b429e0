"""Deprecated: moved to analysis.studies.sweep (this path is kept for existing commands and notebooks)."""
import sys
import warnings

from .studies import sweep

# Run as a command, the warning is __main__'s own, which Python shows by default; imported, the importer's.
warnings.warn("analysis.sweep is deprecated: use analysis.studies.sweep", DeprecationWarning,
              stacklevel=1 if __name__ == "__main__" else 2)
if __name__ == "__main__":
    sweep.main()
else:
    sys.modules[__name__] = sweep  # the same module: its attributes, and monkeypatching them, are shared
