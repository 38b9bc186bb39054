"""Write the benches' figures into the docs from their records (bench/results/*.json).

docs/benchmarks.md holds one section per bench between `<!-- bench:NAME -->` and
`<!-- /bench:NAME -->`; README holds the table of goals between `<!-- bench:goals -->` and
`<!-- /bench:goals -->`. Everything between the markers is replaced from the records, so a
figure a user reads is the one a bench measured, with its date, commit and machine.
``--check`` changes nothing and exits 1 when a document is out of date (the tests run it).

    python bench/tables.py [--check]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Dict, List

from harness import RESULTS, ROOT, markdown_table

DOCUMENTS = (ROOT / "docs" / "benchmarks.md", ROOT / "README.md")
SCRIPTS = {"gpu_rollouts": "gpu_study.py --parts rollouts"}  # records a script of another name writes
MARKER = re.compile(r"(<!-- bench:([a-z_]+) -->\n)(.*?)(<!-- /bench:\2 -->)", re.S)


def records(folder: Path = RESULTS) -> Dict[str, dict]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


def provenance(record: dict) -> str:
    m = record["machine"]
    where = f"{m['gpu']}, " if m.get("gpu") else ""
    settings = ", ".join(f"{k}={v}" for k, v in record["settings"].items())
    return (f"_Measured {record['date']} at commit {record['commit']} on {where}{m['cpu']} ({m['cores']} cores), "
            f"torch {m['torch']}; settings: {settings}._")


def goal_row(goal: dict) -> List[str]:
    d = goal["digits"]
    return [goal["what"], f"{goal['value']:.{d}f}", f"{'>=' if goal['at_least'] else '<='} {goal['target']:g}",
            "met" if goal["met"] else "**missed**"]


def section(record: dict) -> str:
    parts = [f"{record['summary'][0].upper()}{record['summary'][1:]}.", "", provenance(record), ""]
    for table in record["tables"]:
        parts += [f"{table['title']}:", "", markdown_table(table["columns"], table["rows"]), ""]
    parts += [note + "\n" for note in record["notes"]]
    if record["goals"]:
        parts += ["Goals:", "", markdown_table(["goal", "measured", "target", ""],
                                               [goal_row(g) for g in record["goals"]]), ""]
    return "\n".join(parts)


def goals_table(all_records: Dict[str, dict]) -> str:
    rows = [[f"`{name}`"] + goal_row(goal) + [record["date"]]
            for name, record in all_records.items() for goal in record["goals"]]
    return markdown_table(["bench", "goal", "measured", "target", "", "date"], rows) + "\n"


def render(text: str, all_records: Dict[str, dict]) -> str:
    def replace(match: re.Match) -> str:
        name = match.group(2)
        if name == "goals":
            body = goals_table(all_records)
        elif name in all_records:
            body = section(all_records[name])
        else:
            body = f"_No record yet: run `python bench/{SCRIPTS.get(name, name + '.py')}`._\n"
        return match.group(1) + body + match.group(4)

    return MARKER.sub(replace, text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a document is out of date")
    args = parser.parse_args()
    all_records, stale = records(), []
    for path in DOCUMENTS:
        text = path.read_text()
        new = render(text, all_records)
        if new != text:
            stale.append(path.relative_to(ROOT))
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        print(f"out of date with bench/results: {', '.join(map(str, stale))} (run python bench/tables.py)")
        return 1
    print(("rewrote " + ", ".join(map(str, stale))) if stale else "the documents are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
