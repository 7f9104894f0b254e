"""How many refused-but-identical cells of the committed matrix ``--policy tested`` accepts after recording.

Method (no environment is rebuilt; a full matrix run takes half an hour): for every reference fixture
``fixtures/sklearn-X.Y/M.mlbundle``, the committed cells of that bundle (``reports/matrix.json``: bundled under X.Y,
loaded under every release) are written into a copy of it as its record, by the code ``bundler matrix --record``
uses (``entries_from_cells`` + ``record_into_bundle``). Then every cell is verified again, in this process, with
``against=`` the exact versions that cell's loading environment had (what the matrix worker recorded), once under
``default`` and once under ``tested`` (with ``trust_record=True``: the fixtures are checksummed; a signed bundle
verified with its key behaves the same). Counted: refused-by-policy cells (refused by ``default``, identical when
forced) that ``tested`` accepts; and, as the safety side, cells of any other status that ``tested`` accepts where
``default`` does not (a cell that fails in its own environment is accepted by both: the failure is at load).

``python benchmarks/tested_record.py [--json OUT]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _target(environment: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in environment.items() if k not in ("python", "bundler") and v != "-"}


def measure(fixtures: Path, matrix: Path) -> dict[str, Any]:
    import bundler
    from bundler.crossversion.cells import REFUSED_BY_POLICY, cell_from_dict
    from bundler.crossversion.record import record_into_bundle

    cells = [cell_from_dict(c, source=str(matrix)) for c in json.loads(matrix.read_text(encoding="utf-8"))["cells"]]
    tally: Counter[str] = Counter()
    accepted_other: list[str] = []
    refused_left: list[str] = []
    with tempfile.TemporaryDirectory(prefix="tested-measure-") as tmp:
        for bundle in sorted(fixtures.glob("sklearn-*/*.mlbundle")):
            bundled = bundle.parent.name.split("-", 1)[1]
            mine = [c for c in cells if c.model == bundle.stem and c.bundled == bundled]
            copy = Path(tmp) / f"{bundled}-{bundle.name}"
            shutil.copy(bundle, copy)
            record_into_bundle(copy, mine)
            for cell in mine:
                against = _target(cell.environment)
                if not against:
                    continue
                default_ok = bundler.verify(copy, policy="default", against=against).ok
                tested = bundler.verify(copy, policy="tested", against=against, trust_record=True)
                label = f"{cell.model} {cell.bundled}->{cell.loaded} ({cell.status})"
                if cell.status == REFUSED_BY_POLICY:
                    tally["refused_identical"] += 1
                    tally["refused_identical_default_accepts"] += default_ok
                    if tested.ok:
                        tally["refused_identical_tested_accepts"] += 1
                    else:
                        refused_left.append(f"{label}: {[p.message for p in tested.problems][:2]}")
                elif tested.ok and not default_ok:  # accepted on the record's word alone, yet not identical
                    accepted_other.append(label)
                tally[f"{cell.status}_tested_accepts"] += tested.ok
                tally[cell.status] += 1
    return {"counts": dict(sorted(tally.items())), "refused_identical_not_accepted": refused_left,
            "non_identical_accepted_by_tested": accepted_other}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="OUT", help="also write the result as JSON")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    result = measure(ROOT / "fixtures", ROOT / "reports" / "matrix.json")
    counts = result["counts"]
    print(f"refused-but-identical cells: {counts.get('refused_identical', 0)}; accepted under tested after "
          f"recording: {counts.get('refused_identical_tested_accepts', 0)}; under default: "
          f"{counts.get('refused_identical_default_accepts', 0)}; cells of another outcome accepted by tested alone: "
          f"{len(result['non_identical_accepted_by_tested'])}")
    for line in result["refused_identical_not_accepted"]:
        print(f"  not accepted: {line}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
