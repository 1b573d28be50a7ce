"""The import-linter contracts in pyproject.toml hold, and break on a wrong import."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    pytest.importorskip("importlinter", reason="pip install '.[test]' (import-linter)")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(cwd)}
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    return subprocess.run([sys.executable, "-c", code, "--config", str(cwd / "pyproject.toml"), "--no-cache"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _copy_tree(dst: Path) -> Path:
    for name in ("ibsim", "exporters"):
        shutil.copytree(REPO / name, dst / name, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    shutil.copy(REPO / "pyproject.toml", dst / "pyproject.toml")
    return dst


def test_contracts_are_kept():
    p = _lint_imports(REPO)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "BROKEN" not in p.stdout


@pytest.mark.parametrize("module, line, broken", [
    # an inner layer reaching outward
    ("ibsim/fabric/state.py", "from ..scenario import Scenario", "ibsim.fabric is not allowed to import ibsim.scenario"),
    # two adapters on one layer
    ("ibsim/mad/perf.py", "from ..export import TimeMap", "ibsim.mad is not allowed to import ibsim.export"),
    # an exporter past ibsim.export
    ("exporters/logstash.py", "from ibsim.engine import Simulation", "exporters.logstash -> ibsim.engine"),
    # the core naming an exporter
    ("ibsim/export/stage.py", "import exporters.graphite", "ibsim.export.stage -> exporters.graphite"),
])
def test_a_wrong_import_breaks_a_contract(tmp_path, module, line, broken):
    tree = _copy_tree(tmp_path)
    path = tree / module
    text = path.read_text()
    head, sep, rest = text.partition("from __future__ import annotations\n")
    path.write_text(head + sep + line + "  # deliberately wrong\n" + rest if sep else line + "\n" + text)
    p = _lint_imports(tree)
    assert p.returncode != 0, p.stdout
    assert broken in p.stdout, p.stdout
