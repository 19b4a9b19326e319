"""The default checklists: 3 templates, 9 major and 15 minor items; new versions."""

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from services.core.models.supervision import (
    ChecklistItem,
    ChecklistTemplate,
    ChecklistTemplateCreate,
    SupervisionTeam,
)
from services.core.supervision_templates import (
    DEFAULT_TEMPLATES,
    active_template,
    create_template_version,
    load_default_templates,
    template_items,
)


def test_default_templates_load_three_checklists_9_major_15_minor(engine: Engine) -> None:
    with Session(engine) as session:
        assert load_default_templates(session) == 3
        templates = list(session.exec(select(ChecklistTemplate)))
        assert sorted(t.code for t in templates) == ["enterprise", "industrial", "residential"]
        assert {t.version for t in templates} == {1}
        items = list(session.exec(select(ChecklistItem)))
        majors = [i for i in items if i.parent_code is None]
        minors = [i for i in items if i.parent_code is not None]
        assert (len(majors), len(minors)) == (9, 15)
        assert all(i.text_zh and i.text_en for i in items)
        # every major item has at least one minor item, and minor items name a major one
        assert {m.parent_code for m in minors} == {m.code for m in majors}
        sensed = {i.code: i.sensor_metric for i in minors if i.sensor_metric}
        assert sensed["R1.2"] == "staffing" and sensed["I1.2"] == "uptime"
        assert len(list(session.exec(select(SupervisionTeam)))) == 5
        # loading again changes nothing
        assert load_default_templates(session) == 0
        assert len(list(session.exec(select(ChecklistItem)))) == 24


def test_new_version_becomes_active_and_keeps_the_old(engine: Engine) -> None:
    with Session(engine) as session:
        load_default_templates(session)
        old = active_template(session, "residential")
        assert old is not None and old.version == 1
        data = DEFAULT_TEMPLATES[0].model_copy(deep=True)
        data.majors[0].items[0].text_en = "Exits fenced with water barriers"
        new = create_template_version(session, data)
        session.commit()
        assert new.version == 2
        assert active_template(session, "residential") == new
        assert new.id is not None and old.id is not None
        assert template_items(session, new.id)[1].text_en == "Exits fenced with water barriers"
        assert template_items(session, old.id)[1].text_en == "Exits fenced; only needed ones open"
        actives = session.exec(
            select(ChecklistTemplate).where(
                ChecklistTemplate.code == "residential", col(ChecklistTemplate.active)
            )
        )
        assert len(list(actives)) == 1


def test_repeated_item_codes_are_refused(engine: Engine) -> None:
    data = ChecklistTemplateCreate.model_validate(
        {
            "code": "x",
            "target_kind": "industrial",
            "name": "x",
            "name_zh": "x",
            "majors": [
                {
                    "code": "A",
                    "text_zh": "a",
                    "text_en": "a",
                    "items": [{"code": "A", "text_zh": "a", "text_en": "a"}],
                },
            ],
        }
    )
    with Session(engine) as session, pytest.raises(ValueError, match="repeat"):
        create_template_version(session, data)
