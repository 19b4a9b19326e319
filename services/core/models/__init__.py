"""Every table of the one schema. Import this package so `SQLModel.metadata` is complete."""

from services.core.models.alerts import Alert, Outbox  # noqa: F401  (and every alert table)
from services.core.models.auth import (  # noqa: F401  (API keys, audit, failed checks)
    ApiKey,
    AuditLog,
    AuthFailure,
)
from services.core.models.broker import BrokerSession
from services.core.models.events import (
    CheckpointState,
    CoverageRollup,
    DeadLetter,
    DeviceStatusEvent,
    DutyEvent,
    Passage,
    Reading,
    StaffPresence,
)
from services.core.models.registry import (
    Checkpoint,
    Pass,
    Person,
    Quarantine,
    Site,
    Staff,
    Vehicle,
)
from services.core.models.reports import GeneratedReport  # noqa: F401  (daily reports)
from services.core.models.robots import RobotSend  # noqa: F401  (requests to group robots)
from services.core.models.roster import (  # noqa: F401  (rosters, requirements, fever cases)
    FeverCase,
    RosterShift,
    ScreeningQuality,
    StaffCheckpoint,
    StaffingRequirement,
)
from services.core.models.supervision import (  # noqa: F401  (checklists, inspections)
    ChecklistItem,
    ChecklistTemplate,
    Enterprise,
    Finding,
    Inspection,
    InspectionAttachment,
    InspectionMark,
    SupervisionTeam,
    SupervisionVisit,
    TeamMember,
)

__all__ = [
    "BrokerSession",
    "Checkpoint",
    "CheckpointState",
    "CoverageRollup",
    "DeadLetter",
    "DeviceStatusEvent",
    "DutyEvent",
    "Pass",
    "Passage",
    "Person",
    "Quarantine",
    "Reading",
    "Site",
    "Staff",
    "StaffPresence",
    "Vehicle",
]
