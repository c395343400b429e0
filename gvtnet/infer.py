"""Deprecated alias of `gvtnet.upscale_files`, the command line that upscales image files (renamed so that
it is not mistaken for the library, `gvtnet.inference`). Importing it warns and re-exports that module;
`python -m gvtnet.infer` warns and runs it."""
import warnings

from .upscale_files import input_output_paths, main

__all__ = ["input_output_paths", "main", "image_files"]

image_files = input_output_paths  # its name here, which `gvtnet.data.image_files(folder)` also has

# Attributed to __main__ when run as a command, where Python shows DeprecationWarnings by default.
warnings.warn("gvtnet.infer is deprecated: use gvtnet.upscale_files (python -m gvtnet.upscale_files)",
              DeprecationWarning, stacklevel=1 if __name__ == "__main__" else 2)

if __name__ == "__main__":
    main()
