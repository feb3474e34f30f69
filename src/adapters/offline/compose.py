"""The offline advisor's answer: a question's topics, answered from the student's profile.

Each topic has a builder that uses the most specific facts the profile holds (the
persona profile first, then RIASEC / Big Five / VIA scores) and falls back to
general advice when there are none. Profile texts are collapsed to one line and
clipped, so a long or odd persona field cannot break the Markdown or the length.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from adapters.offline.phrases import RISK_GROUP, Phrases, phrases_for
from adapters.offline.topics import Topic, detect_topics
from chatcore.domain.profile import OCEAN_TRAITS, AssessmentProfile, Career

__all__ = ["HIGH_SCORE", "LOW_SCORE", "compose_answer"]

HIGH_SCORE = 70
"""A Big Five score at or above this is called high."""
LOW_SCORE = 35
"""A Big Five score at or below this is called low."""

_EMPTY_PROFILE = AssessmentProfile()
_POSITIVE_TRAITS = frozenset(
    {
        ("openness", "high"),
        ("conscientiousness", "high"),
        ("extraversion", "high"),
        ("agreeableness", "high"),
        ("neuroticism", "low"),
    }
)
_PROSPECT_ORDER = (
    "jobAvailability",
    "salaryPotential",
    "aiOvertake",
    "industryGrowth",
    "careerProgression",
    "skillDevelopment",
)
_NON_WORD_RE = re.compile(r"[\W_]+")
_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


@dataclass(slots=True)
class _Section:
    intro: str
    bullets: list[str] = field(default_factory=list)
    outro: list[str] = field(default_factory=list)

    def render(self, heading: str | None) -> str:
        blocks: list[str] = []
        if heading:
            blocks.append(f"### {heading}")
        if self.intro:
            blocks.append(self.intro)
        bullets = [b for b in self.bullets if b.strip()]
        if bullets:
            blocks.append("\n".join(f"- {b}" for b in bullets))
        outro = " ".join(o for o in self.outro if o)
        if outro:
            blocks.append(outro)
        return "\n\n".join(blocks)


# --- small text helpers -----------------------------------------------------------


def _clean(text: str, max_words: int) -> str:
    """One line of at most ``max_words`` words; clipped text ends with an ellipsis."""
    words = text.split()
    if len(words) > max_words:
        return " ".join(words[:max_words]).rstrip(",;:.") + "…"
    return " ".join(words)


def _sentence(text: str) -> str:
    """``text`` ending in sentence punctuation (an empty text stays empty)."""
    return text if not text or text[-1] in ".!?…" else text + "."


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _join(items: Iterable[str], p: Phrases) -> str:
    """``a``, ``a dan b``, ``a, b, dan c`` (``a, b and c`` in English)."""
    parts = [i for i in items if i]
    if len(parts) <= 1:
        return "".join(parts)
    if len(parts) == 2:
        return f"{parts[0]} {p.and_word} {parts[1]}"
    return ", ".join(parts[:-1]) + p.list_last + parts[-1]


def _level_key(raw: str) -> str:
    """``Super_High`` → ``super high``: how prospect and risk values are looked up."""
    return " ".join(_NON_WORD_RE.sub(" ", raw.casefold()).split())


# --- profile facts ------------------------------------------------------------------


def _via_entry(key: str, p: Phrases) -> tuple[str, str | None]:
    """The readable name of a VIA key and what it looks like at work (None if unknown)."""
    known = p.via.get(_NON_WORD_RE.sub("", key).casefold())
    if known is not None:
        return known
    return " ".join(_NON_WORD_RE.sub(" ", _CAMEL_RE.sub(" ", key)).casefold().split()), None


def _top_via_names(profile: AssessmentProfile, p: Phrases, n: int) -> list[str]:
    names = (_via_entry(key, p)[0] for key in profile.top_strengths(n))
    return [name for name in names if name]


def _holland(profile: AssessmentProfile, p: Phrases) -> tuple[str, str]:
    """The Holland code and its spelled-out type names, e.g. ``IAS`` and ``Investigative–…``."""
    ranking = profile.riasec_ranking[:3]
    return "".join(t[0].upper() for t in ranking), "–".join(p.riasec_name[t] for t in ranking)


def _who(profile: AssessmentProfile, p: Phrases) -> str:
    code, names = _holland(profile, p)
    archetype = _clean(profile.archetype or "", 8)
    if archetype and code:
        return p.who_both.format(archetype=archetype, code=code, names=names)
    if archetype:
        return p.who_archetype.format(archetype=archetype)
    if code:
        return p.who_code.format(code=code, names=names)
    return ""


def _ocean_levels(profile: AssessmentProfile) -> list[tuple[str, str, int]]:
    """Notably high or low Big Five traits, most extreme first."""
    notable: list[tuple[str, str, int]] = []
    for trait in OCEAN_TRAITS:
        score = profile.ocean.get(trait)
        if score is None:
            continue
        if score >= HIGH_SCORE:
            notable.append((trait, "high", score))
        elif score <= LOW_SCORE:
            notable.append((trait, "low", score))
    notable.sort(key=lambda item: -abs(item[2] - 50))
    return notable


def _ocean_bullet(trait: str, level: str, score: int, text: str, p: Phrases) -> str:
    return p.ocean_bullet.format(
        name=p.ocean_name[trait], level=p.level[level], score=score, text=text
    )


def _riasec_bullets(
    profile: AssessmentProfile, p: Phrases, table: Mapping[str, str], n: int
) -> list[str]:
    return [
        p.score_bullet.format(name=p.riasec_name[t], score=profile.riasec[t], text=table[t])
        for t in profile.riasec_ranking[:n]
    ]


def _prospects(career: Career, p: Phrases) -> str:
    parts: list[str] = []
    for key in _PROSPECT_ORDER:
        raw = career.prospect.get(key)
        if not isinstance(raw, str) or not raw.strip():
            continue
        value = p.prospect_value.get(_level_key(raw)) or _clean(raw, 3)
        parts.append(p.prospect_format.format(label=p.prospect_label[key], value=value))
        if len(parts) == 3:
            break
    return ", ".join(parts)


def _career_bullet(career: Career, p: Phrases, compact: bool) -> str:
    text = f"**{_clean(career.name, 8)}**"
    prospects = _prospects(career, p)
    if prospects:
        text += f" ({prospects})"
    details: list[str] = []
    if not compact and career.justification:
        details.append(_sentence(_clean(career.justification, 25)))
    if not compact and career.related_majors:
        majors = ", ".join(_clean(m, 6) for m in career.related_majors[:3])
        details.append(p.career_majors.format(majors=majors))
    if details:
        text += " — " + " ".join(details)
    return text


def _is_blank(profile: AssessmentProfile) -> bool:
    """True when the profile holds nothing to ground an answer in."""
    return not (
        profile.riasec
        or profile.ocean
        or profile.via
        or profile.archetype
        or profile.short_summary
        or profile.careers
        or profile.strengths
        or profile.weaknesses
        or profile.skill_suggestions
        or profile.pitfalls
        or profile.work_environment
        or profile.core_motivators
        or profile.learning_style
    )


def _general(topic: str, p: Phrases) -> _Section:
    general = p.general[topic]
    return _Section(general.intro, list(general.bullets))


# --- one builder per topic ----------------------------------------------------------


def _careers(profile: AssessmentProfile, p: Phrases, compact: bool) -> _Section:
    if profile.careers:
        careers = profile.careers[: 3 if compact else 4]
        section = _Section(
            p.careers_intro.format(who=_who(profile, p)),
            [_career_bullet(c, p, compact) for c in careers],
        )
    elif profile.riasec:
        code, names = _holland(profile, p)
        section = _Section(
            p.careers_riasec_intro.format(code=code, names=names),
            _riasec_bullets(profile, p, p.riasec_careers, 3),
        )
    else:
        # The general advice already ends on trying a field out; no repeated next step.
        return _general("careers", p)
    if not compact:
        strengths = _top_via_names(profile, p, 2)
        if strengths:
            section.outro.append(p.careers_strengths.format(strengths=_join(strengths, p)))
        section.outro.append(p.careers_next)
    return section


def _strengths(profile: AssessmentProfile, p: Phrases, compact: bool) -> _Section:
    bullets: list[str] = []
    for key in profile.top_strengths(3):
        name, at_work = _via_entry(key, p)
        if not name:
            continue
        score = profile.via[key]
        bullets.append(
            p.score_bullet.format(name=_cap(name), score=score, text=at_work)
            if at_work
            else f"**{_cap(name)}** ({score})"
        )
    if profile.strengths:
        items = ", ".join(_clean(s, 10) for s in profile.strengths[:4])
        bullets.append(p.persona_strengths.format(items=items))
    for trait, level, score in _ocean_levels(profile):
        if (trait, level) in _POSITIVE_TRAITS:
            text = (p.ocean_high if level == "high" else p.ocean_low)[trait]
            bullets.append(_ocean_bullet(trait, level, score, text, p))
            break
    if len(bullets) < 2 and profile.riasec:
        descs = {t: f"{p.you} {d}" for t, d in p.riasec_desc.items()}
        bullets.extend(_riasec_bullets(profile, p, descs, 2))
    if not bullets:
        return _general("strengths", p)
    intro = p.strengths_intro
    if profile.strength_summary and not compact:
        intro = _sentence(_clean(profile.strength_summary, 35)) + " " + intro
    section = _Section(intro, bullets[: 3 if compact else 5])
    if not compact:
        section.outro.append(p.strengths_outro)
    return section


def _weaknesses(profile: AssessmentProfile, p: Phrases, compact: bool) -> _Section:
    bullets = [_clean(w, 20) for w in profile.weaknesses[: 2 if compact else 3]]
    if profile.pitfalls:
        bullets.append(
            p.pitfalls.format(items="; ".join(_clean(x, 10) for x in profile.pitfalls[:3]))
        )
    watch = [
        _ocean_bullet(trait, level, score, p.ocean_watch[(trait, level)], p)
        for trait, level, score in _ocean_levels(profile)
        if (trait, level) in p.ocean_watch
    ]
    bullets.extend(watch[: 1 if compact else 2])
    if len(bullets) < 3 and len(profile.via) > 3:
        lowest = sorted(profile.via.items(), key=lambda kv: (kv[1], kv[0]))[:2]
        items = [f"{_via_entry(k, p)[0]} ({v})" for k, v in lowest if _via_entry(k, p)[0]]
        if items:
            bullets.append(p.least_via.format(items=", ".join(items)))
    if not bullets:
        return _general("weaknesses", p)
    intro = p.weaknesses_intro
    if profile.weakness_summary and not compact:
        intro = _sentence(_clean(profile.weakness_summary, 35)) + " " + intro
    section = _Section(intro, bullets[: 3 if compact else 5])
    if not compact:
        section.outro.append(p.weaknesses_outro)
    return section


def _majors(profile: AssessmentProfile, p: Phrases, compact: bool) -> _Section:
    career_names = [_clean(c.name, 8) for c in profile.careers[:3]]
    if profile.majors:
        bullets = [
            f"**{_clean(c.name, 8)}**: " + ", ".join(_clean(m, 6) for m in c.related_majors[:4])
            for c in profile.careers
            if c.related_majors
        ]
        section = _Section(p.majors_intro, bullets[: 3 if compact else 4])
    elif profile.riasec:
        code, names = _holland(profile, p)
        section = _Section(
            p.majors_riasec_intro.format(code=code, names=names),
            _riasec_bullets(profile, p, p.riasec_majors, 2 if compact else 3),
        )
        if career_names and not compact:
            section.outro.append(p.majors_careers_hint.format(careers=_join(career_names, p)))
    else:
        section = _general("majors", p)
        if career_names and not compact:
            section.outro.append(p.majors_careers_hint.format(careers=_join(career_names, p)))
    if not compact:
        section.outro.append(p.majors_outro)
    return section


def _skills(profile: AssessmentProfile, p: Phrases, compact: bool) -> _Section:
    if profile.skill_suggestions:
        limit = 3 if compact else 4
        section = _Section(
            p.skills_intro, [_clean(s, 15) for s in profile.skill_suggestions[:limit]]
        )
    elif profile.riasec:
        code, names = _holland(profile, p)
        section = _Section(
            p.skills_riasec_intro.format(code=code, names=names),
            _riasec_bullets(profile, p, p.riasec_skills, 2 if compact else 3),
        )
    else:
        section = _general("skills", p)
    if profile.learning_style and not compact:
        section.bullets.append(p.learning_style.format(text=_clean(profile.learning_style, 25)))
    if not compact:
        section.outro.append(p.skills_outro)
    return section


def _environment(profile: AssessmentProfile, p: Phrases, compact: bool) -> _Section:
    bullets: list[str] = []
    if profile.work_environment:
        bullets.append(p.work_environment.format(text=_clean(profile.work_environment, 35)))
    bullets.extend(_riasec_bullets(profile, p, p.riasec_env, 1))
    bullets.extend(
        _ocean_bullet(trait, level, score, p.ocean_env[(trait, level)], p)
        for trait, level, score in _ocean_levels(profile)[:2]
    )
    if profile.core_motivators:
        items = ", ".join(_clean(m, 8) for m in profile.core_motivators[:3])
        bullets.append(p.motivators.format(items=items))
    if profile.risk_tolerance:
        value = _level_key(profile.risk_tolerance)
        group = RISK_GROUP.get(value)
        if group is not None:
            bullets.append(p.risk.format(level=p.risk_value[value], tip=p.risk_tip[group]))
    if not bullets:
        return _general("environment", p)
    section = _Section(p.environment_intro, bullets[: 3 if compact else 5])
    if not compact:
        section.outro.append(p.environment_outro)
    return section


def _personality(profile: AssessmentProfile, p: Phrases, compact: bool) -> _Section:
    bullets: list[str] = []
    ranking = profile.riasec_ranking
    if ranking:
        code, names = _holland(profile, p)
        text = p.holland_bullet.format(code=code, names=names, desc=p.riasec_desc[ranking[0]])
        if len(ranking) > 1:
            text += p.holland_also.format(desc=p.riasec_desc[ranking[1]])
        bullets.append(text + ".")
    for trait, level, score in _ocean_levels(profile)[: 1 if compact else 2]:
        text = (p.ocean_high if level == "high" else p.ocean_low)[trait]
        bullets.append(_ocean_bullet(trait, level, score, text, p))
    strengths = _top_via_names(profile, p, 3)
    if strengths:
        bullets.append(p.top_via.format(items=_join(strengths, p)))
    if profile.strengths and len(bullets) < 3:
        items = ", ".join(_clean(s, 10) for s in profile.strengths[:4])
        bullets.append(p.persona_strengths.format(items=items))
    if profile.core_motivators and len(bullets) < 3:
        items = ", ".join(_clean(m, 8) for m in profile.core_motivators[:3])
        bullets.append(p.motivators.format(items=items))
    if profile.role_models and not compact:
        people = [
            f"{_clean(r.name, 6)} ({_clean(r.title, 8)})" if r.title else _clean(r.name, 6)
            for r in profile.role_models[:3]
        ]
        bullets.append(p.role_models.format(items=_join(people, p)))
    if profile.archetype:
        intro = p.personality_archetype.format(archetype=_clean(profile.archetype, 8))
        if profile.short_summary and not compact:
            intro += " " + _sentence(_clean(profile.short_summary, 30))
    elif bullets:
        intro = p.personality_intro
    else:
        return _general("personality", p)
    section = _Section(intro, bullets)
    if not compact:
        section.outro.append(p.personality_outro)
    return section


def _overview(profile: AssessmentProfile, p: Phrases, blank: bool) -> _Section:
    bullets: list[str] = []
    if not blank:
        if profile.archetype:
            text = p.overview_archetype.format(archetype=_clean(profile.archetype, 8))
            if profile.short_summary:
                text += " — " + _clean(profile.short_summary, 25)
            bullets.append(text)
        code, names = _holland(profile, p)
        if code:
            bullets.append(p.overview_holland.format(code=code, names=names))
        strengths = _top_via_names(profile, p, 3)
        if strengths:
            bullets.append(p.top_via.format(items=_join(strengths, p)))
        if profile.careers:
            careers = ", ".join(_clean(c.name, 8) for c in profile.careers[:3])
            bullets.append(p.overview_careers.format(items=careers))
        elif profile.riasec_ranking:
            careers = p.riasec_careers[profile.riasec_ranking[0]]
            bullets.append(p.overview_careers.format(items=_cap(careers)))
    if not bullets:
        return _Section(p.welcome, list(p.general["overview"].bullets))
    return _Section(p.overview_intro, bullets, [p.invitation])


_Builder = Callable[[AssessmentProfile, Phrases, bool], _Section]

_BUILDERS: dict[Topic, _Builder] = {
    Topic.CAREERS: _careers,
    Topic.STRENGTHS: _strengths,
    Topic.WEAKNESSES: _weaknesses,
    Topic.MAJORS: _majors,
    Topic.SKILLS: _skills,
    Topic.ENVIRONMENT: _environment,
    Topic.PERSONALITY: _personality,
}


def compose_answer(profile: AssessmentProfile | None, question: str, language: str) -> str:
    """The advisor's Markdown answer to ``question``, grounded in ``profile``.

    Args:
        profile: The student's assessment profile; None or partly empty is fine.
        question: The student's message.
        language: ``id`` (Indonesian, also the fallback) or ``en`` (English).

    Returns:
        A short Markdown answer; the same arguments always give the same text.
    """
    p = phrases_for(language)
    facts = profile if profile is not None else _EMPTY_PROFILE
    blank = _is_blank(facts)
    topics = detect_topics(question)
    if topics:
        compact = len(topics) > 1
        parts = [
            _BUILDERS[topic](facts, p, compact).render(p.headings[topic] if compact else None)
            for topic in topics
        ]
        if compact:
            parts.append(p.more_detail)
    else:
        parts = [_overview(facts, p, blank).render(None)]
    if blank:
        parts.append(p.take_assessment)
    return "\n\n".join(parts)
