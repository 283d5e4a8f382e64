"""Entry points that are not a Python script: ``runtimeDescriptor.entry.path`` naming a shell
(``bash /panorama/run_app.sh``, as the GPU samples' descriptors do) whose script exports
variables, maybe installs things, then starts ``python3 /panorama/app.py``.

The script runs as it is, with the appliance's paths in its text mapped into the run
directory (``/panorama`` -> the code package's ``src``, ``/opt/aws/panorama/logs`` and
``/storage`` -> the run directory), and ``python``/``python3``/``python3.X`` on its ``PATH``
standing for the runtime: the Python script the shell starts is the application, run under
``panoramasdk`` with the runner's options. ``python -c ...`` and ``python -m MODULE`` for a
module that is not the app's (``-m pip install ...``) run the real interpreter.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from typing import Dict, List, Optional, Tuple

#: Interpreters a descriptor may name for a shell script.
SHELLS = ("bash", "sh", "dash", "zsh", "ksh")
_PYTHONS = ["python", "python3"] + [f"python3.{m}" for m in range(6, 15)]
ENV_RUN = "PANORAMASDK_RUN_ARGV"
ENV_RESULT = "PANORAMASDK_RUN_RESULT"
ENV_PATH = "PANORAMASDK_RUN_PATH"
ENV_CODE = "PANORAMASDK_RUN_CODE"


def kind(path: str) -> Optional[str]:
    """``python`` or ``shell`` for an entry path (``python3.8``, ``/bin/bash``...), else
    None."""
    base = os.path.basename(path)
    if re.fullmatch(r"python(\d+(\.\d+)?)?", base):
        return "python"
    if base in SHELLS:
        return "shell"
    return None


def map_text(text: str, mapping: Dict[str, str]) -> str:
    """``text`` with each appliance path prefix of ``mapping`` replaced by its real directory
    where it stands as a path (not inside a longer name), in one pass."""
    if not mapping:
        return text
    prefixes = sorted(mapping, key=len, reverse=True)
    pattern = re.compile(r"(?<![\w.\-/])(" + "|".join(map(re.escape, prefixes)) + r")(?![\w.\-])")
    return pattern.sub(lambda m: mapping[m.group(1)], text)


def run_shell(shell: str, script: str, args: List[str], mapping: Dict[str, str],
              run_dir: str, run_argv: List[str]) -> Tuple[Optional[int], int]:
    """Runs ``shell script args`` with the appliance paths mapped and the runtime as its
    Python. Returns (the runtime's exit code, or None when the script never started it;
    the shell's exit code)."""
    try:
        with open(script, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except OSError as e:
        from panoramasdk._run import RunError

        raise RunError(f"entry script {script}: {e.strerror}") from None
    work = os.path.join(run_dir, "entry")
    bindir = os.path.join(work, "bin")
    os.makedirs(bindir, exist_ok=True)
    mapped = os.path.join(work, os.path.basename(script))
    with open(mapped, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(map_text(text, mapping))
    shim = f'#!/bin/sh\nexec "{sys.executable}" -m panoramasdk _entry "$@"\n'
    for name in _PYTHONS:
        p = os.path.join(bindir, name)
        with open(p, "w") as f:
            f.write(shim)
        os.chmod(p, os.stat(p).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    result = os.path.join(work, "result")
    if os.path.exists(result):
        os.remove(result)
    env = dict(os.environ)
    env[ENV_PATH] = env.get("PATH", "")
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env[ENV_RUN] = json.dumps(run_argv)
    env[ENV_RESULT] = result
    env[ENV_CODE] = mapping.get("/panorama", "")
    code = subprocess.run([shell, mapped, *args], env=env).returncode
    try:
        with open(result) as f:
            return int(f.read().strip()), code
    except (OSError, ValueError):
        return None, code


def record(code: int) -> None:
    """Tells the shell runner the runtime's exit code (when run from an entry script)."""
    path = os.environ.get(ENV_RESULT)
    if path:
        try:
            with open(path, "w") as f:
                f.write(str(code))
        except OSError:
            pass


_FLAGS = set("bBdEiIOqsSuvx")


def python_args(argv: List[str]) -> Tuple[Optional[str], Optional[str], List[str]]:
    """What a ``python3 ARGS`` invocation runs: (script, module, their arguments); both None
    for ``-c`` or no program (not the app)."""
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "-m" and i + 1 < len(argv):
            return None, argv[i + 1], argv[i + 2:]
        if a.startswith("-m") and len(a) > 2:
            return None, a[2:], argv[i + 1:]
        if a in ("-W", "-X"):
            i += 2
            continue
        if a.startswith(("-W", "-X")):
            i += 1
            continue
        if a.startswith("-c") or a == "-":
            return None, None, []
        if a.startswith("-") and len(a) > 1 and set(a[1:]) <= _FLAGS:
            i += 1
            continue
        if a.startswith("-"):
            return None, None, []
        return a, None, argv[i + 1:]
    return None, None, []


def _apps_module(module: str, code_dir: str) -> bool:
    """Whether ``python -m module`` runs the app's own code (in its code directory or the
    current one), not an installed tool such as pip."""
    rel = module.replace(".", os.sep)
    for base in {code_dir, os.getcwd()} - {""}:
        if os.path.isfile(os.path.join(base, rel + ".py")) or \
                os.path.isfile(os.path.join(base, rel, "__main__.py")):
            return True
    return False


def main(argv: List[str]) -> int:
    """``python3 ARGS`` as the entry script ran it: the app under the runtime, anything else
    the real interpreter (the shims leave PATH for the app's own subprocesses)."""
    run_argv = os.environ.pop(ENV_RUN, None)
    if ENV_PATH in os.environ:
        os.environ["PATH"] = os.environ.pop(ENV_PATH)
    code_dir = os.environ.pop(ENV_CODE, "")
    script, module, rest = python_args(argv)
    if module is not None and not _apps_module(module, code_dir):
        module = None
    if run_argv is None or (script is None and module is None):
        os.execv(sys.executable, [sys.executable, *argv])
    from panoramasdk import _run

    return _run.run(json.loads(run_argv), entry=(script, module, rest))
