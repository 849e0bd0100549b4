"""Every ``maestro run`` option gives the study Maestro would run, each step run once.

One study (tests/specs/options.yaml: parameters, a funnel, a step that times out and
is restarted, a failing branch) through the real ``maestro`` command and conductor,
under each option and some of their combinations: with Flux holding the
dependencies (the default), without (``flux_dependencies: false``), and under
Maestro's own loop (``MAESTRO_FLUX_PIPELINE=0``). Each run must end in the same
states, and each step must have run exactly as often (counted from the lines each
run of each step writes).
"""

from __future__ import annotations

import collections
import subprocess
import time
from pathlib import Path

import pytest
from brokers import TESTS
from test_studies_end_to_end import maestro, statuses, study_env

from maestro_flux.maestro import journal as journals

pytestmark = pytest.mark.e2e
SPEC = TESTS / "specs" / "options.yaml"
STEPS = ["a", "b_P.1", "b_P.2", "b_P.3", "c", "slow", "bad", "below_bad"]


def expected(options: list[str]) -> tuple[dict[str, str], dict[str, int]]:
    """The states and runs Maestro's own loop gives (checked below for some options):
    the restart of 'slow' times out once, so it finishes only with a restart limit
    (-r) of 2 or more, or 0 (no limit)."""
    rlimit = int(options[options.index("-r") + 1]) if "-r" in options else 1
    finishes = rlimit == 0 or rlimit >= 2
    states = {**dict.fromkeys(STEPS, "FINISHED"), "bad": "FAILED", "below_bad": "FAILED",
              "slow": "FINISHED" if finishes else "FAILED"}
    runs = {"a": 1, "b.1": 1, "b.2": 1, "b.3": 1, "c": 1, "slow": 1, "bad": 1,
            "slow.restart": 2 if finishes else 1}
    return states, runs


def runs_of(outdir: Path) -> dict[str, int]:
    """How often each step ran: every run of every step wrote one line in a 'ran' file
    of its workspace (hashed or not)."""
    count: collections.Counter = collections.Counter()
    for ran in outdir.rglob("ran"):
        count.update(line.strip() for line in ran.read_text().splitlines() if line.strip())
    return dict(count)


def spec_for(mode: str, tmp_path: Path) -> Path:
    if mode != "without-flux-dependencies":
        return SPEC
    copy = tmp_path / "options.yaml"
    copy.write_text(SPEC.read_text().replace("  type: flux\n",
                                             "  type: flux\n  flux_dependencies: false\n"))
    return copy


def run_study(flux_mode, tmp_path: Path, options: list[str], mode: str) -> Path:
    """The study run to its end under ``options``; returns its directory."""
    extra = {"MAESTRO_FLUX_PIPELINE": "0"} if mode == "maestro" else {}
    env = study_env(flux_mode, **extra)
    outdir = tmp_path / f"study-{mode}"
    foreground = "-fg" in options
    args = ["run", "-y", "-s", "1", *options, "-o", str(outdir), str(spec_for(mode, tmp_path))]
    done = maestro(args, env, tmp_path, timeout=300)
    # -fg exits with the study's status (FINISHED 0, FAILURE 2), else 0 once launched
    assert done.returncode in (0, 2), done.stdout[-2000:] + done.stderr[-2000:]
    if not foreground:
        wait_for_conductor(outdir)
    return outdir


def wait_for_conductor(outdir: Path, timeout: float = 240) -> None:
    """Until the background conductor has ended the study and exited."""
    end = time.time() + timeout
    while time.time() < end:
        beat = journals.heartbeat(outdir)
        done = (outdir / "status.csv").exists() and all(
            state in ("FINISHED", "FAILED", "CANCELLED", "DRYRUN")
            for state in statuses(outdir).values())
        if done and beat and not _alive(int(beat["pid"])):
            return
        time.sleep(0.5)
    raise AssertionError(f"the conductor of {outdir} did not end")


def _alive(pid: int) -> bool:
    return subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode == 0


CASES = [
    # (options, modes): ours with Flux holding the dependencies runs every case; the
    # others where they check something the first does not.
    (["-fg"], ["ours", "without-flux-dependencies", "maestro"]),
    (["-fg", "--hashws"], ["ours", "without-flux-dependencies", "maestro"]),
    (["-fg", "--usetmp"], ["ours", "maestro"]),
    (["-fg", "-t", "2"], ["ours", "maestro"]),
    (["-fg", "-r", "2"], ["ours", "maestro"]),
    (["-fg", "-r", "0"], ["ours"]),
    (["-fg", "-a", "2"], ["ours"]),
    (["-fg", "--hashws", "--usetmp", "-t", "1", "-r", "2"], ["ours", "without-flux-dependencies"]),
    (["--hashws", "-t", "3"], ["ours"]),  # the background conductor, as maestro run starts it
]


@pytest.mark.parametrize("options, mode", [(o, m) for o, modes in CASES for m in modes],
                         ids=[f"{' '.join(o)} {m}" for o, modes in CASES for m in modes])
def test_each_option_gives_maestros_study_with_each_step_run_once(flux_mode, tmp_path,
                                                                 options, mode):
    outdir = run_study(flux_mode, tmp_path, options, mode)
    states, runs = expected(options)
    assert statuses(outdir) == states
    assert runs_of(outdir) == runs


def test_a_dry_run_submits_nothing_and_stages_what_maestro_stages(flux_mode, tmp_path):
    ours = run_study(flux_mode, tmp_path, ["-fg", "--dry", "--hashws"], "ours")
    theirs = run_study(flux_mode, tmp_path, ["-fg", "--dry", "--hashws"], "maestro")
    assert statuses(ours) == statuses(theirs) == dict.fromkeys(STEPS, "DRYRUN")
    assert runs_of(ours) == {} and not (ours / journals.FOLDER / journals.JOURNAL).exists()
