"""``agenitry serve`` in processes of their own, started and stopped robustly.

Each process gets a free port; if another process takes that port between our probe and
the server's bind, the server is started again on another one. Its output goes to a log
file, quoted in the error when it does not come up.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import httpx

SERVER_START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def python_script(source: str, *args: str) -> list[str]:
    """The command that runs ``source`` (dedented) with ``args``, as a user's script runs."""
    return [sys.executable, "-c", textwrap.dedent(source), *args]


def run_script(source: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``source`` to its end (at most ``timeout`` seconds), capturing its output."""
    return subprocess.run(python_script(source, *args), capture_output=True, text=True, timeout=timeout, check=False)


@dataclass
class GatewayProcess:
    """One ``agenitry serve`` on ``database_url``; ``options`` are more command-line options."""

    database_url: str
    log: Path
    options: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    process: Optional[subprocess.Popen[bytes]] = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def launch(self) -> GatewayProcess:
        """Start the process without waiting for it to answer (see :meth:`wait_until_up`)."""
        self.port = free_port()
        command = [
            *(sys.executable, "-m", "agenitry.gateway.cli", "serve"),
            *("--db", self.database_url, "--port", str(self.port), "--log-level", "warning"),
            *self.options,
        ]
        if "--sweep-interval" not in self.options:
            command += ["--sweep-interval", "0"]
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                command, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, **self.env}
            )
        return self

    def wait_until_up(self) -> GatewayProcess:
        """Wait for /healthz to answer 200; started again once if the port was taken."""
        try:
            self._wait()
        except RuntimeError:
            self.stop()
            self.launch()._wait()
        return self

    def start(self) -> GatewayProcess:
        return self.launch().wait_until_up()

    def _wait(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"agenitry serve exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(
            f"agenitry serve did not answer at {self.url} within {SERVER_START_TIMEOUT} s:\n{self.log.read_text()}"
        )

    def kill(self) -> None:
        """``kill -9``: no shutdown, no flush, no rollback but the database's own."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def start_gateways(
    database_url: str, logs: Path, count: int, options: tuple[str, ...] = (), env: Optional[dict[str, str]] = None
) -> list[GatewayProcess]:
    """Start ``count`` gateways on one database side by side; all are stopped if one fails."""
    gateways = [GatewayProcess(database_url, logs / f"serve-{n}.log", options, dict(env or {})) for n in range(count)]
    try:
        for gateway in gateways:
            gateway.launch()
        for gateway in gateways:
            gateway.wait_until_up()
    except BaseException:
        for gateway in gateways:
            gateway.stop()
        raise
    return gateways
