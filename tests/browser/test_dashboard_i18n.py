"""The dashboard's static files, without a browser: both dictionaries carry the same
keys, every key the page uses exists, and every file index.html loads is there."""

from __future__ import annotations

import json
import re

import pytest

from services.api.main import STATIC_DIR

LANGUAGES = ("zh-CN", "en")
# keys built at run time from a closed vocabulary: prefix -> the values it takes
DYNAMIC = {
    "state": ("critical", "offline", "understaffed", "warning", "gap", "unknown", "ok", "inactive"),
    "device": ("online", "offline", "unknown"),
    "severity": ("critical", "major", "warning"),
    "role": ("admin", "officer", "duty", "viewer", "unknown"),
    "alert.status": ("open", "acknowledged", "resolved"),
    "feed.mode": ("connecting", "live", "reconnecting", "polling", "offline"),
    "direction": ("in", "out"),
    "kind": ("person", "vehicle"),
    "duty_role": ("community", "police", "medical", "security", "volunteer"),
    "screening": ("ok", "suspect", "no_data"),
}


def dictionary(code: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((STATIC_DIR / "i18n" / f"{code}.json").read_text("utf-8"))
    return data


def used_keys() -> set[str]:
    keys: set[str] = set()
    for path in [*STATIC_DIR.glob("js/*.js"), STATIC_DIR / "index.html"]:
        text = path.read_text("utf-8")
        keys |= set(re.findall(r"\bt\(\"([\w.]+)\"", text))
        keys |= set(re.findall(r"data-i18n(?:-placeholder|-title|-aria)?=\"([\w.]+)\"", text))
    for prefix, values in DYNAMIC.items():
        keys |= {f"{prefix}.{value}" for value in values}
    keys |= {f"role.{role}.allows" for role in DYNAMIC["role"]}
    return keys


def test_both_languages_have_the_same_non_empty_keys() -> None:
    zh, en = dictionary("zh-CN"), dictionary("en")
    assert set(zh) == set(en)
    assert all(value.strip() for value in [*zh.values(), *en.values()])
    # the placeholders of each text agree, so no language loses a number
    for key in zh:
        assert set(re.findall(r"\{\w+\}", zh[key])) == set(re.findall(r"\{\w+\}", en[key])), key


@pytest.mark.parametrize("code", LANGUAGES)
def test_every_key_the_page_uses_is_translated(code: str) -> None:
    missing = used_keys() - set(dictionary(code))
    assert not missing, f"{code} lacks {sorted(missing)}"


def test_every_alert_type_and_registration_status_has_a_label() -> None:
    from services.core.enums import Registration
    from services.core.models.alerts import AlertType

    zh = dictionary("zh-CN")
    assert {f"alert.type.{t.value}" for t in AlertType} <= set(zh)
    assert {f"registration.{r.value}" for r in Registration} <= set(zh)


def test_index_loads_only_files_that_exist_and_the_chart_library_keeps_its_licence() -> None:
    html = (STATIC_DIR / "index.html").read_text("utf-8")
    references = re.findall(r"(?:src|href)=\"([^\":]+)\"", html)
    assert "js/app.js" in references and "vendor/uPlot.iife.min.js" in references
    for reference in references:
        assert (STATIC_DIR / reference).is_file(), reference
    licence = (STATIC_DIR / "vendor" / "uPlot.LICENSE.txt").read_text("utf-8")
    assert "MIT License" in licence
    imports = {
        name
        for path in STATIC_DIR.glob("js/*.js")
        for name in re.findall(r"from \"\./([\w.]+)\"", path.read_text("utf-8"))
    }
    assert imports and all((STATIC_DIR / "js" / name).is_file() for name in imports)
