"""The assessment profile: RIASEC, Big Five (OCEAN), VIA-IS scores and a persona profile.

Parsed leniently from the archive service's ``assessment_data`` and
``persona_profile`` (version 1 or 2): unknown fields are ignored, a field of the
wrong type is treated as absent, and nothing here raises on a real-world profile.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = [
    "OCEAN_TRAITS",
    "RIASEC_TYPES",
    "AssessmentProfile",
    "Career",
    "RoleModel",
    "parse_profile",
    "profile_from_context",
]

RIASEC_TYPES: tuple[str, ...] = (
    "realistic",
    "investigative",
    "artistic",
    "social",
    "enterprising",
    "conventional",
)
OCEAN_TRAITS: tuple[str, ...] = (
    "openness",
    "conscientiousness",
    "extraversion",
    "agreeableness",
    "neuroticism",
)


@dataclass(slots=True, frozen=True, kw_only=True)
class Career:
    name: str
    prospect: Mapping[str, str] = field(default_factory=dict)
    justification: str | None = None
    related_majors: tuple[str, ...] = ()


@dataclass(slots=True, frozen=True, kw_only=True)
class RoleModel:
    name: str
    title: str | None = None


@dataclass(slots=True, frozen=True, kw_only=True)
class AssessmentProfile:
    """Everything chatcore knows about a student's assessment.

    Score maps hold integers 0..100 keyed by the archive's names (``investigative``,
    ``openness``, ``loveOfLearning``...). Persona fields are empty when absent.
    """

    riasec: Mapping[str, int] = field(default_factory=dict)
    ocean: Mapping[str, int] = field(default_factory=dict)
    via: Mapping[str, int] = field(default_factory=dict)
    industry: Mapping[str, int] = field(default_factory=dict)
    assessment_name: str | None = None
    archetype: str | None = None
    short_summary: str | None = None
    strengths: tuple[str, ...] = ()
    weaknesses: tuple[str, ...] = ()
    careers: tuple[Career, ...] = ()
    insights: tuple[str, ...] = ()
    strength_summary: str | None = None
    weakness_summary: str | None = None
    skill_suggestions: tuple[str, ...] = ()
    pitfalls: tuple[str, ...] = ()
    risk_tolerance: str | None = None
    work_environment: str | None = None
    role_models: tuple[RoleModel, ...] = ()
    core_motivators: tuple[str, ...] = ()
    learning_style: str | None = None
    persona_version: int = 0

    @property
    def is_empty(self) -> bool:
        return not (self.riasec or self.ocean or self.via or self.archetype or self.careers)

    @property
    def riasec_ranking(self) -> tuple[str, ...]:
        """RIASEC types from highest to lowest score; ties keep the canonical R-I-A-S-E-C order."""
        known = [t for t in RIASEC_TYPES if t in self.riasec]
        return tuple(sorted(known, key=lambda t: -self.riasec[t]))

    @property
    def holland_code(self) -> str:
        """The three highest RIASEC letters, for example ``IAS``; empty without scores."""
        return "".join(t[0].upper() for t in self.riasec_ranking[:3])

    def top_strengths(self, n: int = 5) -> tuple[str, ...]:
        """The ``n`` highest VIA character strengths (archive keys, highest first)."""
        ranked = sorted(self.via.items(), key=lambda kv: (-kv[1], kv[0]))
        return tuple(name for name, _ in ranked[:n])

    @property
    def majors(self) -> tuple[str, ...]:
        """Related majors across the recommended careers, first seen first, without repeats."""
        seen: dict[str, None] = {}
        for career in self.careers:
            for major in career.related_majors:
                seen.setdefault(major, None)
        return tuple(seen)


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        stripped = value.strip()
        return stripped or None
    return None


def _label(value: Any) -> str | None:
    """A name shown inline (a strength, a list item): every run of whitespace, line and
    record separators included, becomes one space, so that a label never breaks the
    line it is written on."""
    if isinstance(value, str):
        return " ".join(value.split()) or None
    return None


def _texts(value: Any) -> tuple[str, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        return ()
    return tuple(t for t in (_label(v) for v in value) if t)


def _scores(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        return {}
    out: dict[str, int] = {}
    for key, raw in value.items():
        name = _label(key)
        if name is None or isinstance(raw, bool):
            continue
        if isinstance(raw, int | float) and math.isfinite(raw):
            out[name] = max(0, min(100, round(raw)))
    return out


def _career(value: Any) -> Career | None:
    if isinstance(value, str):
        name = _text(value)
        return Career(name=name) if name else None
    if not isinstance(value, Mapping):
        return None
    name = _text(value.get("careerName")) or _text(value.get("name"))
    if not name:
        return None
    prospect_raw = value.get("careerProspect")
    prospect: dict[str, str] = {}
    if isinstance(prospect_raw, Mapping):
        prospect = {k: v for k, v in prospect_raw.items() if isinstance(k, str) and _text(v)}
    return Career(
        name=name,
        prospect=prospect,
        justification=_text(value.get("justification")),
        related_majors=_texts(value.get("relatedMajors")),
    )


def _role_model(value: Any) -> RoleModel | None:
    if isinstance(value, str):
        name = _text(value)
        return RoleModel(name=name) if name else None
    if isinstance(value, Mapping):
        name = _text(value.get("name"))
        return RoleModel(name=name, title=_text(value.get("title"))) if name else None
    return None


_T = TypeVar("_T")


def _many(value: Any, parse: Callable[[Any], _T | None]) -> tuple[_T, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        return ()
    return tuple(item for item in (parse(v) for v in value) if item is not None)


def parse_profile(assessment_data: Any, persona_profile: Any) -> AssessmentProfile:
    """Build a profile from the archive's two JSON objects; either may be missing or odd."""
    scores: Mapping[str, Any] = assessment_data if isinstance(assessment_data, Mapping) else {}
    persona: Mapping[str, Any] = persona_profile if isinstance(persona_profile, Mapping) else {}
    role_models: tuple[RoleModel, ...] = _many(persona.get("roleModel"), _role_model)
    careers: tuple[Career, ...] = _many(persona.get("careerRecommendation"), _career)
    v2_markers = ("coreMotivators", "learningStyle", "developmentActivities")
    version = 0
    if persona:
        has_v2 = any(k in persona for k in v2_markers) or any(
            c.related_majors or c.justification for c in careers
        )
        version = 2 if has_v2 else 1
    return AssessmentProfile(
        riasec=_scores(scores.get("riasec")),
        ocean=_scores(scores.get("ocean")),
        via=_scores(scores.get("viaIs")),
        industry=_scores(scores.get("industryScore")),
        assessment_name=_text(scores.get("assessmentName")),
        archetype=_text(persona.get("archetype")),
        short_summary=_text(persona.get("shortSummary")),
        strengths=_texts(persona.get("strengths")),
        weaknesses=_texts(persona.get("weaknesses")),
        careers=careers,
        insights=_texts(persona.get("insights")),
        strength_summary=_text(persona.get("strengthSummary")),
        weakness_summary=_text(persona.get("weaknessSummary")),
        skill_suggestions=_texts(persona.get("skillSuggestion")),
        pitfalls=_texts(persona.get("possiblePitfalls")),
        risk_tolerance=_text(persona.get("riskTolerance")),
        work_environment=_text(persona.get("workEnvironment")),
        role_models=role_models,
        core_motivators=_texts(persona.get("coreMotivators")),
        learning_style=_text(persona.get("learningStyle")),
        persona_version=version,
    )


def profile_from_context(context_data: Mapping[str, Any]) -> AssessmentProfile | None:
    """The profile stored in a conversation's ``context_data``, or None when there is none.

    Accepts the keys chatcore writes (``assessment_data``, ``persona_profile``) and the
    old service's (``profilePersona``, ``assessmentData``).
    """
    scores = context_data.get("assessment_data", context_data.get("assessmentData"))
    persona = context_data.get("persona_profile", context_data.get("profilePersona"))
    if scores is None and persona is None:
        return None
    profile = parse_profile(scores, persona)
    return None if profile.is_empty else profile
