"""The views as a person sees them (issue 27): the report opened in headless Chromium
(no console error, nothing fetched, every step drawn, the timeline's bars at the
jobs' eventlog times), and ``status --watch`` driven under tmux (it updates as jobs
move and exits when the study ends). Skipped, with the reason, where Chromium or tmux
is absent.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from brokers import TESTS
from test_studies_end_to_end import BIN, maestro, study_env
from test_views import in_background

from maestro_flux.broker import bindings, study_jobs
from maestro_flux.model import jobids
from maestro_flux.model.study_view import eventlog_times

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

#: Put before the report's own scripts: records errors and console.error calls, then,
#: once plotly has drawn, what the page really shows, into <pre id=probe>.
PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message)));
const __err = console.error;
console.error = (...a) => { window.__errors.push(a.join(' ')); __err(...a); };
window.addEventListener('load', () => setTimeout(() => {
  const out = {errors: window.__errors, plots: {}};
  for (const gd of document.querySelectorAll('.js-plotly-plot')) {
    out.plots[gd.id] = {
      data: gd.data.map(t => ({type: t.type, name: t.name, x: t.x, y: t.y, base: t.base,
                                text: t.text})),
      texts: Array.from(gd.querySelectorAll('g.textpoint text')).map(t => t.textContent),
      bars: gd.querySelectorAll('g.trace.bars g.point path').length,
      markers: gd.querySelectorAll('g.trace.scatter g.points path.point').length};
  }
  const pre = document.createElement('pre'); pre.id = 'probe';
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
}, 500));
</script>"""


@pytest.fixture
def mixed_report(flux_mode, tmp_path):
    """The mixed study (tests/specs/views_mixed.yaml) run, and its report."""
    env = study_env(flux_mode)
    outdir = tmp_path / "study"
    maestro(["run", "-fg", "-y", "-s", "1", "-o", str(outdir),
             str(TESTS / "specs" / "views_mixed.yaml")], env, tmp_path)
    report = tmp_path / "report.html"
    done = subprocess.run([str(BIN / "maestro-flux"), "report", str(outdir), "-o", str(report)],
                          env=env, text=True, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return outdir, report, flux_mode


def open_in_chromium(report: Path, tmp_path: Path) -> dict:
    page = tmp_path / "probed.html"
    page.write_text(report.read_text().replace("<head>", "<head>" + PROBE, 1))
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--no-first-run",
         # nothing may be fetched: every request goes to a proxy that is not there
         "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000",
         "--window-size=1300,2000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=180)
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found, f"the page did not finish drawing: {done.stderr[-2000:]}"
    import html

    return json.loads(html.unescape(found.group(1)))


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on PATH (Debian: apt-get install "
                                             "chromium)")
def test_the_report_draws_every_step_and_every_jobs_times_in_chromium(mixed_report, tmp_path):
    outdir, report, mode = mixed_report
    text = report.read_text()
    outside_scripts = re.sub(r"<script.*?</script>", "", text, flags=re.S)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", outside_scripts)
    probe = open_in_chromium(report, tmp_path)
    assert probe["errors"] == []
    graph, timeline = probe["plots"]["graph"], probe["plots"]["timeline"]
    steps = {"prepare", "slow", "after_slow", *(f"sim_X.{x}" for x in range(1, 5)),
             *(f"post_X.{x}" for x in range(1, 5))}
    assert set(graph["texts"]) == steps  # every step drawn, with its name
    assert graph["markers"] == len(steps)
    # the timeline: one bar per phase drawn, each at its job's eventlog times
    bars = [(trace["name"], y, base, width) for trace in timeline["data"]
            for y, base, width in zip(trace["y"], trace["base"], trace["x"], strict=True)]
    assert timeline["bars"] == len(bars)
    journal_ids = _study_job_ids(outdir)
    handle = bindings.connect(mode.uri)
    logs = study_jobs.eventlogs(handle, [jobids.parse_jobid(j) for j in journal_ids.values()])
    times = {row: eventlog_times(logs[jobids.parse_jobid(jobid)])
             for row, jobid in journal_ids.items()}
    origin = min(t["t_submit"] for t in times.values())
    running = {y: (base, width) for name, y, base, width in bars if name == "running"}
    assert set(running) == set(times)  # every job ran, the failed one and both of slow's
    for row, (base, width) in running.items():
        expected = times[row]
        assert base == pytest.approx(expected["t_run"] - origin, abs=1e-3), row
        assert base + width == pytest.approx(expected["t_cleanup"] - origin, abs=1e-3), row
    never = [(name, base, width) for name, y, base, width in bars if y == "post_X.3"]
    assert [name for name, _, _ in never][0] == "waiting on dependencies"
    assert "running" not in [name for name, _, _ in never]


def _study_job_ids(outdir: Path) -> dict[str, str]:
    """Timeline row -> job id, for every job that ran ("slow" and "slow #2")."""
    from maestro_flux.maestro import journal

    rows: dict[str, str] = {}
    for sent in journal.read(outdir).sent.values():
        if sent.jobid and not sent.dropped:
            attempt = sum(1 for row in rows if row.split(" #")[0] == sent.step) + 1
            rows[sent.step + (f" #{attempt}" if attempt > 1 else "")] = sent.jobid
    return rows


@pytest.mark.skipif(shutil.which("tmux") is None, reason="no tmux on PATH")
def test_status_watch_updates_in_place_and_exits_when_the_study_ends(flux_mode, tmp_path):
    env = study_env(flux_mode)
    spec = tmp_path / "chain.yaml"
    spec.write_text("description: {name: watched, description: a chain of three}\n"
                    "batch: {type: flux}\nstudy:\n"
                    + "".join(f"  - name: s{i}\n    description: step {i}\n"
                              f"    run: {{cmd: sleep 3{f', depends: [s{i - 1}]' if i else ''}}}\n"
                              for i in range(3)))
    outdir = in_background(spec, env, tmp_path)
    session = f"mfwatch{int(time.time() * 1000) % 100000}"
    exported = " ".join(f"{k}={_quote(v)}" for k, v in env.items()
                        if k in ("PATH", "FLUX_URI", "MAESTRO_FLUX_BINDINGS",
                                 "FLUXDOUBLE_VERSION", "PYTHONPATH", "LD_LIBRARY_PATH"))
    command = (f"env {exported} {BIN / 'maestro-flux'} status --watch --interval 1 {outdir}; "
               f"echo WATCH-EXITED $?; sleep 600")
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "40",
                    command], check=True)
    try:
        seen = set()
        screens = []
        end = time.time() + 120
        while time.time() < end:
            screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", session],
                                    capture_output=True, text=True).stdout
            screens.append(screen)
            for i in range(3):
                if re.search(rf"s{i}\s+\S+\s+RUN\b", screen):
                    seen.add(f"s{i} running")
            if "WATCH-EXITED" in screen:
                break
            time.sleep(0.5)
        final = screens[-1]
        assert "WATCH-EXITED 0" in final, final
        assert seen == {"s0 running", "s1 running", "s2 running"}, seen
        assert "3 steps: 3 done   the study has ended" in final
        # drawn in place: one header on the screen, not one per refresh
        assert final.count("watched  ") == 1
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"
