"""The layout's import rules (pyproject's [tool.importlinter]): tooling > flows > tasks > stages > kernel, the
service on the kernel alone, no cycles. A broken rule fails here with import-linter's own report."""

import subprocess
import sys
from pathlib import Path

from mlops_core.settings import PROJECT_ROOT


def test_import_rules_hold():
    lint_imports = Path(sys.executable).with_name("lint-imports")  # the environment's own, a dev dependency
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout
