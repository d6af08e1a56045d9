"""Running external commands: output captured to a log, failures raised with context."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from rig.errors import RigError


def run(
    argv: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    log: Path | None = None,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
) -> str:
    """Run a command; return its stdout. With ``log``, stdout+stderr are appended there."""
    args = [str(a) for a in argv]
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as f:
            f.write(f"$ {shlex.join(args)}\n")
            f.flush()
            proc = subprocess.run(
                args, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT,
                input=input_text, text=True, check=False,
            )
        if proc.returncode != 0:
            raise RigError(
                f"`{shlex.join(args)}` failed with status {proc.returncode}; see {log}"
            )
        return ""
    proc = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, input=input_text, text=True, check=False
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RigError(
            f"`{shlex.join(args)}` failed with status {proc.returncode}: {' | '.join(tail)}"
        )
    return proc.stdout
