"""`make bench`: run every benchmark and write its JSON under bench/results/.

python -m bench.run [--quick]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench import bus

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    quick = "--quick" in args
    RESULTS.mkdir(exist_ok=True)
    import asyncio

    report = asyncio.run(bus.run(bus.QUICK if quick else bus.FULL, list(bus.SYSTEMS)))
    (RESULTS / "bus.json").write_text(json.dumps(report, indent=2) + "\n")
    print(bus.table(report))
    print(f"wrote {RESULTS / 'bus.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
