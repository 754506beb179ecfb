"""Skills that machines require: their prerequisites and how long they last unused. Every member
sees them; managers add and change them."""

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.orm import selectinload

from server import workshop
from server.api.deps import PageDep, SessionDep, Slug
from server.auth.policy import ManagerWrite, SignedIn
from server.ids import Ident
from server.models import Skill

router = APIRouter(prefix="/skills", tags=["skills"])

DisuseMonths = Annotated[int, Field(ge=1, le=120)]


class SkillIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: Ident
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
    description: Annotated[str, StringConstraints(max_length=2000)] = ""
    prerequisites: Annotated[list[Ident], Field(max_length=32)] = []
    """Skills a member must hold before being certified in this one."""
    disuse_months: DisuseMonths | None = None
    """A certification lapses after this many months without using a machine requiring the skill."""


class SkillPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prerequisites: Annotated[list[Ident], Field(max_length=32)] | None = None
    disuse_months: DisuseMonths | None = None
    """An explicit null removes the disuse period."""


class SkillOut(BaseModel):
    slug: str
    name: str
    description: str
    prerequisites: list[str]
    disuse_months: int | None

    @classmethod
    def of(cls, skill: Skill) -> "SkillOut":
        return cls(
            slug=skill.slug,
            name=skill.name,
            description=skill.description,
            prerequisites=[other.slug for other in skill.prerequisites],
            disuse_months=skill.disuse_months,
        )


@router.get("")
def list_skills(*, caller: SignedIn, db: SessionDep, page: PageDep) -> list[SkillOut]:
    query = (
        sa.select(Skill)
        .options(selectinload(Skill.prerequisites))
        .order_by(Skill.slug)
        .limit(page.limit)
        .offset(page.offset)
    )
    return [SkillOut.of(skill) for skill in db.scalars(query)]


@router.post("", status_code=status.HTTP_201_CREATED)
def create_skill(body: SkillIn, caller: ManagerWrite, db: SessionDep) -> SkillOut:
    skill = workshop.add_skill(
        db,
        body.slug,
        body.name,
        body.description,
        prerequisites=body.prerequisites,
        disuse_months=body.disuse_months,
    )
    db.commit()
    return SkillOut.of(skill)


@router.get("/{slug}")
def get_skill(slug: Slug, caller: SignedIn, db: SessionDep) -> SkillOut:
    return SkillOut.of(workshop.get_skill(db, slug))


@router.patch("/{slug}")
def update_skill(slug: Slug, body: SkillPatch, caller: ManagerWrite, db: SessionDep) -> SkillOut:
    """Change a skill's prerequisites or disuse period; certifications already granted stay."""
    if "disuse_months" in body.model_fields_set:
        skill = workshop.set_skill_training(
            db, slug, prerequisites=body.prerequisites, disuse_months=body.disuse_months
        )
    else:
        skill = workshop.set_skill_training(db, slug, prerequisites=body.prerequisites)
    db.commit()
    return SkillOut.of(skill)
