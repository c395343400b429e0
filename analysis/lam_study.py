"""Deprecated: moved to analysis.studies.lam_study (this path is kept for existing commands and notebooks)."""
import sys
import warnings

from .studies import lam_study

# Run as a command, the warning is __main__'s own, which Python shows by default; imported, the importer's.
warnings.warn("analysis.lam_study is deprecated: use analysis.studies.lam_study", DeprecationWarning,
              stacklevel=1 if __name__ == "__main__" else 2)
if __name__ == "__main__":
    lam_study.main()
else:
    sys.modules[__name__] = lam_study  # the same module: its attributes, and monkeypatching them, are shared
