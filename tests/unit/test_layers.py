"""The layers, one direction: core <- models <- streams.steps <- streams <- the CLI, and only the
CLI reads env. ``streams.steps`` are the worker's pure steps: no framework, no Kafka, no settings;
and of the processes in streams/, only the worker and the CLI import ``streams.worker``.

An ``ast`` walk over every module (function-local imports included), so a forbidden import
fails here whether or not it runs; and a fresh interpreter, so what importing a layer loads is
measured, not assumed.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RANK = {"core": 0, "models": 1, "steps": 2, "streams": 3, "cli": 4}
FRAMEWORKS = {"faust", "mode", "kafka", "aiokafka", "torch", "pydantic", "pydantic_settings",
              "typer"}
# What each layer may not import from outside the project (core: anything but numpy, orjson
# and the standard library).
FORBIDDEN = {
    "models": FRAMEWORKS - {"torch"},
    "steps": FRAMEWORKS - {"torch"},
    "streams": {"typer"},
    "cli": set(),
}
CORE_ALLOWED = {"numpy", "orjson"}
# Modules that touch the process environment, and why. Everything else gets its env from the CLI.
ENV_ALLOWED = {
    "streams/tools/cluster.py": "hands the parent's environment on to the worker processes it starts",
}


def layer_of(relative: Path) -> str | None:
    parts = relative.parts
    if parts[0] == "streams" and (parts[1:2] == ("cli",) or parts[1:] == ("__main__.py",)):
        return "cli"
    if parts[:2] == ("streams", "steps"):
        return "steps"
    return parts[0] if parts[0] in RANK else None


def layer_of_module(name: str) -> str | None:
    top = name.split(".")[0]
    if name == "streams.cli" or name.startswith("streams.cli.") or name == "streams.__main__":
        return "cli"
    if name == "streams.steps" or name.startswith("streams.steps."):
        return "steps"
    return top if top in RANK else None


def imported(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # "from streams import cli" names a module too
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def reads_env(tree: ast.AST) -> list[int]:
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr in ("environ", "getenv", "putenv")
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    ]


def violations(root: Path) -> list[str]:
    """Every import against the layers and every env read outside the CLI under ``root``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        layer = layer_of(relative)
        if layer is None or ".venv" in relative.parts:
            continue
        tree = ast.parse(path.read_text(), str(path))
        reported = set()
        for line, name in imported(tree):
            where = f"{relative}:{line}"
            target = layer_of_module(name)
            top = name.split(".")[0]
            if (line, target or top) in reported:  # "from a import b" names a and a.b
                continue
            reported.add((line, target or top))
            if target is not None and RANK[target] > RANK[layer]:
                found.append(f"{where}: {layer} imports {name} ({target}, a layer above)")
            elif (name == "streams.worker" or name.startswith("streams.worker.")) and layer == \
                    "streams" and relative.parts[:2] != ("streams", "worker"):  # fmt: skip
                found.append(f"{where}: imports {name}: only the worker and the CLI import it")
            elif target is None and layer == "core" and top not in CORE_ALLOWED | set(
                sys.stdlib_module_names
            ):
                found.append(f"{where}: core imports {name} (core: numpy, orjson, stdlib only)")
            elif target is None and top in FORBIDDEN.get(layer, ()):
                found.append(f"{where}: {layer} imports {name}")
        if layer != "cli" and str(relative) not in ENV_ALLOWED:
            found += [f"{relative}:{line}: reads the environment" for line in reads_env(tree)]
    return found


def test_the_project_keeps_its_layers():
    assert violations(ROOT) == []


def test_the_check_catches_what_it_forbids(tmp_path):
    bad = {
        "core/decay.py": "import torch\n",
        "core/codec.py": "def f():\n    from models.scoring import Recommender\n",
        "models/train.py": "from streams.worker.app import create_app\n",
        "models/mf.py": "import faust\n",
        "streams/worker/app.py": "from streams import cli\n",
        "streams/worker/views.py": "import os\nport = os.environ['PORT']\n",
        "streams/steps/parse.py": "import aiokafka\nfrom streams.settings import Settings\n",
        "streams/trainer/lifelong.py": "from streams.worker.serving import Serving\n",
        "streams/cli/run.py": "import os, faust, torch, typer\nfrom streams.worker.app import x\n"
        "port = os.environ['PORT']\n",  # all allowed at the top
    }
    for name, text in bad.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    found = violations(tmp_path)
    assert len(found) == 9, found
    assert not any(line.startswith("streams/cli") for line in found)


def loaded_by(modules: list[str]) -> set[str]:
    """Top-level packages a fresh interpreter has loaded after importing ``modules``."""
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(out.stdout.split())


def project_modules(package: str) -> list[str]:
    """Every module of ``package`` (a dotted name), its subpackages' too."""
    folder = ROOT.joinpath(*package.split("."))
    return [
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path in sorted(folder.rglob("*.py"))
        if path.stem != "__init__"
    ]


def test_importing_the_core_loads_no_framework():
    assert loaded_by(project_modules("core")) & FRAMEWORKS == set()


def test_importing_the_models_loads_no_streaming_runtime():
    assert loaded_by(project_modules("models")) & (FRAMEWORKS - {"torch"}) == set()


def test_importing_the_steps_loads_no_streaming_runtime():
    assert loaded_by(project_modules("streams.steps")) & (FRAMEWORKS - {"torch"}) == set()
