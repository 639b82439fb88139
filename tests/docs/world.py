"""The machine a doc page runs on: a fresh checkout, a fresh home, and the gateways it starts.

Each page gets its own world, shared by all its blocks in order, as a reader working down
the page would have it:

- the working directory is a fresh checkout: the repository's top-level entries linked
  into a temporary directory (so ``make demo``, ``examples/...`` and ``. .venv/bin/activate``
  work) without the repository's ``var/`` or databases;
- ``HOME`` and the XDG directories are temporary too, and no ``AGENITRY_*`` variable leaks
  in from the machine running the tests; the repository's ``.venv/bin`` leads ``PATH``;
- a gateway serves on a free port, given to ``agenitry serve`` as ``AGENITRY_PORT``; a page
  says ``127.0.0.1:8700`` (the default) and every block and shown output is read with the
  real port instead;
- a Python block's placeholder key ``"ag_..."`` is the agent key the page's gateway made
  (``AGENT_KEY``), so a client a page builds with it really talks to that gateway;
- shell variables a block sets (``OWNER_KEY=$(agenitry keys create ...)``) stay set for
  the page's later shell blocks, as in one terminal; those it exports reach its Python too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import httpx

from agenitry.gateway import Database, Gateway, Principal
from support.processes import free_port

REPOSITORY = Path(__file__).resolve().parents[2]
DOC_ADDRESS = "127.0.0.1:8700"
#: The key a page writes where a reader puts their agent's key.
DOC_KEY = '"ag_..."'
#: A shell block must finish within this many seconds; a background one must be serving by then.
BLOCK_TIMEOUT = 120.0
#: Left out of the checkout: what a run writes (a fresh clone has none of it).
NOT_CHECKED_OUT = {".git", "var", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis"}
#: voice-agent's policy as the quickstart sets it.
QUICKSTART_POLICY = {
    "agent_id": "voice-agent",
    "max_single_amount": 500,
    "max_daily_spend": 5000,
    "require_approval_above": 200,
    "allowed_actions": ["order_captured", "reservation_booked", "comp_issued"],
}


class Page:
    """One page's world; :meth:`close` stops everything it started."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.checkout = root / "checkout"
        self.checkout.mkdir(parents=True)
        for entry in REPOSITORY.iterdir():
            if entry.name not in NOT_CHECKED_OUT and entry.suffix not in {".db", ".key"}:
                (self.checkout / entry.name).symlink_to(entry)
        self.cwd = self.checkout
        self.port = free_port()
        home = root / "home"
        inherited = {name: value for name, value in os.environ.items() if not name.startswith("AGENITRY_")}
        self.env = {
            **inherited,
            "HOME": str(home),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "AGENITRY_PORT": str(self.port),
        }
        #: The doc's ids, bound to the ids the page's commands really printed (see matching.py).
        self.ids: dict[str, str] = {}
        self.background: list[tuple[subprocess.Popen[bytes], Path]] = []
        self.next_block_in_background = False
        self.next_python_interpreter: Optional[str] = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def localize(self, text: str) -> str:
        """A block as this page runs it: the real port and agent key, and the ids its commands printed."""
        text = text.replace(DOC_ADDRESS, self.address)
        if "AGENT_KEY" in self.env:
            text = text.replace(DOC_KEY, repr(self.env["AGENT_KEY"]))
        for doc_id, actual in self.ids.items():
            text = text.replace(doc_id, actual)
        return text

    @contextmanager
    def active(self) -> Iterator[None]:
        """Run Python in the page's directory and environment, as a reader's script would."""
        saved_env, saved_cwd = dict(os.environ), Path.cwd()
        os.environ.clear()
        os.environ.update(self.env)
        os.chdir(self.cwd)
        try:
            yield
        finally:
            os.chdir(saved_cwd)
            os.environ.clear()
            os.environ.update(saved_env)

    def run_shell(self, source: str) -> str:
        """Run a block with bash ``-euo pipefail``; what it printed on stdout (notes on stderr are not the answer)."""
        state = self.root / "state"
        script = (
            f"[ -f {state}.sh ] && . {state}.sh\nset -euo pipefail\n{source}\n"
            # Plain and exported variables, for the next block; readonly ones are bash's own.
            f"{{ declare -p | grep -E '^declare -[-x] ' || true; }} > {state}.sh\n"
            f"env -0 > {state}.env\npwd > {state}.cwd\n"
        )
        finished = subprocess.run(
            ["bash", "-c", script],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            timeout=BLOCK_TIMEOUT,
            check=False,
        )
        output, notes = finished.stdout.decode(), finished.stderr.decode()
        if finished.returncode != 0:
            raise AssertionError(
                f"The block exited with {finished.returncode}:\n{source}\n\nIt printed:\n{output}{notes}"
            )
        variables = Path(f"{state}.env").read_bytes().decode().split("\0")
        self.env = dict(variable.split("=", 1) for variable in variables if "=" in variable)
        self.cwd = Path(Path(f"{state}.cwd").read_text().strip())
        return output

    def run_elsewhere(self, interpreter: str, source: str) -> str:
        """Run a Python block with another environment's interpreter (one the page made); its stdout."""
        finished = subprocess.run(
            [interpreter, "-"],
            input=source.encode(),
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            timeout=BLOCK_TIMEOUT,
            check=False,
        )
        if finished.returncode != 0:
            raise AssertionError(f"{interpreter} exited with {finished.returncode}:\n{finished.stderr.decode()}")
        return finished.stdout.decode()

    def start_in_background(self, source: str) -> str:
        """Start a block that serves until Ctrl-C (``agenitry serve``, ``make demo``); wait for the gateway."""
        log = self.root / f"background-{len(self.background)}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                ["bash", "-c", f"set -euo pipefail\n{source}"],
                cwd=self.cwd,
                env=self.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.background.append((process, log))
        deadline = time.monotonic() + BLOCK_TIMEOUT
        while not self._serving():
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"The block did not start a gateway on {self.address}:\n{source}\n\n{log.read_text()}"
                )
            time.sleep(0.1)
        return log.read_text()

    def interrupt(self) -> None:
        """Press Ctrl-C in every terminal serving in the background; each must stop by itself."""
        for process, log in self.background:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGINT)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self._kill(process)
                    raise AssertionError(f"Ctrl-C did not stop the block:\n{log.read_text()}") from None
        self.background.clear()

    def start_gateway(self) -> None:
        """What the quickstart leaves: venue nobo-downtown, OWNER_KEY, AGENT_KEY, its policy, ``agenitry serve``."""
        url = f"sqlite:///{self.root / 'gateway.db'}"
        database = Database(url)
        try:
            database.migrate()
            gateway = Gateway(database)
            gateway.create_venue("nobo-downtown")
            _, owner_key = gateway.create_key(Principal.operator("nobo-downtown"), role="admin")
            _, agent_key = gateway.create_key(Principal.operator("nobo-downtown"), role="agent", agent_id="voice-agent")
            gateway.put_policy(Principal.operator("nobo-downtown"), QUICKSTART_POLICY)
        finally:
            database.dispose()
        assert owner_key and agent_key, "a new key always shows its secret"
        self.env.update(
            AGENITRY_DATABASE_URL=url,
            AGENITRY_BASE_URL=f"http://{self.address}",
            OWNER_KEY=owner_key,
            AGENT_KEY=agent_key,
        )
        self.start_in_background("agenitry serve --sweep-interval 0 --log-level warning")

    def close(self) -> None:
        for process, _ in self.background:
            self._kill(process)
        self.background.clear()

    def _serving(self) -> bool:
        try:
            return httpx.get(f"http://{self.address}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    @staticmethod
    def _kill(process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
