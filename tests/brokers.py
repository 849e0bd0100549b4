"""Extra brokers for one test, in the session's mode: named queues, more nodes,
GPUs, a lagging job-list.

Real mode configures ``flux start`` with a TOML directory (``[queues.NAME]``, and
a resource file with GPUs: ``resource.noverify`` lets a test instance claim GPUs
the machine lacks, so GPU steps really run); the double takes the same wishes as
options. job-list lag exists only in the double: a real broker cannot be made to lag.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from conftest import TESTS, FluxMode, _stop, _wait_for_file

from maestro_flux.broker import bindings


def _ids(count: int) -> str:
    # An idset: flux R encode reads "0-0" as no ids at all.
    return "0" if count == 1 else f"0-{count - 1}"


def _real_config(tmp: Path, size: int, queues: tuple[str, ...], gpus: int) -> Path:
    conf = tmp / "conf"
    conf.mkdir()
    if queues:
        text = "".join(f"[queues.{name}]\n" for name in queues)
        # A job without a queue goes to the first one, as a site's default does.
        text += f'[policy.jobspec.defaults.system]\nqueue = "{queues[0]}"\n'
        (conf / "queues.toml").write_text(text)
    if gpus:
        R = subprocess.run(["flux", "R", "encode", f"--ranks={_ids(size)}",
                            f"--cores={_ids(os.cpu_count() or 1)}", f"--gpus={_ids(gpus)}"],
                           capture_output=True, text=True, check=True)
        (conf / "R.json").write_text(R.stdout)
        (conf / "resource.toml").write_text(
            f'[resource]\nnoverify = true\npath = "{conf / "R.json"}"\n')
    return conf


@contextlib.contextmanager
def extra_broker(mode: FluxMode, tmp: Path, size: int = 1, queues: tuple[str, ...] = (),
                 gpus: int = 0, list_lag: float = 0.0) -> Iterator[FluxMode]:
    """A broker of ``mode``'s kind with these properties, stopped afterwards."""
    tmp.mkdir(parents=True, exist_ok=True)
    uri_file = tmp / "uri"
    body = ["sh", "-c", f'echo "$FLUX_URI" > {uri_file}; exec sleep 100000']
    if mode.real:
        env = {k: v for k, v in os.environ.items() if k not in (bindings.BINDINGS_ENV,
                                                                   "FLUX_URI")}
        conf = _real_config(tmp, size, queues, gpus)
        if queues:  # a test instance's named queues start with scheduling stopped
            body[2] = f"flux queue start --all --quiet && {body[2]}"
        cmd = ["flux", "start", f"--test-size={size}", f"-o,--config-path={conf}", *body]
    else:
        env = {**os.environ, **mode.env}
        cmd = [sys.executable, "-m", "fluxdouble", f"--test-size={size}",
               f"--rundir={tmp}", f"--gpus-per-node={gpus}", f"--list-lag={list_lag}",
               *[f"--queue={name}" for name in queues], "--", *body]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    extra = FluxMode(mode.name, "", {}, proc, str(tmp))
    try:
        extra.uri = _wait_for_file(uri_file, proc)
        extra.env = {**mode.env, "FLUX_URI": extra.uri}
        yield extra
    finally:
        _stop(extra)


def double_path() -> str:
    """PATH with the double's ``flux`` command first (for ``maestro-flux run``)."""
    return os.pathsep.join([str(TESTS / "fluxdouble" / "bin"), os.environ["PATH"]])
