"""The welcome message and suggested questions of a career-guidance conversation.

Everything here is deterministic and pure: the same profile and language always give
the same text. The template welcome is the fallback when no language model is
configured (or the model fails); :func:`welcome_prompt` is what a model is asked
when one is. Indonesian (``id``) is the default; any language other than ``id`` or
``en`` is treated as ``id``.

Profile text (archetype, career names, pitfalls...) comes from another service's
language model, so it is cleaned before use: whitespace collapsed (a stray newline
must not break a Markdown list) and long items clipped, which keeps the welcome
short and each question under :data:`MAX_QUESTION_LENGTH` characters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from chatcore.domain.profile import OCEAN_TRAITS, AssessmentProfile
from chatcore.models import ChatMessage
from chatcore.prompts import LANGUAGES, holland_names, profile_summary, strength_name, system_prompt

__all__ = [
    "ASSESSMENT_TITLE",
    "MAX_QUESTION_LENGTH",
    "MAX_SUGGESTIONS",
    "MIN_SUGGESTIONS",
    "assessment_title",
    "suggested_questions",
    "welcome_message",
    "welcome_prompt",
]

ASSESSMENT_TITLE: Final[Mapping[str, str]] = {
    "id": "Panduan Karier - Hasil Asesmen",
    "en": "Career Guidance - Assessment Results",
}
"""The title of the conversation created from an assessment result, per language."""

MIN_SUGGESTIONS: Final = 3
MAX_SUGGESTIONS: Final = 5
MAX_QUESTION_LENGTH: Final = 120

HIGH_TRAIT: Final = 70
"""A Big Five score at or above this is notable (high)."""
LOW_TRAIT: Final = 35
"""A Big Five score at or below this is notable (low)."""

_MAX_CAREERS: Final = 3
_MAX_STRENGTHS: Final = 3
_MAX_TRAITS: Final = 3

# Limits for profile text placed in the welcome and the questions, in characters.
_NAME_CHARS: Final = 60
_QUESTION_NAME_CHARS: Final = 45
_QUESTION_PHRASE_CHARS: Final = 55
# ...and in words, so that the welcome stays under about 180 words whatever the profile.
_MAX_WORDS: Final = 8


def _lang(language: str) -> str:
    return language if language in LANGUAGES else "id"


def _clip(text: str, limit: int, words: int = _MAX_WORDS) -> str:
    """``text`` on one line, cut to at most ``words`` words and ``limit`` characters."""
    parts = text.split()
    flat = " ".join(parts[:words])
    if len(parts) > words:
        flat += "…"
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-–—") + "…"


def _join(items: Sequence[str], lang: str) -> str:
    """A natural list: ``a, b dan c`` / ``a, b and c``."""
    if len(items) <= 1:
        return "".join(items)
    last = " dan " if lang == "id" else " and "
    return ", ".join(items[:-1]) + last + items[-1]


def _unique(items: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for item in items:
        key = item.casefold()
        if item and key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _notable_traits(profile: AssessmentProfile) -> list[tuple[str, str]]:
    """``(trait, "high"|"low")`` for each notable Big Five trait, most pronounced first.

    Ties keep the canonical O-C-E-A-N order, so the result is stable.
    """
    found: list[tuple[int, int, str, str]] = []
    for index, trait in enumerate(OCEAN_TRAITS):
        score = profile.ocean.get(trait)
        if score is None:
            continue
        if score >= HIGH_TRAIT:
            found.append((-abs(score - 50), index, trait, "high"))
        elif score <= LOW_TRAIT:
            found.append((-abs(score - 50), index, trait, "low"))
    return [(trait, level) for _, _, trait, level in sorted(found)]


def _career_names(profile: AssessmentProfile, limit: int, chars: int) -> list[str]:
    return _unique([_clip(c.name, chars) for c in profile.careers])[:limit]


# --- the welcome --------------------------------------------------------------------

_WELCOME: Final[Mapping[str, Mapping[str, str]]] = {
    "id": {
        "greeting": "Halo! Selamat datang di sesi panduan kariermu.",
        "read": "Aku sudah mempelajari hasil asesmenmu{name}",
        "snapshot": ", dan ini gambaran singkatnya:",
        "end": ".",
        "archetype": "**Tipe persona:** {value}",
        "holland": "**Kode Holland:** {code} ({names})",
        "via": "**Kekuatan karakter teratas:** {value}",
        "strengths": "**Kekuatan utamamu:** {value}",
        "traits": "**Gaya kepribadian (Big Five):** {value}",
        "careers": "**Karier yang direkomendasikan:** {value}",
        "invite_careers": (
            "Tanyakan apa saja padaku — misalnya seperti apa keseharian di karier-karier "
            "tersebut, jurusan kuliah yang cocok, keterampilan yang perlu kamu asah, atau "
            "cara memanfaatkan kekuatanmu. Mau mulai dari mana?"
        ),
        "invite": (
            "Tanyakan apa saja padaku — misalnya karier yang cocok untukmu, jurusan kuliah "
            "yang sesuai, keterampilan yang perlu kamu asah, atau cara memanfaatkan "
            "kekuatanmu. Mau mulai dari mana?"
        ),
        "generic": (
            "Halo! Selamat datang di sesi panduan karier.\n\n"
            "Aku asisten karier AI yang siap membantumu menemukan arah: mengenali minat dan "
            "kekuatanmu, memilih jurusan kuliah, sampai menyusun langkah menuju karier "
            "impianmu. Hasil asesmenmu belum tersedia di sini, jadi saranku akan bersifat "
            "umum dulu — ikuti asesmen kepribadian (RIASEC, Big Five dan VIA) agar saranku "
            "lebih personal.\n\n"
            "Tanyakan apa saja — misalnya karier yang cocok dengan minatmu, cara memilih "
            "jurusan, atau keterampilan yang perlu dipelajari. Mau mulai dari mana?"
        ),
    },
    "en": {
        "greeting": "Hi! Welcome to your career-guidance session.",
        "read": "I've gone through your{name} assessment results",
        "snapshot": " — here's a quick snapshot:",
        "end": ".",
        "archetype": "**Persona type:** {value}",
        "holland": "**Holland code:** {code} ({names})",
        "via": "**Top character strengths:** {value}",
        "strengths": "**Your key strengths:** {value}",
        "traits": "**Personality style (Big Five):** {value}",
        "careers": "**Recommended careers:** {value}",
        "invite_careers": (
            "Ask me anything — for example what a day in one of these careers looks like, "
            "which majors fit you, which skills to build, or how to make the most of your "
            "strengths. Where would you like to start?"
        ),
        "invite": (
            "Ask me anything — for example which careers suit you, which majors fit you, "
            "which skills to build, or how to make the most of your strengths. Where would "
            "you like to start?"
        ),
        "generic": (
            "Hi! Welcome to your career-guidance session.\n\n"
            "I'm your AI career advisor, here to help you find your direction: understanding "
            "your interests and strengths, choosing a major, and planning the steps toward "
            "the career you want. Your assessment results aren't available here yet, so my "
            "advice will be general for now — take the personality assessment (RIASEC, Big "
            "Five and VIA) and I can tailor it to you.\n\n"
            "Ask me anything — for example which careers match your interests, how to choose "
            "a major, or which skills to learn. Where would you like to start?"
        ),
    },
}

# Neutral-to-positive words for notable Big Five traits. High neuroticism is left out
# of the welcome on purpose: a greeting is no place to label a student anxious (the
# suggested questions offer help with stress instead).
_TRAIT_WORDS: Final[Mapping[str, Mapping[tuple[str, str], str]]] = {
    "id": {
        ("openness", "high"): "berpikiran terbuka",
        ("openness", "low"): "praktis",
        ("conscientiousness", "high"): "teratur",
        ("conscientiousness", "low"): "fleksibel",
        ("extraversion", "high"): "supel",
        ("extraversion", "low"): "reflektif",
        ("agreeableness", "high"): "kooperatif",
        ("agreeableness", "low"): "lugas",
        ("neuroticism", "low"): "tenang di bawah tekanan",
    },
    "en": {
        ("openness", "high"): "open-minded",
        ("openness", "low"): "practical",
        ("conscientiousness", "high"): "organised",
        ("conscientiousness", "low"): "flexible",
        ("extraversion", "high"): "outgoing",
        ("extraversion", "low"): "reflective",
        ("agreeableness", "high"): "cooperative",
        ("agreeableness", "low"): "frank",
        ("neuroticism", "low"): "calm under pressure",
    },
}


def _welcome_bullets(profile: AssessmentProfile, lang: str) -> list[str]:
    words = _WELCOME[lang]
    bullets: list[str] = []
    if profile.archetype:
        bullets.append(words["archetype"].format(value=_clip(profile.archetype, _NAME_CHARS)))
    if profile.holland_code:
        names = "–".join(holland_names(profile, lang))
        bullets.append(words["holland"].format(code=profile.holland_code, names=names))
    if profile.via:
        top = [strength_name(key, lang) for key in profile.top_strengths(_MAX_STRENGTHS)]
        bullets.append(words["via"].format(value=_join(top, lang)))
    elif profile.strengths:
        # No VIA scores: the persona's own strengths are the next best thing.
        own = _unique([_clip(s, 40, 6) for s in profile.strengths])[:_MAX_STRENGTHS]
        bullets.append(words["strengths"].format(value=_join(own, lang)))
    trait_words = _TRAIT_WORDS[lang]
    traits = [trait_words[t] for t in _notable_traits(profile) if t in trait_words]
    if traits:
        bullets.append(words["traits"].format(value=_join(traits[:_MAX_TRAITS], lang)))
    careers = _career_names(profile, _MAX_CAREERS, _NAME_CHARS)
    if careers:
        bullets.append(words["careers"].format(value=_join(careers, lang)))
    return bullets


def welcome_message(
    profile: AssessmentProfile | None,
    language: str,
    *,
    assessment_name: str | None = None,
) -> str:
    """The template welcome of a new career-guidance conversation.

    Greets the student with what the profile says — archetype, Holland code spelled
    out, top three VIA strengths, notable Big Five traits and up to three recommended
    careers — and invites questions. Parts the profile lacks are left out; with no
    profile (or an empty one) the welcome is a generic one that suggests taking the
    assessment.

    Args:
        profile: The student's assessment profile, or None when there is none.
        language: ``id`` (default) or ``en``; anything else is treated as ``id``.
        assessment_name: The assessment's display name; defaults to the profile's.

    Returns:
        Short Markdown (under about 180 words), never empty.
    """
    lang = _lang(language)
    words = _WELCOME[lang]
    if profile is None or profile.is_empty:
        return words["generic"]
    name = assessment_name if assessment_name is not None else profile.assessment_name
    name_part = ""
    if name and name.strip():
        clipped = _clip(name, _NAME_CHARS)
        name_part = f" (*{clipped}*)" if lang == "id" else f" *{clipped}*"
    bullets = _welcome_bullets(profile, lang)
    intro = words["read"].format(name=name_part)
    intro += words["snapshot"] if bullets else words["end"]
    parts = [words["greeting"], intro]
    if bullets:
        parts.append("\n".join(f"- {b}" for b in bullets))
    parts.append(words["invite_careers"] if profile.careers else words["invite"])
    return "\n\n".join(parts)


# --- asking a model to write the welcome ----------------------------------------------

_WELCOME_TASK: Final[Mapping[str, str]] = {
    "id": (
        "Tugasmu sekarang: tulis pesan sambutan pembuka yang hangat dan personal untuk "
        "percakapan panduan karier baru siswa ini, berdasarkan profil asesmennya. Sebutkan "
        "tipe persona (arketipe), kode Holland beserta kepanjangannya (misalnya "
        "IAS: Investigatif–Artistik–Sosial), tiga kekuatan karakter VIA teratas dalam "
        "kata-kata, serta dua atau tiga karier yang direkomendasikan. Tutup dengan ajakan "
        "untuk bertanya dan contoh hal yang bisa ditanyakan (keseharian sebuah karier, "
        "jurusan kuliah, keterampilan, kekuatan dan kelemahan). Lewati bagian yang tidak "
        "ada di profil dan jangan mengarang. Gunakan Markdown yang ringkas (boleh daftar "
        "berpoin), paling banyak 180 kata, dalam Bahasa Indonesia. Tulis pesannya saja, "
        "tanpa pengantar."
    ),
    "en": (
        "Your task now: write a warm, personal opening welcome for this student's new "
        "career-guidance conversation, based on their assessment profile. Mention their "
        "persona type (archetype), their Holland code spelled out (for example IAS: "
        "Investigative–Artistic–Social), their top three VIA character strengths in words, "
        "and two or three recommended careers. End with an invitation to ask questions and "
        "examples of what they can ask (a day in one of the careers, majors, skills, "
        "strengths and weaknesses). Leave out anything the profile lacks and invent "
        "nothing. Use concise Markdown (a short bullet list is fine), at most 180 words, "
        "in English. Write only the message, with no preamble."
    ),
}

_WELCOME_REQUEST: Final[Mapping[str, str]] = {
    "id": "Tuliskan pesan sambutan untuk siswa dengan profil di atas.",
    "en": "Write the welcome message for the student with the profile above.",
}


def welcome_prompt(profile: AssessmentProfile, language: str) -> tuple[ChatMessage, ...]:
    """The messages asking a language model to write the welcome for ``profile``.

    Used when a model is configured; :func:`welcome_message` is the fallback.

    Args:
        profile: The student's assessment profile.
        language: ``id`` (default) or ``en``; anything else is treated as ``id``.

    Returns:
        A system message (the advisor's system prompt plus the welcome task) and a
        user message (the profile summary plus the request).
    """
    lang = _lang(language)
    system = f"{system_prompt(lang)}\n\n{_WELCOME_TASK[lang]}"
    user = f"{profile_summary(profile, lang)}\n\n{_WELCOME_REQUEST[lang]}"
    return (ChatMessage("system", system), ChatMessage("user", user))


# --- suggested questions --------------------------------------------------------------

_QUESTIONS: Final[Mapping[str, Mapping[str, str]]] = {
    "id": {
        "career_day": "Seperti apa keseharian kerja seorang {career}?",
        "type_careers": "Karier apa lagi yang cocok untuk tipe {type} sepertiku?",
        "type_only": "Karier apa yang paling cocok untuk tipe {type} sepertiku?",
        "pitfall": "Bagaimana cara mengatasi kelemahan “{pitfall}”?",
        "majors": "Jurusan kuliah mana yang paling cocok untukku, misalnya {majors}?",
        "majors_generic": "Jurusan kuliah apa yang sesuai dengan profilku?",
        "compare": "Apa beda karier {a} dan {b}, dan mana yang lebih cocok untukku?",
        "strength": "Bagaimana cara memanfaatkan {strength} dalam karierku?",
        "skills": "Keterampilan apa yang sebaiknya mulai kupelajari sekarang?",
    },
    "en": {
        "career_day": "What does a typical day on the job look like for {career}?",
        "type_careers": "Which other careers suit {type} type like me?",
        "type_only": "Which careers suit {type} type like me best?",
        "pitfall": "How can I avoid the pitfall of “{pitfall}”?",
        "majors": "Which major suits me best — for example {majors}?",
        "majors_generic": "Which majors fit my profile?",
        "compare": "How do {a} and {b} compare as careers for someone like me?",
        "strength": "How can I put my {strength} to work in my career?",
        "skills": "Which skills should I start building now?",
    },
}

_TRAIT_QUESTIONS: Final[Mapping[str, Mapping[tuple[str, str], str]]] = {
    "id": {
        ("openness", "high"): "Jalur karier kreatif atau eksploratif apa yang bisa kucoba?",
        ("openness", "low"): "Karier apa yang punya jalur jelas dan terstruktur?",
        ("conscientiousness", "high"): (
            "Bagaimana sifat teratur dan disiplinku bisa jadi keunggulan dalam berkarier?"
        ),
        ("conscientiousness", "low"): (
            "Bagaimana cara lebih disiplin menghadapi tenggat dan rutinitas?"
        ),
        ("extraversion", "high"): (
            "Karier apa yang cocok untuk orang yang berenergi saat bekerja bersama banyak orang?"
        ),
        ("extraversion", "low"): "Karier apa yang cocok untuk orang introver sepertiku?",
        ("agreeableness", "high"): (
            "Karier apa yang memungkinkanku membantu dan bekerja sama dengan orang lain?"
        ),
        ("agreeableness", "low"): (
            "Bagaimana sikapku yang lugas dan kritis bisa jadi kekuatan di tempat kerja?"
        ),
        ("neuroticism", "high"): (
            "Bagaimana cara mengelola stres dan tekanan saat kuliah atau bekerja?"
        ),
        ("neuroticism", "low"): "Karier apa yang cocok untuk orang yang tenang di bawah tekanan?",
    },
    "en": {
        ("openness", "high"): "What creative or exploratory career paths could I try?",
        ("openness", "low"): "Which careers offer a clear, structured path?",
        ("conscientiousness", "high"): (
            "How can my organised, disciplined side give me an edge in my career?"
        ),
        ("conscientiousness", "low"): "How can I get better at handling deadlines and routines?",
        ("extraversion", "high"): "Which careers make the most of my energy around people?",
        ("extraversion", "low"): "Which careers suit an introvert like me?",
        ("agreeableness", "high"): "Which careers let me help and collaborate with others?",
        ("agreeableness", "low"): (
            "How can my direct, critical style become a strength in the workplace?"
        ),
        ("neuroticism", "high"): "How can I manage stress and pressure at school or work?",
        ("neuroticism", "low"): "Which careers reward staying calm under pressure?",
    },
}

_GENERIC_QUESTIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "id": (
        "Karier apa yang cocok dengan minat dan kekuatanku?",
        "Bagaimana cara memilih jurusan kuliah yang tepat?",
        "Keterampilan apa yang sebaiknya mulai kupelajari sekarang?",
    ),
    "en": (
        "Which careers suit my interests and strengths?",
        "How do I choose the right major?",
        "Which skills should I start building now?",
    ),
}


# Acronyms are read letter by letter: "an SEO Specialist", "a UX Researcher".
_AN_LETTERS: Final = frozenset("AEFHILMNORSX")


def _with_article(noun: str) -> str:
    """``noun`` behind the English indefinite article that sounds right.

    A heuristic on spelling: good for job titles and type names, not for every word
    of English ("an hour" would come out wrong).
    """
    first = noun.split(" ", 1)[0]
    letters = "".join(ch for ch in first if ch.isalpha())
    if len(letters) > 1 and letters.isupper():
        vowel_sound = letters[0] in _AN_LETTERS
    else:
        low = letters.lower()
        vowel_sound = low[:1] in ("a", "e", "i", "o") or (
            low.startswith(("un", "up", "ul", "um")) and not low.startswith("uni")
        )
    return f"{'an' if vowel_sound else 'a'} {noun}"


def _fill(template: str, **values: str) -> str:
    """``template`` with ``values`` clipped to share the room left under the length limit."""
    fixed = len(template.format(**dict.fromkeys(values, "")))
    share = max(10, (MAX_QUESTION_LENGTH - fixed) // max(1, len(values)))
    return template.format(**{key: _clip(value, share) for key, value in values.items()})


def _profile_questions(profile: AssessmentProfile, lang: str) -> list[str]:
    """Candidate questions in priority order: career, type, trait, pitfall, majors, more."""
    q = _QUESTIONS[lang]
    careers = _career_names(profile, 2, _QUESTION_NAME_CHARS)
    traits = _notable_traits(profile)
    trait_questions = [_TRAIT_QUESTIONS[lang][t] for t in traits]
    types = holland_names(profile, lang, 1)

    out: list[str] = []
    if careers:
        career = _with_article(careers[0]) if lang == "en" else careers[0]
        out.append(_fill(q["career_day"], career=career))
    if types:
        template = q["type_careers"] if careers else q["type_only"]
        kind = _with_article(types[0]) if lang == "en" else types[0]
        out.append(_fill(template, type=kind))
    out.extend(trait_questions[:1])
    pitfall = next(iter(profile.pitfalls or profile.weaknesses), None)
    if pitfall:
        out.append(_fill(q["pitfall"], pitfall=_clip(pitfall, _QUESTION_PHRASE_CHARS)))
    majors = _unique([_clip(m, 25, 4) for m in profile.majors])[:2]
    if majors:
        or_word = " atau " if lang == "id" else " or "
        out.append(_fill(q["majors"], majors=or_word.join(majors)))
    elif profile.riasec or profile.careers:
        out.append(q["majors_generic"])
    out.extend(trait_questions[1:2])
    if len(careers) > 1:
        out.append(_fill(q["compare"], a=careers[0], b=careers[1]))
    if profile.via:
        top = strength_name(profile.top_strengths(1)[0], lang)
        out.append(_fill(q["strength"], strength=top))
    out.append(q["skills"])
    return out


def suggested_questions(profile: AssessmentProfile | None, language: str) -> list[str]:
    """Three to five questions the student might ask next, derived from the profile.

    In priority order: a day in the first recommended career, careers for the dominant
    RIASEC type, the most pronounced Big Five trait (high at 70 or more, low at 35 or
    less), how to keep a pitfall in check, related majors; then further traits, a
    comparison of two careers, the top VIA strength and skills fill any gap. Without a
    profile, three generic questions.

    Args:
        profile: The student's assessment profile, or None when there is none.
        language: ``id`` (default) or ``en``; anything else is treated as ``id``.

    Returns:
        Between 3 and 5 distinct questions, each under 120 characters, the same for the
        same profile and language.
    """
    lang = _lang(language)
    generic = list(_GENERIC_QUESTIONS[lang])
    if profile is None or profile.is_empty:
        return generic
    picked = _unique(_profile_questions(profile, lang))[:MAX_SUGGESTIONS]
    if len(picked) < MIN_SUGGESTIONS:
        picked = _unique(picked + generic)[:MIN_SUGGESTIONS]
    return picked


def assessment_title(language: str) -> str:
    """The localized title of a conversation created from an assessment result.

    Args:
        language: ``id`` (default) or ``en``; anything else is treated as ``id``.

    Returns:
        For example ``Panduan Karier - Hasil Asesmen``.
    """
    return ASSESSMENT_TITLE[_lang(language)]
