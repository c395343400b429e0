"""Deprecated: moved to analysis.studies.ablation (this path is kept for existing commands and notebooks)."""
import sys
import warnings

from .studies import ablation

# Run as a command, the warning is __main__'s own, which Python shows by default; imported, the importer's.
warnings.warn("analysis.ablation is deprecated: use analysis.studies.ablation", DeprecationWarning,
              stacklevel=1 if __name__ == "__main__" else 2)
if __name__ == "__main__":
    ablation.main()
else:
    sys.modules[__name__] = ablation  # the same module: its attributes, and monkeypatching them, are shared
