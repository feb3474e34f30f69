"""The advisor's system prompt and the profile summary, in Indonesian and English."""

from __future__ import annotations

from typing import Final

from chatcore.domain.profile import AssessmentProfile

__all__ = [
    "LANGUAGES",
    "holland_names",
    "profile_summary",
    "strength_name",
    "system_prompt",
]

LANGUAGES: Final = ("id", "en")

_SYSTEM: Final = {
    "id": (
        "Kamu adalah konselor karier AI di platform pemetaan bakat untuk pelajar dan "
        "mahasiswa Indonesia. Jawab dalam Bahasa Indonesia yang hangat, jelas dan "
        "ringkas. Dasarkan setiap saran pada profil asesmen pengguna (RIASEC/Holland, "
        "Big Five, kekuatan karakter VIA dan persona) bila tersedia, sebutkan alasannya, "
        "dan berikan langkah nyata yang bisa dilakukan. Jangan mengarang fakta tentang "
        "pengguna di luar profilnya. Untuk masalah kesehatan mental yang serius, sarankan "
        "bantuan profesional."
    ),
    "en": (
        "You are an AI career advisor on a talent-mapping platform for students. Answer "
        "in warm, clear and concise English. Ground every suggestion in the user's "
        "assessment profile (RIASEC/Holland, Big Five, VIA character strengths and "
        "persona) when it is available, say why, and give concrete next steps. Do not "
        "invent facts about the user beyond the profile. For serious mental-health "
        "concerns, suggest professional help."
    ),
}

_RIASEC_NAMES: Final = {
    "id": {
        "realistic": "Realistis",
        "investigative": "Investigatif",
        "artistic": "Artistik",
        "social": "Sosial",
        "enterprising": "Wirausaha",
        "conventional": "Konvensional",
    },
    "en": {
        "realistic": "Realistic",
        "investigative": "Investigative",
        "artistic": "Artistic",
        "social": "Social",
        "enterprising": "Enterprising",
        "conventional": "Conventional",
    },
}

_VIA_NAMES_ID: Final = {
    "creativity": "kreativitas",
    "curiosity": "rasa ingin tahu",
    "judgment": "berpikir kritis",
    "loveOfLearning": "cinta belajar",
    "perspective": "kebijaksanaan",
    "bravery": "keberanian",
    "perseverance": "ketekunan",
    "honesty": "kejujuran",
    "zest": "semangat",
    "love": "kasih sayang",
    "kindness": "kebaikan hati",
    "socialIntelligence": "kecerdasan sosial",
    "teamwork": "kerja sama tim",
    "fairness": "keadilan",
    "leadership": "kepemimpinan",
    "forgiveness": "pemaaf",
    "humility": "kerendahan hati",
    "prudence": "kehati-hatian",
    "selfRegulation": "pengendalian diri",
    "appreciationOfBeauty": "apresiasi keindahan",
    "gratitude": "rasa syukur",
    "hope": "optimisme",
    "humor": "humor",
    "spirituality": "spiritualitas",
}

_LABELS: Final = {
    "id": {
        "header": "Profil asesmen pengguna",
        "archetype": "Arketipe",
        "holland": "Kode Holland",
        "riasec": "Skor RIASEC",
        "ocean": "Skor Big Five",
        "via": "Kekuatan karakter teratas (VIA)",
        "summary": "Ringkasan",
        "strengths": "Kekuatan",
        "weaknesses": "Kelemahan",
        "careers": "Rekomendasi karier",
        "majors": "Jurusan terkait",
        "skills": "Saran keterampilan",
        "pitfalls": "Hal yang perlu diwaspadai",
        "environment": "Lingkungan kerja ideal",
        "motivators": "Motivator utama",
        "learning": "Gaya belajar",
        "risk": "Toleransi risiko",
    },
    "en": {
        "header": "The user's assessment profile",
        "archetype": "Archetype",
        "holland": "Holland code",
        "riasec": "RIASEC scores",
        "ocean": "Big Five scores",
        "via": "Top character strengths (VIA)",
        "summary": "Summary",
        "strengths": "Strengths",
        "weaknesses": "Weaknesses",
        "careers": "Recommended careers",
        "majors": "Related majors",
        "skills": "Skills to build",
        "pitfalls": "Pitfalls to watch",
        "environment": "Ideal work environment",
        "motivators": "Core motivators",
        "learning": "Learning style",
        "risk": "Risk tolerance",
    },
}


def _lang(language: str) -> str:
    return language if language in LANGUAGES else "id"


def system_prompt(language: str) -> str:
    """The advisor's instructions in ``language`` (``id`` or ``en``; anything else is ``id``)."""
    return _SYSTEM[_lang(language)]


def holland_names(profile: AssessmentProfile, language: str, n: int = 3) -> tuple[str, ...]:
    """The names of the ``n`` strongest RIASEC types, e.g. ``("Investigative", "Artistic")``."""
    names = _RIASEC_NAMES[_lang(language)]
    return tuple(names[t] for t in profile.riasec_ranking[:n])


def strength_name(key: str, language: str) -> str:
    """A VIA strength key (``loveOfLearning``) as words in ``language``."""
    if _lang(language) == "id" and key in _VIA_NAMES_ID:
        return _VIA_NAMES_ID[key]
    words: list[str] = []
    current = ""
    for ch in key:
        if ch.isupper() and current:
            words.append(current)
            current = ch.lower()
        else:
            current += ch.lower()
    if current:
        words.append(current)
    return " ".join(words)


def _scores_line(scores: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in scores.items())


def profile_summary(profile: AssessmentProfile, language: str, *, compact: bool = False) -> str:
    """The profile as prompt text; ``compact`` keeps only the essentials for tight budgets."""
    lang = _lang(language)
    label = _LABELS[lang]
    lines = [f"## {label['header']}"]

    def add(key: str, value: str | None) -> None:
        if value:
            lines.append(f"- {label[key]}: {value}")

    def add_list(key: str, values: tuple[str, ...] | list[str]) -> None:
        if values:
            add(key, "; ".join(values))

    add("archetype", profile.archetype)
    if profile.holland_code:
        add("holland", f"{profile.holland_code} ({'–'.join(holland_names(profile, lang))})")
    add_list("via", [strength_name(s, lang) for s in profile.top_strengths(5)])
    add_list("careers", [c.name for c in profile.careers])
    if not compact:
        add("riasec", _scores_line(dict(profile.riasec)))
        add("ocean", _scores_line(dict(profile.ocean)))
        add("summary", profile.short_summary)
        add_list("strengths", profile.strengths)
        add_list("weaknesses", profile.weaknesses)
        add_list("majors", profile.majors)
        add_list("skills", profile.skill_suggestions)
        add_list("pitfalls", profile.pitfalls)
        add("environment", profile.work_environment)
        add_list("motivators", profile.core_motivators)
        add("learning", profile.learning_style)
        add("risk", profile.risk_tolerance)
    return "\n".join(lines)
