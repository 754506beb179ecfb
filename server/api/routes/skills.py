"""Skills that machines require."""

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, StringConstraints

from protocol.ids import Ident
from server import workshop
from server.api.deps import PageDep, SessionDep, Slug
from server.models import Skill

router = APIRouter(prefix="/skills", tags=["skills"])


class SkillIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: Ident
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
    description: Annotated[str, StringConstraints(max_length=2000)] = ""


class SkillOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    slug: str
    name: str
    description: str


@router.get("")
def list_skills(*, db: SessionDep, page: PageDep) -> list[SkillOut]:
    query = sa.select(Skill).order_by(Skill.slug).limit(page.limit).offset(page.offset)
    return [SkillOut.model_validate(skill) for skill in db.scalars(query)]


@router.post("", status_code=status.HTTP_201_CREATED)
def create_skill(body: SkillIn, db: SessionDep) -> SkillOut:
    skill = workshop.add_skill(db, body.slug, body.name, body.description)
    db.commit()
    return SkillOut.model_validate(skill)


@router.get("/{slug}")
def get_skill(slug: Slug, db: SessionDep) -> SkillOut:
    return SkillOut.model_validate(workshop.get_skill(db, slug))
