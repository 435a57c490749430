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
          "networks": 4, "volumes": 4, "registry": 4, "api": 5, "daemon": 5, "cli": 6}

# The CLI verbs that import a server of their own when run: `dockyard daemon`, `dockyard registry`.
LAZY_SERVERS = ("daemon", "registry")
# The registry server stands beside the engine: the content store and the shared layer 0, nothing else
# (no images, containers, runtime or API), and nothing but the CLI verb imports it.
REGISTRY_MAY_IMPORT = ("errors", "filters", "blocking", "formats", "content", "metadata")


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


def wrong_import(rel: Path, module: str) -> str | None:
    """Why the file ``rel`` (relative to ``dockyard/``) may not import ``module``, or None when it may."""
    folder = rel.parts[0] if len(rel.parts) > 1 else rel.stem
    target = folder_of(module)
    if folder not in LAYERS or target not in LAYERS:
        return None
    if folder == "cli":
        # The CLI talks to the daemon over HTTP only; `dockyard daemon` and `dockyard registry`
        # are the lazy exceptions, each importing its own server.
        if target != "cli" and not (rel.parts[-1] == f"{target}.py" and target in LAZY_SERVERS):
            return f"{rel} imports {module}"
    elif folder == "registry" or target == "registry":
        if folder != target and not (folder == "registry" and target in REGISTRY_MAY_IMPORT):
            return f"{rel} imports {module}: the registry server shares only layers 0-1 with the engine"
    elif LAYERS[target] > LAYERS[folder]:
        return f"{rel} (layer {LAYERS[folder]}) imports {module} (layer {LAYERS[target]})"
    return None


def test_imports_point_one_way() -> None:
    wrong = [problem for path in PACKAGE.rglob("*.py") for module in dockyard_imports(path)
             if (problem := wrong_import(path.relative_to(PACKAGE), module)) is not None]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(("rel", "module", "allowed"), [
    ("registry/app.py", "dockyard.content.store", True),
    ("registry/app.py", "dockyard.errors", True),
    ("registry/app.py", "dockyard.images.store", False),
    ("registry/app.py", "dockyard.distribution.auth", False),
    ("registry/app.py", "dockyard.api.http", False),
    ("registry/app.py", "dockyard.runtime.spawn", False),
    ("api/app.py", "dockyard.registry.app", False),
    ("distribution/pull.py", "dockyard.registry.storage", False),
    ("cli/verbs/registry.py", "dockyard.registry.main", True),
    ("cli/verbs/pull.py", "dockyard.registry.main", False),
])
def test_registry_stands_beside_the_engine(rel: str, module: str, allowed: bool) -> None:
    assert (wrong_import(Path(rel), module) is None) == allowed


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
