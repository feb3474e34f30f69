"""Which topics a student's question is about, from keywords in Indonesian and English.

Matching is on the casefolded question with punctuation turned into spaces, at the
start of a word, so suffixes still match (``karierku``, ``strengths``, ``jurusannya``).
Short or ambiguous keywords match whole words only. Where keywords overlap, the
longest wins (``lingkungan kerja`` is the environment, not ``kerja``, a career).
"""

from __future__ import annotations

import enum
import re

__all__ = ["MAX_TOPICS", "Topic", "detect_topics"]

MAX_TOPICS = 2
"""A question touching more topics than this is answered on the first ones asked."""


def _words(spec: str) -> tuple[str, ...]:
    return tuple(spec.split("|"))


class Topic(enum.StrEnum):
    """What a question can be about."""

    CAREERS = "careers"
    STRENGTHS = "strengths"
    WEAKNESSES = "weaknesses"
    MAJORS = "majors"
    SKILLS = "skills"
    ENVIRONMENT = "environment"
    PERSONALITY = "personality"


KEYWORDS: dict[Topic, tuple[str, ...]] = {
    Topic.CAREERS: _words(
        "karir|karier|berkarir|berkarier|pekerjaan|profesi|kerja|bekerja|cita cita|gaji|"
        "prospek|lowongan|career|job|profession|work as|occupation|salary|prospect"
    ),
    Topic.STRENGTHS: _words(
        "kekuatan|kelebihan|keunggulan|bakat|jago|unggul|strength|good at|talent|strong point"
    ),
    Topic.WEAKNESSES: _words(
        "kelemahan|kekurangan|lemah|perbaiki|diperbaiki|memperbaiki|sisi negatif|weakness|"
        "weak|pitfall|improve|blind spot"
    ),
    Topic.MAJORS: _words(
        "jurusan|kuliah|perkuliahan|prodi|program studi|studi|kampus|universitas|fakultas|"
        "major|majors|study|university|degree|college|faculty"
    ),
    Topic.SKILLS: _words(
        "keterampilan|ketrampilan|keahlian|kemampuan|kompetensi|belajar apa|pelajari|"
        "dipelajari|mempelajari|kursus|sertifikasi|skill|learn|course|certification"
    ),
    Topic.ENVIRONMENT: _words(
        "lingkungan kerja|tempat kerja|suasana kerja|budaya kerja|rekan kerja|lingkungan|"
        "kantor|tim|perusahaan|environment|workplace|office|team|teams|company|culture"
    ),
    Topic.PERSONALITY: _words(
        "kepribadian|holland|riasec|tipe|karakter|sifat|persona|arketipe|siapa aku|"
        "siapa saya|big five|ocean|personality|type|archetype|character|who am i"
    ),
}
"""Keywords per topic, casefolded, words separated by one space; each belongs to one topic."""

WHOLE_WORDS: frozenset[str] = frozenset(
    {"tim", "team", "major", "tipe", "type", "ocean", "sifat", "weak", "jago", "unggul", "gaji"}
)
"""Keywords that must not match as the start of a longer word (``tim`` in ``timur``)."""

_TOPIC_OF: dict[str, Topic] = {kw: topic for topic, kws in KEYWORDS.items() for kw in kws}

_ALTERNATIVES = "|".join(
    re.escape(kw) + (r"(?!\w)" if kw in WHOLE_WORDS else "")
    for kw in sorted(_TOPIC_OF, key=lambda k: (-len(k), k))
)
_KEYWORD_RE = re.compile(rf"(?<!\w)(?:{_ALTERNATIVES})")
_NON_WORD_RE = re.compile(r"[\W_]+")


def detect_topics(question: str, limit: int = MAX_TOPICS) -> tuple[Topic, ...]:
    """The topics of ``question`` in the order they are first mentioned, at most ``limit``.

    Args:
        question: The student's message, any language or script.
        limit: How many topics to return at most.

    Returns:
        The topics found, first mentioned first; empty when none is recognised.
    """
    text = _NON_WORD_RE.sub(" ", question.casefold())
    found: list[Topic] = []
    for match in _KEYWORD_RE.finditer(text):
        topic = _TOPIC_OF[match.group(0)]
        if topic not in found:
            found.append(topic)
            if len(found) >= limit:
                break
    return tuple(found)
