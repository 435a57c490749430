"""The layering of docs/architecture.md, enforced: imports point one way; the CLI stays tiny."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "dockyard"

# folder -> layer number, as in docs/architecture.md
LAYERS = {"errors": 0, "filters": 0, "blocking": 0, "formats": 0, "content": 1, "metadata": 1, "snapshots": 2,
          "runtime": 3, "images": 4, "containers": 4, "distribution": 4, "build": 4,
          "networks": 4, "volumes": 4, "api": 5, "daemon": 5, "cli": 6}


def dockyard_imports(path: Path) -> set[str]:
    """The dockyard modules a file imports, at any depth (lazy imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("dockyard.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dockyard"):
            found.add(node.module)
    return found


def folder_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_folder_is_documented() -> None:
    doc = (REPO / "docs" / "architecture.md").read_text()
    for entry in PACKAGE.iterdir():
        if entry.is_dir() and (entry / "__init__.py").exists():
            assert entry.name in LAYERS, f"dockyard/{entry.name} has no layer in this test"
            assert f"`{entry.name}/`" in doc, f"dockyard/{entry.name}/ is missing from docs/architecture.md"


def test_imports_point_one_way() -> None:
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        folder = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        if folder not in LAYERS:
            continue
        for module in dockyard_imports(path):
            target = folder_of(module)
            if target not in LAYERS:
                continue
            if folder == "cli":
                # The CLI talks to the daemon over HTTP only; `dockyard daemon` is the one lazy exception.
                if target not in ("cli",) and not (rel.parts[-1] == "daemon.py" and target == "daemon"):
                    wrong.append(f"{rel} imports {module}")
            elif LAYERS[target] > LAYERS[folder]:
                wrong.append(f"{rel} (layer {LAYERS[folder]}) imports {module} (layer {LAYERS[target]})")
    assert not wrong, "\n".join(wrong)


def test_metadata_sits_above_content() -> None:
    """Layer 1 holds both ``content/`` and ``metadata/``; the metadata database may use the content
    store, never the other way round (the content store knows nothing of records)."""
    wrong = [f"{p.relative_to(PACKAGE)} imports {m}" for p in (PACKAGE / "content").rglob("*.py")
             for m in dockyard_imports(p) if folder_of(m) == "metadata"]
    assert not wrong, "\n".join(wrong)


def test_cli_start_up_imports_nothing_heavy() -> None:
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "dockyard.cli.main", "--version"],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    modules = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if "|" in line}
    heavy = {"http.client", "urllib.request", "argparse", "asyncio", "h11", "dockyard.errors",
             "dockyard.containers", "dockyard.api", "dockyard.images", "dockyard.runtime"}
    assert not (modules & heavy), modules & heavy


@pytest.mark.parametrize("tool", ["ruff", "mypy"])
def test_static_checks(tool: str) -> None:
    exe = shutil.which(tool, path=str(Path(sys.executable).parent))
    assert exe, f"{tool} is not installed in the venv (pip install -e '.[test]')"
    argv = [exe, "check", "dockyard", "tests", "bench"] if tool == "ruff" else [exe, "dockyard", "bench"]
    out = subprocess.run(argv, capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stdout + out.stderr
