"""docs/architecture.md's "Where things live" table names every module of each folder
it lists, and nothing that is not there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def map_rows() -> dict[str, set[str]]:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Where things live", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, set[str]] = {}
    for line in section.splitlines():
        cells = line.split("|")
        if len(cells) < 4 or not cells[1].strip().startswith("`"):
            continue
        folder = cells[1].strip().strip("`")
        rows[folder] = set(re.findall(r"`([\w./]+)`", cells[2]))
    return rows


def test_the_map_names_every_module_and_folder_and_nothing_else() -> None:
    rows = map_rows()
    assert {"services/core/", "services/ingest/", "tests/"} <= rows.keys()
    for folder, named in rows.items():
        directory = ROOT / folder
        assert directory.is_dir(), folder
        present = {p.name for p in directory.glob("*.py") if p.name != "__init__.py"} | {
            f"{p.name}/"
            for p in directory.iterdir()
            if (p.is_dir() and (p / "__init__.py").exists()) or p.name == "static"
        }
        if folder == "tests/":  # the folders by area, not the conftest
            present = {name for name in present if name.endswith("/")}
        assert named == present - {"static/"}, folder
