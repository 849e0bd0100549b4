"""Run ``maestro`` in this process, then write this process's peak RSS (KiB) to a file.

``maestro run -fg`` runs the conductor in the ``maestro`` process itself, so this is
the conductor's peak memory over the whole study.

    python -m benchmarks.maestro_rss OUTFILE run -fg ...
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path


def main() -> int:
    out = Path(sys.argv[1])
    sys.argv = ["maestro", *sys.argv[2:]]
    from maestrowf.maestro import main as maestro_main

    try:
        return maestro_main() or 0
    finally:
        out.write_text(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))


if __name__ == "__main__":
    sys.exit(main())
