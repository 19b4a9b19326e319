"""The default checklists and teams of the standardized-checklist method, and versioning.

The article (docs/supervision.md) turned the prevention requirements into three
checklists — residential compounds, industrial parks, re-checks of resumed enterprises —
with 9 major and 15 minor items in all, and formed five supervision teams. The defaults
below follow its themes; admins add new versions through the API, and an inspection
always records the version (template id) it was marked on.
"""

from __future__ import annotations

from sqlmodel import Session, col, func, select

from services.core.models.supervision import (
    ChecklistItem,
    ChecklistTemplate,
    ChecklistTemplateCreate,
    MajorItemCreate,
    MinorItemCreate,
    SensorMetric,
    SupervisionTeam,
    TargetKind,
)


def _minor(code: str, zh: str, en: str, metric: SensorMetric | None = None) -> MinorItemCreate:
    return MinorItemCreate(code=code, text_zh=zh, text_en=en, sensor_metric=metric)


def _major(code: str, zh: str, en: str, *items: MinorItemCreate) -> MajorItemCreate:
    return MajorItemCreate(code=code, text_zh=zh, text_en=en, items=list(items))


DEFAULT_TEMPLATES: tuple[ChecklistTemplateCreate, ...] = (
    ChecklistTemplateCreate(
        code="residential",
        target_kind=TargetKind.RESIDENTIAL,
        name="Residential compound checklist",
        name_zh="住宅小区防疫督查清单",
        majors=[
            _major(
                "R1",
                "出入口封闭管理",
                "Closed management of exits",
                _minor("R1.1", "出入口围合，只留必要出入口", "Exits fenced; only needed ones open"),
                _minor(
                    "R1.2",
                    "测温点24小时专人值守",
                    "Checkpoints staffed 24 hours",
                    SensorMetric.STAFFING,
                ),
            ),
            _major(
                "R2",
                "双向测温与人车登记",
                "Two-way temperature checks and registration",
                _minor(
                    "R2.1",
                    "出入人员100%双向测温",
                    "100 % two-way temperature checks",
                    SensorMetric.SCREENING,
                ),
                _minor(
                    "R2.2",
                    "进出人车信息100%登记（身份证、二维码、出入证）",
                    "100 % registration of people and vehicles (ID, QR code, pass)",
                    SensorMetric.REGISTRATION,
                ),
            ),
            _major(
                "R3",
                "居家隔离与环境消杀",
                "Home quarantine and disinfection",
                _minor(
                    "R3.1",
                    "居家隔离人员每日跟踪服务到位",
                    "Home-quarantined residents followed up daily",
                ),
                _minor(
                    "R3.2",
                    "公共区域每日消毒并张贴防疫公告",
                    "Common areas disinfected daily; notices posted",
                ),
            ),
        ],
    ),
    ChecklistTemplateCreate(
        code="industrial",
        target_kind=TargetKind.INDUSTRIAL,
        name="Industrial park checklist",
        name_zh="工业园区防疫督查清单",
        majors=[
            _major(
                "I1",
                "园区出入口值守",
                "Park gates staffed and equipped",
                _minor(
                    "I1.1",
                    "园区出入口24小时专人值守",
                    "Park gates staffed 24 hours",
                    SensorMetric.STAFFING,
                ),
                _minor(
                    "I1.2",
                    "测温登记设备在线正常运行",
                    "Thermometers and gate terminals online",
                    SensorMetric.UPTIME,
                ),
            ),
            _major(
                "I2",
                "双向测温与人车登记",
                "Two-way temperature checks and registration",
                _minor(
                    "I2.1",
                    "进出人员100%双向测温",
                    "100 % two-way temperature checks",
                    SensorMetric.SCREENING,
                ),
                _minor(
                    "I2.2",
                    "进出人车信息100%登记",
                    "100 % registration of people and vehicles",
                    SensorMetric.REGISTRATION,
                ),
            ),
            _major(
                "I3",
                "物业管理处主体责任",
                "Property management office duties",
                _minor(
                    "I3.1",
                    "公共区域消毒、公告张贴、防控台账齐全",
                    "Disinfection, notices posted, prevention ledger kept",
                ),
            ),
        ],
    ),
    ChecklistTemplateCreate(
        code="enterprise",
        target_kind=TargetKind.ENTERPRISE,
        name="Resumed enterprise re-check",
        name_zh="复工企业复查清单",
        majors=[
            _major(
                "E1",
                "企业防控主体责任",
                "Enterprise prevention duties",
                _minor(
                    "E1.1",
                    "制定防控方案并明确防疫责任人",
                    "Prevention plan written; responsible person named",
                ),
                _minor(
                    "E1.2",
                    "口罩、体温计、消毒用品储备充足",
                    "Masks, thermometers and disinfectant stocked",
                ),
            ),
            _major(
                "E2",
                "员工健康管理",
                "Staff health",
                _minor(
                    "E2.1",
                    "返岗员工健康登记、每日测温",
                    "Returning staff registered; temperatures taken daily",
                ),
            ),
            _major(
                "E3",
                "工作场所防控",
                "Workplace measures",
                _minor(
                    "E3.1",
                    "车间、食堂、宿舍定时消毒，错峰就餐",
                    "Workshops, canteen and dormitory disinfected; staggered meals",
                ),
            ),
        ],
    ),
)

DEFAULT_TEAMS: tuple[tuple[str, str, str], ...] = tuple(
    (f"team-{n}", f"Team {n}", f"第{zh}督查组")
    for n, zh in zip(range(1, 6), "一二三四五", strict=True)
)


def latest_version(session: Session, code: str) -> int:
    found = session.exec(
        select(func.max(ChecklistTemplate.version)).where(ChecklistTemplate.code == code)
    ).one()
    return int(found or 0)


def create_template_version(session: Session, data: ChecklistTemplateCreate) -> ChecklistTemplate:
    """Add version latest+1 of checklist `data.code` and make it the active one.

    Item codes must be unique within the template; the caller commits."""
    codes = [m.code for m in data.majors] + [i.code for m in data.majors for i in m.items]
    if len(codes) != len(set(codes)):
        raise ValueError("item codes repeat within the template")
    for previous in session.exec(
        select(ChecklistTemplate).where(
            ChecklistTemplate.code == data.code, col(ChecklistTemplate.active)
        )
    ):
        previous.active = False
        session.add(previous)
    template = ChecklistTemplate(
        code=data.code,
        target_kind=str(data.target_kind),
        name=data.name,
        name_zh=data.name_zh,
        version=latest_version(session, data.code) + 1,
        active=True,
    )
    session.add(template)
    session.flush()
    assert template.id is not None
    position = 0
    for major in data.majors:
        position += 1
        session.add(
            ChecklistItem(
                template_id=template.id,
                code=major.code,
                text_zh=major.text_zh,
                text_en=major.text_en,
                position=position,
            )
        )
        for minor in major.items:
            position += 1
            session.add(
                ChecklistItem(
                    template_id=template.id,
                    code=minor.code,
                    parent_code=major.code,
                    text_zh=minor.text_zh,
                    text_en=minor.text_en,
                    sensor_metric=str(minor.sensor_metric) if minor.sensor_metric else None,
                    position=position,
                )
            )
    session.flush()
    return template


def load_default_templates(session: Session) -> int:
    """Create version 1 of each default checklist not yet present; returns how many."""
    created = 0
    for data in DEFAULT_TEMPLATES:
        if latest_version(session, data.code) == 0:
            create_template_version(session, data)
            created += 1
    for team_id, name, name_zh in DEFAULT_TEAMS:
        if session.get(SupervisionTeam, team_id) is None:
            session.add(SupervisionTeam(id=team_id, name=name, name_zh=name_zh))
    session.commit()
    return created


def active_template(session: Session, target_kind: str) -> ChecklistTemplate | None:
    return session.exec(
        select(ChecklistTemplate)
        .where(ChecklistTemplate.target_kind == target_kind, col(ChecklistTemplate.active))
        .order_by(col(ChecklistTemplate.version).desc())
    ).first()


def template_items(session: Session, template_id: int) -> list[ChecklistItem]:
    return list(
        session.exec(
            select(ChecklistItem)
            .where(ChecklistItem.template_id == template_id)
            .order_by(col(ChecklistItem.position))
        )
    )
