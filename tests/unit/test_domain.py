"""The aggregate's rules, ids, cursors and the lenient profile parser."""

from __future__ import annotations

import dataclasses
import itertools
import os
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatcore.domain import (
    ContextType,
    Conversation,
    ConversationStatus,
    Message,
    MessageStatus,
    SenderType,
    new_id,
    parse_profile,
    profile_from_context,
)
from chatcore.domain.copying import shallow_copier
from chatcore.errors import InvalidStateError, ValidationError
from chatcore.pagination import decode_cursor, encode_cursor

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ALLOWED = {
    (ConversationStatus.ACTIVE, ConversationStatus.ARCHIVED),
    (ConversationStatus.ARCHIVED, ConversationStatus.ACTIVE),
    (ConversationStatus.ACTIVE, ConversationStatus.DELETED),
    (ConversationStatus.ARCHIVED, ConversationStatus.DELETED),
}


def _conversation() -> Conversation:
    return Conversation(id=uuid4(), user_id=uuid4(), title="t", created_at=T0, updated_at=T0)


@given(st.lists(st.sampled_from(list(ConversationStatus)), max_size=12))
def test_status_transitions_follow_the_table(path: list[ConversationStatus]) -> None:
    conversation = _conversation()
    for i, target in enumerate(path):
        before = conversation.status
        now = T0 + timedelta(seconds=i + 1)
        if target is before:
            conversation.change_status(target, now)
            assert conversation.status is before
        elif (before, target) in ALLOWED:
            conversation.change_status(target, now)
            assert conversation.status is target
            assert conversation.updated_at == now
        else:
            with pytest.raises(InvalidStateError):
                conversation.change_status(target, now)
            assert conversation.status is before
    # Deleted is terminal.
    if conversation.status is ConversationStatus.DELETED:
        with pytest.raises(InvalidStateError):
            conversation.change_status(ConversationStatus.ACTIVE, T0)


@pytest.mark.parametrize("title", ["", "   ", "x" * 256])
def test_bad_titles_are_refused(title: str) -> None:
    with pytest.raises(ValidationError):
        _conversation().rename(title, T0)


def test_titles_are_trimmed() -> None:
    conversation = _conversation()
    conversation.rename("  Rencana   karier  ", T0)
    assert conversation.title == "Rencana karier"


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    st.uuids(),
)
def test_cursor_round_trip(at: datetime, item_id: UUID) -> None:
    cursor = decode_cursor(encode_cursor(at, item_id))
    assert cursor.at == at
    assert cursor.id == item_id


@pytest.mark.parametrize(
    "text", ["", "abc", "!!!!", "A" * 64, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]
)
def test_malformed_cursors_are_validation_errors(text: str) -> None:
    with pytest.raises(ValidationError):
        decode_cursor(text)


@given(
    st.lists(
        st.datetimes(
            min_value=datetime(2001, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
        ),
        min_size=2,
        max_size=20,
    )
)
def test_ids_are_uuid7_and_sort_by_millisecond(times: list[datetime]) -> None:
    ids = [new_id(t) for t in times]
    assert all(i.version == 7 for i in ids)
    pairs = list(zip(times, ids, strict=True))
    for (t1, i1), (t2, i2) in itertools.pairwise(pairs):
        if int(t1.timestamp() * 1000) < int(t2.timestamp() * 1000):
            assert i1 < i2


def test_ids_of_the_same_millisecond_differ_across_random_batches() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    ids = [new_id(now) for _ in range(2000)]  # several batches of random bytes
    assert len(set(ids)) == len(ids)
    assert {i.int >> 80 for i in ids} == {int(now.timestamp() * 1000)}


@pytest.mark.skipif(
    not hasattr(os, "fork"), reason="os.fork does not exist here (Windows): no process forks"
)
def test_a_forked_process_does_not_repeat_its_parents_ids() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    new_id(now)  # the parent has random bytes left over
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.close(read)
        os.write(write, b"".join(new_id(now).bytes for _ in range(8)))
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        child = pipe.read()
    os.waitpid(pid, 0)
    parent = b"".join(new_id(now).bytes for _ in range(8))
    assert len(child) == len(parent) == 128
    assert child != parent


def test_profile_v1_and_v2(archive_v1: dict[str, Any], archive_v2: dict[str, Any]) -> None:
    p1 = parse_profile(archive_v1["assessment_data"], archive_v1["persona_profile"])
    p2 = parse_profile(archive_v2["assessment_data"], archive_v2["persona_profile"])
    for p in (p1, p2):
        assert p.holland_code == "IAS"
        assert p.top_strengths(3) == ("curiosity", "loveOfLearning", "creativity")
        assert p.archetype == "The Analytical Innovator"
        assert [c.name for c in p.careers] == [
            "Data Scientist",
            "Software Engineer",
            "UX Researcher",
        ]
    assert p1.persona_version == 1
    assert p2.persona_version == 2
    assert [r.name for r in p1.role_models] == ["Marie Curie", "B.J. Habibie"]
    assert p2.role_models[1].title == "Engineer and former President of Indonesia"
    assert p2.majors[:2] == ("Statistika", "Ilmu Komputer")
    assert p2.careers[0].prospect["aiOvertake"] == "low"
    assert p2.core_motivators[0] == "Understanding how things work"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=30,
)


@given(json_values, json_values)
def test_any_json_parses_without_raising(scores: Any, persona: Any) -> None:
    profile = parse_profile(scores, persona)
    assert all(0 <= v <= 100 for v in profile.riasec.values())
    assert len(profile.holland_code) <= 3


def test_wrong_types_are_treated_as_absent(archive_v2: dict[str, Any]) -> None:
    persona = dict(archive_v2["persona_profile"])
    persona["strengths"] = "not a list"
    persona["careerRecommendation"] = [{"careerName": ""}, 42, {"name": "Teacher"}, "Nurse"]
    persona["roleModel"] = [None, {"title": "no name"}]
    scores = {
        "riasec": {
            "investigative": "high",
            "social": 120,
            "artistic": True,
            "realistic": float("nan"),
        }
    }
    profile = parse_profile(scores, persona)
    assert profile.strengths == ()
    assert [c.name for c in profile.careers] == ["Teacher", "Nurse"]
    assert profile.role_models == ()
    assert profile.riasec == {"social": 100}


def test_profile_from_context_accepts_both_key_styles(archive_v1: dict[str, Any]) -> None:
    ours = profile_from_context(
        {
            "assessment_data": archive_v1["assessment_data"],
            "persona_profile": archive_v1["persona_profile"],
        }
    )
    theirs = profile_from_context({"profilePersona": archive_v1["persona_profile"]})
    assert ours is not None
    assert ours.holland_code == "IAS"
    assert theirs is not None
    assert theirs.archetype == "The Analytical Innovator"
    assert profile_from_context({}) is None
    assert profile_from_context({"profilePersona": "garbage"}) is None


def _every_field_set() -> tuple[Message, Conversation]:
    """A message and a conversation with no field at its default."""
    message = Message(
        id=uuid4(),
        conversation_id=uuid4(),
        user_id=uuid4(),
        sender_type=SenderType.ASSISTANT,
        content="answer",
        parent_message_id=uuid4(),
        status=MessageStatus.CANCELLED,
        metadata={"model": "offline", "nested": {"a": 1}},
        created_at=T0,
    )
    conversation = Conversation(
        id=uuid4(),
        user_id=uuid4(),
        title="Karier",
        context_type=ContextType.ASSESSMENT,
        context_data={"result_id": "r1"},
        metadata={"pinned": True},
        status=ConversationStatus.ARCHIVED,
        created_at=T0,
        updated_at=T0 + timedelta(hours=1),
        result_id="r1",
    )
    for record in (message, conversation):
        # A field added later with a default, and left at it here, would not show
        # whether a copy carries it.
        at_default = [
            f.name
            for f in dataclasses.fields(record)
            if (f.default is not dataclasses.MISSING and getattr(record, f.name) == f.default)
            or (
                f.default_factory is not dataclasses.MISSING
                and getattr(record, f.name) == f.default_factory()
            )
        ]
        assert at_default == [], f"set these fields of {type(record).__name__}: {at_default}"
    return message, conversation


def test_a_copy_has_every_field_and_changes_apart() -> None:
    message, conversation = _every_field_set()
    for record in (message, conversation):
        duplicate = record.copy()
        assert duplicate is not record
        assert type(duplicate) is type(record)
        for f in dataclasses.fields(record):
            assert getattr(duplicate, f.name) == getattr(record, f.name), f.name
    copied = message.copy()
    copied.content, copied.status = "changed", MessageStatus.FAILED
    copied.metadata["model"] = "other"  # its own dict
    assert (message.content, message.status) == ("answer", MessageStatus.CANCELLED)
    assert message.metadata["model"] == "offline"
    renamed = conversation.copy()
    renamed.rename("Baru", T0 + timedelta(days=1))
    assert conversation.title == "Karier"
    assert conversation.updated_at == T0 + timedelta(hours=1)


def test_the_copier_refuses_what_it_cannot_copy_faithfully() -> None:
    @dataclasses.dataclass
    class NoSlots:
        a: int

    @dataclasses.dataclass(slots=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            if self.a < 0:
                raise ValueError("a")

    for cls in (NoSlots, Checked, int):
        with pytest.raises(TypeError):
            shallow_copier(cls)

    @dataclasses.dataclass(slots=True, frozen=True)
    class Frozen:
        a: int
        b: list[int]

    original = Frozen(1, [2])
    duplicate = shallow_copier(Frozen)(original)
    assert duplicate == original
    assert duplicate is not original
    assert duplicate.b is original.b  # shallow
