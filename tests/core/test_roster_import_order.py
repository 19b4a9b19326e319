"""The roster CSV entities are importable whichever module loads first (the registry
import and the roster import refer to each other)."""

from __future__ import annotations

import subprocess
import sys

import pytest

FIRST = ["services.core.roster_import", "services.core.registry_import", "services.api.main"]


@pytest.mark.parametrize("module", FIRST)
def test_entities_registered_whichever_module_loads_first(module: str) -> None:
    code = (
        f"import {module}\n"
        "from services.core.registry_import import CHECKS, ENTITIES\n"
        "assert {'rosters', 'staff_checkpoints'} <= set(ENTITIES) & set(CHECKS), sorted(ENTITIES)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
