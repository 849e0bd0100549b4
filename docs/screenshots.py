"""Regenerate the views' screenshots in docs/pages/img/ (issue 27): ``status --watch``
under tmux, its screen captured with colours (``capture-pane -e``) and drawn to PNG
(rich's SVG export, then headless Chromium), and the report in headless Chromium.

    python docs/screenshots.py STUDY_DIR NAME [--watch-after SECONDS]

with FLUX_URI (and the bindings) pointing at the study's broker; run it while the
study runs for a live screen. Needs tmux and Chromium (Debian: apt-get install chromium).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.text import Text

IMG = Path(__file__).resolve().parent / "pages" / "img"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "chromium"


def chromium_png(page: Path, png: Path, width: int, height: int) -> None:
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--hide-scrollbars",
                    f"--window-size={width},{height}", "--virtual-time-budget=8000",
                    f"--screenshot={png}", page.as_uri()], check=True,
                   capture_output=True, timeout=180)


def watch_png(study: Path, name: str, after: float, cols: int = 150, rows: int = 42) -> Path:
    session = f"mfshot{int(time.time()) % 100000}"
    maestro_flux = Path(sys.executable).parent / "maestro-flux"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", str(cols), "-y",
                    str(rows), f"{maestro_flux} status --watch --interval 1 {study}; sleep 600"],
                   check=True)
    try:
        time.sleep(after)
        screen = subprocess.run(["tmux", "capture-pane", "-e", "-p", "-t", session],
                                capture_output=True, text=True, check=True).stdout
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    console = Console(record=True, width=cols, file=open("/dev/null", "w"),
                      force_terminal=True, color_system="truecolor")
    console.print(Text.from_ansi(screen.rstrip("\n")), crop=False)
    folder = Path(tempfile.mkdtemp())
    svg = folder / "screen.svg"
    svg.write_text(console.export_svg(title=f"maestro-flux status --watch {study.name}"))
    page = folder / "screen.html"
    page.write_text(f"<html><body style='margin:0;background:#fff'>"
                    f"<img src='{svg.as_uri()}' style='width:{cols * 8.6:.0f}px'></body></html>")
    png = IMG / f"status-{name}.png"
    lines = len(screen.rstrip().splitlines())
    chromium_png(page, png, int(cols * 8.6), int(lines * 17.2 + 60))
    return png


def report_png(study: Path, name: str) -> Path:
    html = Path(tempfile.mkdtemp()) / "report.html"
    maestro_flux = Path(sys.executable).parent / "maestro-flux"
    subprocess.run([str(maestro_flux), "report", str(study), "-o", str(html)], check=True)
    png = IMG / f"report-{name}.png"
    chromium_png(html, png, 1300, 1700)
    return png


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("name")
    parser.add_argument("--watch-after", type=float, default=3.0)
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args()
    print(watch_png(args.study.resolve(), args.name, args.watch_after))
    if not args.no_report:
        print(report_png(args.study.resolve(), args.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
