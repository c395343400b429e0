"""`python app.py` as a Space runs it, on a free port of 127.0.0.1, for the load and fuzz scripts and their
tests; with the server's memory read from /proc (Linux)."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        """The process runs and its page answers."""
        if self.proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(self.url, timeout=30) as r:
                return r.status == 200
        except OSError:
            return False

    def memory_mb(self) -> tuple[float, float]:
        """(resident now, peak resident) of the server process, in MB."""
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines())
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


@contextlib.contextmanager
def serve(log_dir: Path, timeout: float = 300, env: dict | None = None) -> Iterator[Server]:
    """`python app.py` on a free port (its output in log_dir/server-<port>.log); yields once the page
    answers, stops the server afterwards."""
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": str(ROOT), **(env or {})}
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"server-{port}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        server = Server(f"http://127.0.0.1:{port}/", proc, log_path)
        try:
            deadline = time.monotonic() + timeout
            while not server.alive():
                if proc.poll() is not None:
                    raise RuntimeError(f"app.py exited with {proc.returncode}; see {log_path}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"app.py did not answer within {timeout} s; see {log_path}")
                time.sleep(0.5)
            yield server
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
