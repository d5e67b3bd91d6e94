"""What the three lists share: task categories and the per-organisation summary row."""

from __future__ import annotations

from sqlmodel import SQLModel

from app.core.enums import LabeledEnum
from app.models.organizations import OrgLevel

TEXT = 2000  # long free text: descriptions, analyses, notes
TITLE = 200
MONTH_PATTERN = r"^(20\d\d|2100)-(0[1-9]|1[0-2])$"


class TaskCategory(LabeledEnum):
    poverty_alleviation = "poverty_alleviation", "党建引领脱贫攻坚", "Party building leading poverty alleviation"
    anti_gang_crime = "anti_gang_crime", "扫黑除恶", "Anti-gang crime"
    rural_revitalization = "rural_revitalization", "乡村振兴", "Rural revitalisation"
    organization_building = "organization_building", "基层组织建设", "Organisation building"
    other = "other", "其他", "Other"


class SummaryOrg(SQLModel):
    """The organisation a summary row counts (with its subtree when the summary rolls up)."""

    org_id: int
    org_name: str
    org_code: str | None
    org_level: OrgLevel
