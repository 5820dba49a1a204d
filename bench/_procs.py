"""Child processes: the two servers (emulator, moto) and the measured clients.

Every child is started with our own interpreter and stopped by us, also on errors and Ctrl-C:
servers through ``ServerProcess`` (a context manager), clients through ``run_client`` (a
timeout, then kill).
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types import TracebackType

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
PYTHON = sys.executable
# A server that is not up after this long is broken, not slow.
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0


class ChildError(RuntimeError):
    """A child process failed; the message carries the tail of its stderr."""


def _tail(path: Path, limit: int = 3000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-limit:]


def _readline(stream: IO[str], timeout: float) -> str:
    # readline() alone could block forever on a hung child: wait for readability first.
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise TimeoutError(f"no answer within {timeout:.0f} s")
    return stream.readline()


class ServerProcess:
    """A bench server script run as a child, talking JSON lines over stdin/stdout.

    :param script: file name in ``bench/``.
    :param log_dir: where the child's stderr goes (read back in error messages).
    """

    def __init__(self, script: str, log_dir: Path) -> None:
        self.script = script
        self.log_path = log_dir / f"{Path(script).stem}.log"
        self._proc: subprocess.Popen[str] | None = None
        self._log: IO[bytes] | None = None
        self.ready: dict[str, Any] = {}

    def __enter__(self) -> ServerProcess:
        self._log = self.log_path.open("wb")
        self._proc = subprocess.Popen(
            [PYTHON, str(BENCH_DIR / self.script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            cwd=REPO_DIR,
        )
        try:
            self.ready = self._receive(START_TIMEOUT_SECONDS)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _receive(self, timeout: float) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None
        try:
            line = _readline(self._proc.stdout, timeout)
        except TimeoutError as err:
            raise ChildError(f"{self.script}: {err}\n{_tail(self.log_path)}") from None
        if not line:
            raise ChildError(f"{self.script} exited early:\n{_tail(self.log_path)}")
        reply: dict[str, Any] = json.loads(line)
        if reply.get("ok") is False:
            raise ChildError(f"{self.script}: {reply.get('error')}")
        return reply

    def call(self, timeout: float = 600.0, **request: Any) -> dict[str, Any]:
        """Send one request and return the reply (``ChildError`` if the server says it failed)."""
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        return self._receive(timeout)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            # Closing stdin asks politely; then SIGTERM; then SIGKILL. Always bounded.
            try:
                if proc.stdin is not None:
                    proc.stdin.close()
                proc.wait(timeout=STOP_TIMEOUT_SECONDS / 2)
            except (OSError, subprocess.TimeoutExpired):
                proc.terminate()
                try:
                    proc.wait(timeout=STOP_TIMEOUT_SECONDS / 2)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None


def run_client(spec: dict[str, Any], env: dict[str, str], log_dir: Path, timeout: float) -> dict[str, Any]:
    """Run ``bench/_client.py`` on ``spec`` in a fresh interpreter; return its JSON result.

    :param env: extra environment (connections, AIRFLOW_HOME) on top of ours.
    :param timeout: seconds before the child is killed.
    """
    log_path = log_dir / "client.log"
    with log_path.open("wb") as log:
        proc = subprocess.run(
            [PYTHON, str(BENCH_DIR / "_client.py"), json.dumps(spec)],
            stdout=subprocess.PIPE,
            stderr=log,
            env={**os.environ, **env},
            cwd=REPO_DIR,
            timeout=timeout,
            check=False,
        )
    if proc.returncode != 0:
        raise ChildError(f"client {spec['kind']} exited {proc.returncode}:\n{_tail(log_path)}")
    lines = proc.stdout.decode().strip().splitlines()
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def run_curl(url: str, out: Path, timeout: float) -> dict[str, Any]:
    """``curl -o`` the baseline: its own transfer time and its peak RSS (per-child rusage)."""
    argv = ["curl", "--silent", "--show-error", "--fail", "-o", str(out), "-w", "%{time_total}", url]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = start + timeout
    # os.wait4 gives this child's own ru_maxrss (RUSAGE_CHILDREN would be the max of all children).
    while True:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            pid, status, rusage = os.wait4(proc.pid, 0)
            raise ChildError(f"curl timed out after {timeout:.0f} s")
        time.sleep(0.005)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    stdout = proc.stdout.read().decode() if proc.stdout else ""
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    if proc.returncode != 0:
        raise ChildError(f"curl exited {proc.returncode}: {stderr.strip()}")
    return {
        "seconds": float(stdout.strip() or wall),
        "wall_seconds": wall,
        # curl has no "after imports" moment: its whole peak counts as growth.
        "peak_rss_growth": rusage.ru_maxrss * 1024,
        "bytes": out.stat().st_size,
    }
