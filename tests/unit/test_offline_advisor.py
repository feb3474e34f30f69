"""The offline advisor: grounded, bilingual, deterministic answers and a faithful stream."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.offline import OfflineChatModel, Topic, compose_answer, detect_topics
from adapters.offline.topics import KEYWORDS
from chatcore.domain.profile import AssessmentProfile, parse_profile
from chatcore.models import ChatMessage, ChatReply, ChatRequest, StreamDelta, StreamEnd
from chatcore.ports import ChatModel
from chatcore.tokens import estimate_message_tokens, estimate_tokens
from tests.conftest import load_fixture

EMPTY_BULLET = re.compile(r"^\s*[-*]\s*$", re.MULTILINE)


def _archive(version: str) -> dict[str, Any]:
    body: dict[str, Any] = load_fixture(f"archive_result_{version}.json")
    data: dict[str, Any] = body.get("data", body)
    return data


def _profile(version: str) -> AssessmentProfile:
    data = _archive(version)
    return parse_profile(data["assessment_data"], data["persona_profile"])


V1 = _profile("v1")
V2 = _profile("v2")
SCORES_ONLY = parse_profile(_archive("v2")["assessment_data"], None)
PERSONA_ONLY = parse_profile(None, _archive("v2")["persona_profile"])
PROFILES = {"v1": V1, "v2": V2}

QUESTIONS: dict[Topic, dict[str, str]] = {
    Topic.CAREERS: {"id": "Karier apa yang cocok untuk saya?", "en": "What careers suit me?"},
    Topic.STRENGTHS: {"id": "Apa saja kekuatan saya?", "en": "What are my strengths?"},
    Topic.WEAKNESSES: {"id": "Apa kelemahan saya?", "en": "What are my weaknesses?"},
    Topic.MAJORS: {"id": "Jurusan kuliah apa yang cocok?", "en": "Which major should I pick?"},
    Topic.SKILLS: {
        "id": "Keterampilan apa yang perlu saya kembangkan?",
        "en": "What skills should I build?",
    },
    Topic.ENVIRONMENT: {
        "id": "Lingkungan kerja seperti apa yang cocok untukku?",
        "en": "What work environment suits me?",
    },
    Topic.PERSONALITY: {
        "id": "Jelaskan kepribadian saya",
        "en": "Explain my personality type",
    },
}
OVERVIEW = {"id": "Halo!", "en": "Hello!"}
ALL_QUESTIONS = [(lang, q[lang]) for q in QUESTIONS.values() for lang in ("id", "en")] + [
    ("id", OVERVIEW["id"]),
    ("en", OVERVIEW["en"]),
    ("id", "Apa kekuatan dan kelemahan saya?"),
    ("en", "Which careers and majors fit me?"),
]

# Facts each topic must mention, per fixture and language.
EXPECTED: dict[Topic, dict[tuple[str, str], tuple[str, ...]]] = {
    Topic.CAREERS: {
        (v, lang): ("Data Scientist", "Software Engineer", "UX Researcher")
        for v in ("v1", "v2")
        for lang in ("id", "en")
    },
    Topic.STRENGTHS: {
        ("v1", "id"): ("Rasa ingin tahu", "Cinta belajar", "Analytical reasoning"),
        ("v2", "id"): ("Rasa ingin tahu", "Cinta belajar", "Analytical reasoning"),
        ("v1", "en"): ("Curiosity", "Love of learning", "Analytical reasoning"),
        ("v2", "en"): ("Curiosity", "Love of learning", "Analytical reasoning"),
    },
    Topic.WEAKNESSES: {
        (v, lang): ("Can over-analyse before acting", "Perfectionism delaying delivery")
        for v in ("v1", "v2")
        for lang in ("id", "en")
    },
    Topic.MAJORS: {
        ("v2", "id"): ("Statistika", "Ilmu Komputer", "Psikologi"),
        ("v2", "en"): ("Statistika", "Teknik Informatika", "Desain Komunikasi Visual"),
        ("v1", "id"): ("Statistika", "Investigatif", "Data Scientist"),
        ("v1", "en"): ("Statistics", "Investigative", "Data Scientist"),
    },
    Topic.SKILLS: {
        (v, lang): ("Python and statistics", "Presenting findings to non-experts")
        for v in ("v1", "v2")
        for lang in ("id", "en")
    },
    Topic.ENVIRONMENT: {
        (v, lang): (V1.work_environment or "<missing>",)
        for v in ("v1", "v2")
        for lang in ("id", "en")
    },
    Topic.PERSONALITY: {
        ("v1", "id"): ("The Analytical Innovator", "IAS", "Investigatif–Artistik–Sosial"),
        ("v2", "id"): ("The Analytical Innovator", "IAS", "Investigatif–Artistik–Sosial"),
        ("v1", "en"): ("The Analytical Innovator", "IAS", "Investigative–Artistic–Social"),
        ("v2", "en"): ("The Analytical Innovator", "IAS", "Investigative–Artistic–Social"),
    },
}


def _request(
    question: str,
    profile: AssessmentProfile | None,
    language: str = "id",
    history: tuple[ChatMessage, ...] = (),
) -> ChatRequest:
    messages = (*history, ChatMessage(role="user", content=question))
    return ChatRequest(messages=messages, profile=profile, language=language)


def _complete(request: ChatRequest) -> ChatReply:
    return asyncio.run(OfflineChatModel().complete(request))


def _assert_clean(text: str) -> None:
    assert text.strip()
    assert "None" not in text
    assert EMPTY_BULLET.search(text) is None, text
    assert "()" not in text
    assert "****" not in text


def _assert_language(text: str, language: str) -> None:
    """Our own phrasing is in the asked language (profile data may be in either)."""
    words = set(re.findall(r"\w+", text.casefold()))
    if language == "id":
        # The student is "kamu", often as the possessive suffix: profilmu, untukmu...
        assert any(w == "kamu" or (w.endswith("mu") and len(w) > 5) for w in words), text
        assert words & {"yang", "dan", "untuk", "atau"}, text
    else:
        assert words & {"you", "your"}, text
        assert not words & {"kamu", "yang", "untukmu", "asesmen"}, text


# --- topics ---------------------------------------------------------------------------


def test_keywords_belong_to_one_topic_each() -> None:
    seen: dict[str, Topic] = {}
    for topic, keywords in KEYWORDS.items():
        for keyword in keywords:
            assert keyword == keyword.casefold().strip()
            assert seen.setdefault(keyword, topic) is topic, keyword


@pytest.mark.parametrize(
    ("question", "topics"),
    [
        ("Karier apa yang cocok untuk saya?", (Topic.CAREERS,)),
        ("KARIR??!", (Topic.CAREERS,)),
        ("What jobs suit me?", (Topic.CAREERS,)),
        ("I'd like to work as a designer", (Topic.CAREERS,)),
        ("Apa kelebihanku", (Topic.STRENGTHS,)),
        ("what am I good at", (Topic.STRENGTHS,)),
        ("How can I improve?", (Topic.WEAKNESSES,)),
        ("Apa kekuranganku?", (Topic.WEAKNESSES,)),
        ("Prodi apa yang pas?", (Topic.MAJORS,)),
        ("which degree / university", (Topic.MAJORS,)),
        ("Skill apa yang harus aku kuasai", (Topic.SKILLS,)),
        ("Sebaiknya belajar apa?", (Topic.SKILLS,)),
        ("lingkungan-kerja yang cocok", (Topic.ENVIRONMENT,)),
        ("Tempat kerja ideal?", (Topic.ENVIRONMENT,)),
        ("What's my Holland code?", (Topic.PERSONALITY,)),
        ("Tipe RIASEC saya apa", (Topic.PERSONALITY,)),
        ("Apa kekuatan dan kelemahan saya?", (Topic.STRENGTHS, Topic.WEAKNESSES)),
        ("jurusan, karier, dan skill", (Topic.MAJORS, Topic.CAREERS)),
        ("Saya tinggal di Jawa Timur", ()),
        ("halo", ()),
        ("", ()),
    ],
)
def test_detect_topics(question: str, topics: tuple[Topic, ...]) -> None:
    assert detect_topics(question) == topics


# --- grounded answers -------------------------------------------------------------------


@pytest.mark.parametrize("language", ["id", "en"])
@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("topic", list(QUESTIONS))
def test_each_topic_answers_with_the_profile_facts(
    topic: Topic, version: str, language: str
) -> None:
    reply = _complete(_request(QUESTIONS[topic][language], PROFILES[version], language))
    for fact in EXPECTED[topic][(version, language)]:
        assert fact in reply.content, (fact, reply.content)
    _assert_clean(reply.content)
    _assert_language(reply.content, language)


def test_careers_carry_prospects_justification_and_majors_on_v2() -> None:
    answer = compose_answer(V2, "Karier apa yang cocok untuk saya?", "id")
    assert "peluang kerja tinggi" in answer
    assert "risiko tergantikan AI rendah" in answer
    assert "High Investigative score" in answer
    assert "Jurusan terkait: Statistika" in answer
    assert "**The Analytical Innovator**" in answer
    english = compose_answer(V2, "What careers suit me?", "en")
    assert "very high job availability" in english
    assert "Related majors: Statistika" in english


def test_notable_big_five_traits_are_named() -> None:
    answer = compose_answer(V1, "Explain my personality", "en")
    assert "**Openness: high** (84)" in answer
    assert "**Extraversion: low** (35)" in answer
    assert "Conscientiousness" not in answer  # 69 is not notable


@pytest.mark.parametrize("language", ["id", "en"])
@pytest.mark.parametrize("version", ["v1", "v2"])
def test_overview_when_no_topic_matches(version: str, language: str) -> None:
    answer = compose_answer(PROFILES[version], OVERVIEW[language], language)
    assert "The Analytical Innovator" in answer
    assert "IAS" in answer
    assert "Data Scientist" in answer
    top = "rasa ingin tahu" if language == "id" else "curiosity"
    assert top in answer
    invitation = "Tanyakan saja" if language == "id" else "Ask me about"
    assert invitation in answer
    _assert_clean(answer)
    _assert_language(answer, language)


def test_several_topics_answer_the_first_two_with_headings() -> None:
    answer = compose_answer(V2, "Saya ingin tahu kekuatan, kelemahan, dan jurusan", "id")
    assert "### Kekuatanmu" in answer
    assert "### Hal yang perlu kamu kembangkan" in answer
    assert "Statistika" not in answer  # the third topic is left for a follow-up
    assert answer.index("Kekuatanmu") < answer.index("Hal yang perlu")


def test_the_question_is_the_last_user_message() -> None:
    history = (
        ChatMessage(role="system", content="You are a career advisor. Karier, jurusan."),
        ChatMessage(role="user", content="Karier apa yang cocok?"),
        ChatMessage(role="assistant", content="Data Scientist."),
    )
    reply = _complete(_request("Kalau jurusan kuliahnya?", V2, "id", history))
    assert reply.content == compose_answer(V2, "Kalau jurusan kuliahnya?", "id")
    assert "Statistika" in reply.content


def test_unknown_language_falls_back_to_indonesian_and_en_variants_are_english() -> None:
    question = QUESTIONS[Topic.CAREERS]["en"]
    assert compose_answer(V2, question, "fr") == compose_answer(V2, question, "id")
    assert compose_answer(V2, question, "en-US") == compose_answer(V2, question, "en")


@pytest.mark.parametrize(("version", "limit"), [("v1", 250), ("v2", 250)])
def test_answers_stay_short(version: str, limit: int) -> None:
    for language, question in ALL_QUESTIONS:
        answer = compose_answer(PROFILES[version], question, language)
        assert len(answer.split()) <= limit, (question, len(answer.split()))


# --- missing and partial profiles --------------------------------------------------------


@pytest.mark.parametrize(("language", "question"), ALL_QUESTIONS)
def test_without_a_profile_gives_general_guidance_and_suggests_the_assessment(
    language: str, question: str
) -> None:
    reply = _complete(_request(question, None, language))
    _assert_clean(reply.content)
    _assert_language(reply.content, language)
    hint = "Ikuti asesmen kepribadian" if language == "id" else "Take the personality assessment"
    assert hint in reply.content
    assert len(reply.content.split()) >= 30  # real guidance, not a placeholder
    assert compose_answer(AssessmentProfile(), question, language) == reply.content


@pytest.mark.parametrize(("language", "question"), ALL_QUESTIONS)
@pytest.mark.parametrize("profile", [SCORES_ONLY, PERSONA_ONLY], ids=["scores", "persona"])
def test_partial_profiles_give_useful_clean_answers(
    profile: AssessmentProfile, language: str, question: str
) -> None:
    answer = compose_answer(profile, question, language)
    _assert_clean(answer)
    _assert_language(answer, language)
    assert len(answer.split()) >= 20
    assert "asesmen kepribadian (RIASEC" not in answer  # a real profile is never "missing"


def test_scores_only_profile_answers_from_the_scores() -> None:
    careers = compose_answer(SCORES_ONLY, "Karier apa yang cocok?", "id")
    assert "**IAS** (Investigatif–Artistik–Sosial)" in careers
    assert "data scientist" in careers
    strengths = compose_answer(SCORES_ONLY, "What are my strengths?", "en")
    assert "**Curiosity** (91)" in strengths
    weaknesses = compose_answer(SCORES_ONLY, "What are my weaknesses?", "en")
    assert "**Extraversion: low** (35)" in weaknesses
    assert "spirituality (40)" in weaknesses


def test_persona_only_profile_answers_from_the_persona() -> None:
    careers = compose_answer(PERSONA_ONLY, "Karier apa yang cocok?", "id")
    assert "Data Scientist" in careers
    assert "Kode Holland" not in careers
    assert "kode Holland" not in careers
    strengths = compose_answer(PERSONA_ONLY, "What are my strengths?", "en")
    assert "Analytical reasoning" in strengths


def test_unknown_via_keys_are_made_readable() -> None:
    profile = parse_profile({"viaIs": {"growthMindset": 99, "grit_score": 98, "zest": 97}}, None)
    answer = compose_answer(profile, "What are my strengths?", "en")
    assert "**Growth mindset** (99)" in answer
    assert "**Grit score** (98)" in answer
    assert "**Zest** (97): you bring energy" in answer
    _assert_clean(answer)


def test_odd_persona_values_are_handled() -> None:
    persona = {
        "archetype": "  The\n  Builder ",
        "careerRecommendation": [
            {"careerName": "Engineer", "careerProspect": {"jobAvailability": "Super_High"}},
            {"careerName": "Teacher", "careerProspect": {"aiOvertake": "unclear-ish"}},
            {"careerName": ""},
        ],
        "riskTolerance": "VERY LOW",
        "workEnvironment": "word " * 200,
    }
    profile = parse_profile({}, persona)
    careers = compose_answer(profile, "Karier?", "id")
    assert "**Engineer** (peluang kerja sangat tinggi)" in careers
    assert "**Teacher** (risiko tergantikan AI unclear-ish)" in careers
    assert "sebagai **The Builder**" in careers
    environment = compose_answer(profile, "Lingkungan kerja?", "id")
    assert "**Toleransi risiko: sangat rendah**" in environment
    assert "…" in environment  # the long text was clipped
    assert len(environment.split()) < 120
    _assert_clean(careers)
    _assert_clean(environment)


# --- the model: reply, usage, determinism, stream ----------------------------------------


async def test_reply_model_finish_reason_and_usage() -> None:
    model: ChatModel = OfflineChatModel()
    history = (
        ChatMessage(role="system", content="Kamu adalah konselor karier."),
        ChatMessage(role="user", content="Halo"),
        ChatMessage(role="assistant", content="Halo! Ada yang bisa kubantu?"),
    )
    request = _request("Karier apa yang cocok untuk saya?", V2, "id", history)
    reply = await model.complete(request)
    assert reply.model == "offline"
    assert reply.finish_reason == "stop"
    assert reply.usage.prompt_tokens == sum(
        estimate_message_tokens(m.content) for m in request.messages
    )
    assert reply.usage.completion_tokens == estimate_tokens(reply.content)
    assert reply.usage.cost == 0.0
    assert reply.usage.is_free_model is True


async def test_same_request_same_answer() -> None:
    request = _request("What careers suit me?", V1, "en")
    first = await OfflineChatModel().complete(request)
    second = await OfflineChatModel(delay_per_chunk=0.0).complete(request)
    assert first == second
    assert compose_answer(V1, "What careers suit me?", "en") == first.content


@pytest.mark.parametrize("profile", [V2, None], ids=["v2", "none"])
@pytest.mark.parametrize("language", ["id", "en"])
async def test_stream_joins_to_the_complete_answer(
    profile: AssessmentProfile | None, language: str
) -> None:
    model = OfflineChatModel()
    request = _request(QUESTIONS[Topic.CAREERS][language], profile, language)
    events = [event async for event in model.stream(request)]
    *deltas, end = events
    assert isinstance(end, StreamEnd)
    assert all(isinstance(d, StreamDelta) for d in deltas)
    texts = [d.text for d in deltas if isinstance(d, StreamDelta)]
    assert len(texts) > 10
    assert all(len(t.split()) == 1 for t in texts)  # word-sized pieces
    full = await model.complete(request)
    assert "".join(texts) == full.content
    assert end.reply == full


async def test_stream_with_a_delay_per_chunk() -> None:
    model = OfflineChatModel(delay_per_chunk=0.0005)
    events = [e async for e in model.stream(_request("Apa kelemahan saya?", V1, "id"))]
    assert isinstance(events[-1], StreamEnd)
    joined = "".join(e.text for e in events if isinstance(e, StreamDelta))
    assert joined == events[-1].reply.content


@pytest.mark.parametrize("delay", [-1.0, float("nan")])
def test_a_negative_delay_is_refused(delay: float) -> None:
    with pytest.raises(ValueError, match="delay_per_chunk"):
        OfflineChatModel(delay_per_chunk=delay)


# --- properties ---------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    question=st.text(),
    version=st.sampled_from(["v1", "v2"]),
    language=st.sampled_from(["id", "en"]),
)
def test_any_question_gets_a_clean_answer(question: str, version: str, language: str) -> None:
    reply = _complete(_request(question, PROFILES[version], language))
    assert reply.content.strip()
    assert "None" not in reply.content
    assert EMPTY_BULLET.search(reply.content) is None
    assert reply.model == "offline"


_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30))
_json = st.recursive(
    _json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
_PERSONA_KEYS = (
    "archetype",
    "shortSummary",
    "strengths",
    "weaknesses",
    "careerRecommendation",
    "skillSuggestion",
    "possiblePitfalls",
    "riskTolerance",
    "workEnvironment",
    "roleModel",
    "coreMotivators",
    "learningStyle",
    "strengthSummary",
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    persona=st.dictionaries(st.sampled_from(_PERSONA_KEYS), _json, max_size=8),
    scores=st.dictionaries(
        st.sampled_from(["riasec", "ocean", "viaIs"]),
        st.dictionaries(
            st.sampled_from(["investigative", "openness", "curiosity", "extraversion", "x"]),
            st.one_of(st.integers(-50, 150), st.floats(allow_nan=True), st.text(max_size=3)),
        ),
    ),
    question=st.sampled_from([q for _, q in ALL_QUESTIONS]),
    language=st.sampled_from(["id", "en"]),
)
def test_odd_profiles_never_break_the_answer(
    persona: dict[str, Any], scores: dict[str, Any], question: str, language: str
) -> None:
    answer = compose_answer(parse_profile(scores, persona), question, language)
    assert answer.strip()
    assert EMPTY_BULLET.search(answer) is None
