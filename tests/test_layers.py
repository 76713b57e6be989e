"""The package's layout follows the architecture: data -> body fit -> correspondence -> networks -> train ->
evaluate -> apps, each layer importing only the layers before it, and every stage script maps to one
library module named after it. Read from the source (every import statement, also those inside functions),
so a lazy import cannot hide a dependency that goes the wrong way."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lwgan"

# Lowest first. A module may import modules of its own layer and of the layers before it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("lwgan", "errors", "io", "keep", "geometry", "progress", "parallel", "config", "tracking", "dvc_process",
     "safe_pickle", "weights", "native_logs"),  # the foundation: no domain knowledge
    ("render",),  # rasterising meshes
    ("data",),  # videos, crops, people, the frames and SMPL caches
    ("body",),  # body models, keypoints, the fit
    ("synth",),  # the embedded synthetic data set, rendered from the body model
    ("correspond",),  # mesh-image correspondence maps and their cache
    ("warp",),
    ("nets",),
    ("losses",),
    ("metrics",),
    ("train",),
    ("evaluate",),
    ("apps",),  # imitate / transfer / view
    ("experiments", "footage", "weights_fetch", "stage", "ui", "cli"),  # commands on top of everything
)
LAYER_OF = {name: index for index, names in enumerate(LAYERS) for name in names}
# stage scripts may use these besides their own module
STAGE_INFRASTRUCTURE = {"lwgan", "lwgan.stage", "lwgan.errors"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(path: Path) -> set[str]:
    """Every lwgan module `path` imports (``from a import b`` counts ``a.b`` when that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "lwgan":
            found.add(node.module)
            names = (f"{node.module}.{a.name}" for a in node.names)
            found.update(name for name in names if name in MODULES)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "lwgan")
    return found


def layer(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "lwgan"
    if top not in LAYER_OF:
        raise AssertionError(f"{module} belongs to no layer: add its folder to LAYERS in {__file__}")
    return LAYER_OF[top]


def test_every_import_goes_down_the_layers():
    wrong = []
    for module, path in sorted(MODULES.items()):
        for target in sorted(imports(path)):
            if layer(target) > layer(module):
                wrong.append(f"{module} imports {target}")
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def test_no_import_cycles_between_modules():
    graph = {m: {t for t in imports(p) if t in MODULES and t != m and not m.startswith(t + ".")}
             for m, p in MODULES.items()}
    # a package's __init__ importing its own submodules is not a cycle through them
    graph = {m: {t for t in ts if not (t.startswith(m + ".") and MODULES[m].name == "__init__.py")}
             for m, ts in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(trail[trail.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_checker_sees_a_wrong_import(tmp_path):
    """The rule itself: a data module that imports the training code is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from lwgan.train.train import train\n")
    assert "lwgan.train.train" in imports(bad)
    assert layer("lwgan.train.train") > layer("lwgan.data.prepare")


@pytest.mark.parametrize("script", sorted((ROOT / "stages").glob("*.py")), ids=lambda p: p.stem)
def test_each_stage_script_maps_to_one_module_named_after_it(script):
    found = imports(script) - STAGE_INFRASTRUCTURE
    used = {m for m in found if not any(other.startswith(m + ".") for other in found)}  # packages dropped
    assert len(used) == 1, f"{script.name} imports {sorted(used)}: the stage's work belongs in one module"
    (own,) = used
    assert own in MODULES and own.split(".")[-1] == script.stem, f"{script.name} uses {own}"


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_using_a_trained_model_does_not_load_the_training_code():
    loaded = _loaded_after("import lwgan.apps.synthesis, lwgan.nets.build")
    assert not {m for m in loaded if m.startswith("lwgan.train")}


def test_the_config_and_the_data_package_are_cheap_to_import():
    loaded = _loaded_after("import lwgan.config, lwgan.data")
    assert "lwgan.experiments" not in loaded and "lwgan.data.prepare" not in loaded and "cv2" not in loaded
