"""The workshop's records, one module per thing.

Importing this package registers every table on :data:`server.db.Base.metadata`.
"""

from server.models.access_decision import AccessDecision
from server.models.api_token import ApiToken
from server.models.audit_entry import AuditEntry
from server.models.badge import Badge
from server.models.billing import (
    BillingSettings,
    ConsumableRow,
    ConsumableSaleRow,
    MemberPlan,
    Organisation,
    PlanMinutes,
    PlanRow,
    PriceList,
    PriceVersionRow,
)
from server.models.certification import (
    LEVEL_RANK,
    Certification,
    CertificationEvent,
    CertificationEventKind,
    CertificationLevel,
    GrantedVia,
)
from server.models.gateway import Gateway, GatewayState
from server.models.gateway_event import GatewayEvent
from server.models.invoice import BillingPeriod, InvoiceLineRow, InvoiceRow, SaleCharge, UsageCharge
from server.models.ledger import DirectDebitRow, JournalEntryRow, MandateRow, PaymentRow, PostingRow, SepaFile
from server.models.machine import Machine, machine_skills
from server.models.member import Member, MemberStatus
from server.models.second_factor import SecondFactorConfirmation
from server.models.skill import Skill, skill_prerequisites
from server.models.usage_session import UsageSession
from server.models.web_session import WebSession

__all__ = [
    "LEVEL_RANK",
    "AccessDecision",
    "ApiToken",
    "AuditEntry",
    "Badge",
    "BillingPeriod",
    "BillingSettings",
    "Certification",
    "CertificationEvent",
    "CertificationEventKind",
    "CertificationLevel",
    "ConsumableRow",
    "ConsumableSaleRow",
    "DirectDebitRow",
    "Gateway",
    "GatewayEvent",
    "GatewayState",
    "GrantedVia",
    "InvoiceLineRow",
    "InvoiceRow",
    "JournalEntryRow",
    "Machine",
    "MandateRow",
    "Member",
    "MemberPlan",
    "MemberStatus",
    "Organisation",
    "PaymentRow",
    "PlanMinutes",
    "PlanRow",
    "PostingRow",
    "PriceList",
    "PriceVersionRow",
    "SaleCharge",
    "SecondFactorConfirmation",
    "SepaFile",
    "Skill",
    "UsageCharge",
    "UsageSession",
    "WebSession",
    "machine_skills",
    "skill_prerequisites",
]
