"""The welcome message, the welcome prompt and the suggested questions."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatcore.domain import AssessmentProfile, parse_profile
from chatcore.prompts import profile_summary, system_prompt
from chatcore.suggestions import (
    ASSESSMENT_TITLE,
    MAX_QUESTION_LENGTH,
    assessment_title,
    suggested_questions,
    welcome_message,
    welcome_prompt,
)
from tests.conftest import load_fixture

LANGS = ("id", "en")
CAREERS = ("Data Scientist", "Software Engineer", "UX Researcher")
HOLLAND = {"id": "Investigatif–Artistik–Sosial", "en": "Investigative–Artistic–Social"}
TOP_VIA = {
    "id": ("rasa ingin tahu", "cinta belajar", "kreativitas"),
    "en": ("curiosity", "love of learning", "creativity"),
}
DOMINANT = {"id": "Investigatif", "en": "Investigative"}
INVITATION = {"id": "Tanyakan apa saja", "en": "Ask me anything"}
QUESTION_START = {
    "id": {"Seperti", "Karier", "Jalur", "Bagaimana", "Jurusan", "Apa", "Keterampilan"},
    "en": {"What", "Which", "How"},
}
BULLET_RE = re.compile(r"^\s*[-*+]\s*(.*)$")


def _archive(version: str) -> dict[str, Any]:
    data: dict[str, Any] = load_fixture(f"archive_result_{version}.json")["data"]
    return data


def _profile(version: str) -> AssessmentProfile:
    data = _archive(version)
    return parse_profile(data["assessment_data"], data["persona_profile"])


def _without(version: str, *persona_keys: str, scores: tuple[str, ...] = ()) -> AssessmentProfile:
    data = copy.deepcopy(_archive(version))
    for key in persona_keys:
        data["persona_profile"].pop(key, None)
    for key in scores:
        data["assessment_data"].pop(key, None)
    return parse_profile(data["assessment_data"], data["persona_profile"])


def _scores_only() -> AssessmentProfile:
    return parse_profile(_archive("v2")["assessment_data"], None)


def _persona_only() -> AssessmentProfile:
    return parse_profile(None, _archive("v2")["persona_profile"])


PROFILES: dict[str, AssessmentProfile | None] = {
    "v1": _profile("v1"),
    "v2": _profile("v2"),
    "scores_only": _scores_only(),
    "persona_only": _persona_only(),
    "no_careers": _without("v2", "careerRecommendation"),
    "no_via": _without("v2", scores=("viaIs",)),
    "none": None,
}


def _assert_clean(text: str) -> None:
    """No ``None``, no empty bullets, no label without a value, no dangling colon."""
    assert text.strip()
    assert "None" not in text
    assert "()" not in text
    assert text.count("**") % 2 == 0
    lines = text.splitlines()
    for index, line in enumerate(lines):
        bullet = BULLET_RE.match(line)
        if bullet:
            content = bullet.group(1)
            assert content.strip(), f"empty bullet in {text!r}"
            assert not re.fullmatch(r"\*\*[^*]*:\*\*\s*", content), f"empty value: {line!r}"
        if line.rstrip().endswith(":"):
            following = [ln for ln in lines[index + 1 :] if ln.strip()]
            assert following, f"dangling colon: {line!r}"
            assert BULLET_RE.match(following[0]), f"colon without a list: {line!r}"


def _words(text: str) -> int:
    return len(text.split())


# --- the welcome -------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("lang", LANGS)
def test_welcome_greets_with_the_whole_profile(version: str, lang: str) -> None:
    profile = _profile(version)
    text = welcome_message(profile, lang, assessment_name="AI-Driven Talent Mapping")

    assert "The Analytical Innovator" in text
    assert HOLLAND[lang] in text
    assert "IAS" in text
    for strength in TOP_VIA[lang]:
        assert strength in text
    assert 2 <= sum(career in text for career in CAREERS) <= 3
    assert INVITATION[lang] in text
    assert "AI-Driven Talent Mapping" in text
    assert _words(text) <= 180
    _assert_clean(text)


@pytest.mark.parametrize("lang", LANGS)
def test_welcome_is_deterministic_and_in_the_language(lang: str) -> None:
    profile = _profile("v2")
    assert welcome_message(profile, lang) == welcome_message(profile, lang)
    assert welcome_message(profile, "id") != welcome_message(profile, "en")


def test_unknown_language_falls_back_to_indonesian() -> None:
    profile = _profile("v2")
    assert welcome_message(profile, "fr") == welcome_message(profile, "id")
    assert suggested_questions(profile, "fr") == suggested_questions(profile, "id")
    assert welcome_message(None, "xx") == welcome_message(None, "id")


def test_assessment_name_defaults_to_the_profiles_and_can_be_absent() -> None:
    profile = _profile("v2")
    assert "AI-Driven Talent Mapping" in welcome_message(profile, "en")
    custom = welcome_message(profile, "en", assessment_name="Talent Scan 2026")
    assert "Talent Scan 2026" in custom
    assert "AI-Driven" not in custom
    bare = _without("v2", scores=("assessmentName",))
    text = welcome_message(bare, "id")
    assert "**" in text
    assert "(**)" not in text
    assert "(*" not in text
    _assert_clean(text)


@pytest.mark.parametrize("lang", LANGS)
def test_welcome_with_scores_only(lang: str) -> None:
    text = welcome_message(_scores_only(), lang)
    assert HOLLAND[lang] in text
    for strength in TOP_VIA[lang]:
        assert strength in text
    assert "Analytical Innovator" not in text
    assert not any(career in text for career in CAREERS)
    assert INVITATION[lang] in text
    _assert_clean(text)


@pytest.mark.parametrize("lang", LANGS)
def test_welcome_with_persona_only(lang: str) -> None:
    text = welcome_message(_persona_only(), lang)
    assert "The Analytical Innovator" in text
    assert HOLLAND[lang] not in text
    # No VIA scores: the persona's own strengths stand in for them.
    assert "Analytical reasoning" in text
    assert sum(career in text for career in CAREERS) == 3
    assert INVITATION[lang] in text
    _assert_clean(text)


@pytest.mark.parametrize("lang", LANGS)
def test_welcome_without_careers(lang: str) -> None:
    text = welcome_message(_without("v2", "careerRecommendation"), lang)
    assert "The Analytical Innovator" in text
    assert HOLLAND[lang] in text
    assert not any(career in text for career in CAREERS)
    assert INVITATION[lang] in text
    _assert_clean(text)


@pytest.mark.parametrize("lang", LANGS)
def test_welcome_without_via(lang: str) -> None:
    text = welcome_message(_without("v2", scores=("viaIs",)), lang)
    assert HOLLAND[lang] in text
    assert not any(strength in text for strength in TOP_VIA[lang][1:])
    assert "Data Scientist" in text
    _assert_clean(text)


@pytest.mark.parametrize("lang", LANGS)
def test_welcome_without_any_profile_is_generic(lang: str) -> None:
    for profile in (None, AssessmentProfile(), parse_profile({}, {})):
        text = welcome_message(profile, lang)
        assert INVITATION[lang] in text
        assert "RIASEC" in text
        assert _words(text) <= 180
        _assert_clean(text)


@pytest.mark.parametrize("lang", LANGS)
def test_welcome_with_nothing_notable_has_no_dangling_list(lang: str) -> None:
    profile = parse_profile({"ocean": dict.fromkeys(("openness", "extraversion"), 50)}, None)
    text = welcome_message(profile, lang)
    assert "- " not in text
    assert INVITATION[lang] in text
    _assert_clean(text)


def test_welcome_keeps_odd_profile_text_on_one_line_and_short() -> None:
    persona = {
        "archetype": "The\nMulti-line   Archetype " + "very " * 60,
        "careerRecommendation": [{"careerName": f"Career {i}\n- injected " * 20} for i in range(5)],
    }
    text = welcome_message(parse_profile(None, persona), "en")
    assert "The Multi-line Archetype" in text
    assert "\n- injected" not in text
    assert _words(text) <= 180
    _assert_clean(text)


def test_welcome_lists_at_most_three_careers_and_no_duplicates() -> None:
    persona = {"careerRecommendation": ["Nurse", "nurse", "Teacher", "Pilot", "Chef"]}
    text = welcome_message(parse_profile(None, persona), "en")
    assert "Nurse, Teacher and Pilot" in text
    assert "Chef" not in text


@pytest.mark.parametrize("lang", LANGS)
def test_welcome_mentions_notable_traits(lang: str) -> None:
    text = welcome_message(_profile("v2"), lang)
    # Openness 84 (high) and extraversion 35 (low) are notable; the rest are not.
    expected = {"id": ("berpikiran terbuka", "reflektif"), "en": ("open-minded", "reflective")}
    for word in expected[lang]:
        assert word in text


# --- the welcome prompt ------------------------------------------------------------


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("lang", LANGS)
def test_welcome_prompt_carries_system_prompt_and_profile(version: str, lang: str) -> None:
    profile = _profile(version)
    messages = welcome_prompt(profile, lang)
    assert [m.role for m in messages] == ["system", "user"]
    system, user = messages
    assert system.content.startswith(system_prompt(lang))
    assert "180" in system.content
    assert profile_summary(profile, lang) in user.content
    assert "The Analytical Innovator" in user.content
    assert HOLLAND[lang] in user.content
    assert welcome_prompt(profile, lang) == messages


def test_welcome_prompt_is_in_the_language() -> None:
    profile = _profile("v2")
    id_system = welcome_prompt(profile, "id")[0].content
    en_system = welcome_prompt(profile, "en")[0].content
    assert "Bahasa Indonesia" in id_system
    assert "in English" in en_system
    assert welcome_prompt(profile, "de") == welcome_prompt(profile, "id")


# --- suggested questions -------------------------------------------------------------


def _check_questions(questions: list[str], lang: str) -> None:
    assert 3 <= len(questions) <= 5
    assert len({q.casefold() for q in questions}) == len(questions)
    for question in questions:
        assert question.strip() == question
        assert question.endswith("?")
        assert "\n" not in question
        assert "None" not in question
        assert len(question) <= MAX_QUESTION_LENGTH
        assert question.split()[0] in QUESTION_START[lang], question


@pytest.mark.parametrize("name", sorted(PROFILES))
@pytest.mark.parametrize("lang", LANGS)
def test_suggestions_are_three_to_five_unique_stable_questions(name: str, lang: str) -> None:
    profile = PROFILES[name]
    questions = suggested_questions(profile, lang)
    _check_questions(questions, lang)
    assert suggested_questions(profile, lang) == questions
    other = suggested_questions(profile, "en" if lang == "id" else "id")
    assert not set(other) & set(questions)


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("lang", LANGS)
def test_suggestions_reflect_the_profile(version: str, lang: str) -> None:
    questions = suggested_questions(_profile(version), lang)
    joined = "\n".join(questions)
    assert "Data Scientist" in joined
    assert DOMINANT[lang] in joined
    # Openness 84: a question about creative or exploratory paths.
    assert any("kreatif" in q or "creative" in q for q in questions)
    # The first pitfall.
    assert "Perfectionism delaying delivery" in joined


@pytest.mark.parametrize("lang", LANGS)
def test_suggestions_use_related_majors_of_v2(lang: str) -> None:
    joined = "\n".join(suggested_questions(_profile("v2"), lang))
    assert "Statistika" in joined
    assert "Ilmu Komputer" in joined


@pytest.mark.parametrize("lang", LANGS)
def test_low_extraversion_asks_about_introverts(lang: str) -> None:
    profile = parse_profile({"ocean": {"extraversion": 20, "openness": 55}}, None)
    questions = suggested_questions(profile, lang)
    _check_questions(questions, lang)
    assert any(("introver" in q) for q in questions)


@pytest.mark.parametrize("lang", LANGS)
def test_high_neuroticism_offers_help_with_stress(lang: str) -> None:
    profile = parse_profile({"ocean": {"neuroticism": 90}, "riasec": {"social": 80}}, None)
    questions = suggested_questions(profile, lang)
    _check_questions(questions, lang)
    assert any("stres" in q for q in questions)
    # ...but the welcome does not label the student.
    assert "neuroti" not in welcome_message(profile, lang).casefold()


def test_dominant_type_uses_the_right_article() -> None:
    social = parse_profile({"riasec": {"social": 90, "artistic": 10}}, None)
    assert any("a Social type" in q for q in suggested_questions(social, "en"))
    enterprising = parse_profile({"riasec": {"enterprising": 90}}, None)
    assert any("an Enterprising type" in q for q in suggested_questions(enterprising, "en"))


@pytest.mark.parametrize(
    ("career", "expected"),
    [
        ("Engineer", "an Engineer"),
        ("Data Scientist", "a Data Scientist"),
        ("UX Researcher", "a UX Researcher"),
        ("SEO Specialist", "an SEO Specialist"),
        ("Underwriter", "an Underwriter"),
        ("University Lecturer", "a University Lecturer"),
    ],
)
def test_career_question_uses_the_right_article(career: str, expected: str) -> None:
    questions = suggested_questions(parse_profile(None, {"careerRecommendation": [career]}), "en")
    assert any(f"for {expected}?" in q for q in questions)


@pytest.mark.parametrize("lang", LANGS)
def test_no_profile_gives_three_generic_questions(lang: str) -> None:
    questions = suggested_questions(None, lang)
    _check_questions(questions, lang)
    assert len(questions) == 3
    assert suggested_questions(AssessmentProfile(), lang) == questions


def test_long_profile_text_keeps_questions_short() -> None:
    persona = {
        "careerRecommendation": [
            {"careerName": "Chief " * 40, "relatedMajors": ["Very Long Major " * 10] * 2},
            {"careerName": "Second\ncareer " * 30},
        ],
        "possiblePitfalls": ["Overthinking\n" * 50],
    }
    scores = {"riasec": {"artistic": 70}, "ocean": {"openness": 99, "agreeableness": 1}}
    for lang in LANGS:
        _check_questions(suggested_questions(parse_profile(scores, persona), lang), lang)


def test_duplicate_careers_are_not_compared_with_themselves() -> None:
    persona = {"careerRecommendation": ["Nurse", "NURSE"]}
    questions = suggested_questions(parse_profile(None, persona), "en")
    assert not any("compare" in q for q in questions)


# --- the title ------------------------------------------------------------------------


def test_assessment_title() -> None:
    assert assessment_title("id") == "Panduan Karier - Hasil Asesmen"
    assert assessment_title("en") == "Career Guidance - Assessment Results"
    assert assessment_title("ja") == ASSESSMENT_TITLE["id"]


# --- arbitrary profiles --------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)
_text = st.text(max_size=200)
_score = st.one_of(
    st.integers(-50, 150), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=3)
)


def _scores_for(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(keys), _score)


_career = st.one_of(
    _text,
    st.fixed_dictionaries(
        {"careerName": _text},
        optional={"relatedMajors": st.lists(_text, max_size=4), "justification": _json},
    ),
    _json,
)
_assessment = st.one_of(
    _json,
    st.fixed_dictionaries(
        {},
        optional={
            "riasec": _scores_for(
                [
                    "realistic",
                    "investigative",
                    "artistic",
                    "social",
                    "enterprising",
                    "conventional",
                ]
            ),
            "ocean": _scores_for(
                ["openness", "conscientiousness", "extraversion", "agreeableness", "neuroticism"]
            ),
            "viaIs": st.dictionaries(st.text(min_size=1, max_size=20), _score),
            "assessmentName": _json,
        },
    ),
)
_persona = st.one_of(
    _json,
    st.fixed_dictionaries(
        {},
        optional={
            "archetype": st.one_of(_text, _json),
            "strengths": st.lists(_text, max_size=5),
            "weaknesses": st.lists(_text, max_size=5),
            "careerRecommendation": st.lists(_career, max_size=5),
            "possiblePitfalls": st.one_of(st.lists(_text, max_size=5), _json),
            "coreMotivators": st.lists(_text, max_size=3),
        },
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    assessment=_assessment,
    persona=_persona,
    lang=st.sampled_from(["id", "en", "", "zz"]),
    name=st.none() | _text,
)
def test_arbitrary_profiles_never_raise(
    assessment: Any, persona: Any, lang: str, name: str | None
) -> None:
    profile = parse_profile(assessment, persona)
    text = welcome_message(profile, lang, assessment_name=name)
    assert text.strip()
    assert _words(text) <= 180
    for line in text.splitlines():
        bullet = BULLET_RE.match(line)
        if bullet:
            assert bullet.group(1).strip()
    questions = suggested_questions(profile, lang)
    assert 3 <= len(questions) <= 5
    assert len(set(questions)) == len(questions)
    assert all(0 < len(q) <= MAX_QUESTION_LENGTH and "\n" not in q for q in questions)
    assert suggested_questions(profile, lang) == questions
    system, user = welcome_prompt(profile, lang)
    assert system.content.strip()
    assert user.content.strip()


def test_a_label_with_line_or_record_separators_stays_on_its_line() -> None:
    # str.splitlines() breaks at \x1c-\x1e, \x85, \u2028 and \u2029 too: a strength
    # named so must not leave an empty bullet or a stray line in the welcome.
    profile = parse_profile(
        {"viaIs": {"Kindness\x1e- injected": 90, "Curiosity\u2028line": 80}},
        {"strengths": ["Team\nwork"]},
    )
    assert "Kindness - injected" in profile.top_strengths()
    assert "Curiosity line" in profile.top_strengths()
    text = welcome_message(profile, "en")
    for line in text.splitlines():
        bullet = BULLET_RE.match(line)
        if bullet:
            assert bullet.group(1).strip()
    assert "Team work" in parse_profile({}, {"strengths": ["Team\nwork"]}).strengths
