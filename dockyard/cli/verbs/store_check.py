"""``dockyard system check [--repair]``: dockyard's own check of the store (``POST /dockyard/system/check``).

Prints one line per problem (``KIND  SUBJECT  DETAIL``) and a summary. Exit status: 0 when the
store is clean (or ``--repair`` fixed everything), 1 when problems are left.
"""

from __future__ import annotations

import sys

from dockyard.cli import units
from dockyard.cli.flags import Flag, FlagSet

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.cli.flags import Parsed
    from dockyard.cli.invocation import Invocation

FLAGS = FlagSet([
    Flag("repair", "", "bool", "Repair what is found: drop rows whose files are gone, collect garbage"),
    Flag("quiet", "q", "bool", "Print only the summary"),
])


def main(invocation: Invocation, verb: str, parsed: Parsed) -> int:
    params = [("repair", "1")] if parsed["repair"] else []
    answer = invocation.api.json("POST", "/dockyard/system/check", params) or {}
    problems = answer.get("Problems") or []
    out = []
    if not parsed["quiet"]:
        out += [f"{p.get('Kind', '')}\t{p.get('Subject', '')}\t{p.get('Detail', '')}\n" for p in problems]
    if answer.get("Repaired"):
        freed = int((answer.get("Collected") or {}).get("bytes_freed") or 0)
        out.append(f"Repaired {len(problems)} problems, reclaimed {units.human_size(freed)}\n")
        sys.stdout.write("".join(out))
        return 0
    out.append(f"{len(problems)} problems found\n" if problems else "No problems found\n")
    sys.stdout.write("".join(out))
    return 1 if problems else 0
