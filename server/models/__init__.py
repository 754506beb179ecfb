"""The workshop's records, one module per thing.

Importing this package registers every table on :data:`server.db.Base.metadata`.
"""

from server.models.access_decision import AccessDecision
from server.models.badge import Badge
from server.models.certification import Certification, CertificationLevel
from server.models.gateway import Gateway, GatewayState
from server.models.gateway_event import GatewayEvent
from server.models.machine import Machine, machine_skills
from server.models.member import Member, MemberStatus
from server.models.skill import Skill
from server.models.usage_session import UsageSession

__all__ = [
    "AccessDecision",
    "Badge",
    "Certification",
    "CertificationLevel",
    "Gateway",
    "GatewayEvent",
    "GatewayState",
    "Machine",
    "Member",
    "MemberStatus",
    "Skill",
    "UsageSession",
    "machine_skills",
]
