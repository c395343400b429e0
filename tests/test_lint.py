"""The code stays lint-clean under the project's own ruff configuration (pyproject.toml), as the pre-commit
hook checks on each commit."""
import subprocess
import sys
from pathlib import Path


def test_ruff_finds_nothing():
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", str(root)],
                         capture_output=True, text=True, cwd=root)
    assert out.returncode == 0, out.stdout + out.stderr
