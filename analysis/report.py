"""Deprecated: moved to analysis.studies.report (this path is kept for existing commands and notebooks)."""
import sys
import warnings

from .studies import report

# Run as a command, the warning is __main__'s own, which Python shows by default; imported, the importer's.
warnings.warn("analysis.report is deprecated: use analysis.studies.report", DeprecationWarning,
              stacklevel=1 if __name__ == "__main__" else 2)
if __name__ == "__main__":
    report.main()
else:
    sys.modules[__name__] = report  # the same module: its attributes, and monkeypatching them, are shared
