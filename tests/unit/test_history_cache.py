"""The in-memory side of the kept newest messages (adapters.postgres.history): what an
entry holds, how the shared cache bounds it, and what a unit of work publishes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from prometheus_client import generate_latest

from adapters.postgres.history import Entry, HistoryCache, PendingHistory
from chatcore.domain import Conversation, Message, MessageStatus, SenderType, new_id
from entrypoints.metrics import Metrics

T0 = datetime(2026, 3, 1, tzinfo=UTC)
CONVERSATION, USER = uuid.uuid4(), uuid.uuid4()


def message(seconds: int, content: str = "hi") -> Message:
    at = T0 + timedelta(seconds=seconds)
    return Message(
        id=new_id(at),
        conversation_id=CONVERSATION,
        user_id=USER,
        sender_type=SenderType.USER,
        content=content,
        created_at=at,
    )


def conversation() -> Conversation:
    return Conversation(
        id=CONVERSATION,
        user_id=USER,
        title="t",
        metadata={"language": "en"},
        context_data={"result_id": "r"},
        created_at=T0,
        updated_at=T0,
    )


def entry(version: int, *messages: Message, window: int = 3) -> Entry:
    return Entry(version, window, conversation(), messages, 0.0)


def test_new_messages_go_first_and_the_window_keeps_the_newest() -> None:
    old = [message(2), message(1)]
    moved = entry(4, *old).with_new(5, [message(3), message(4)])
    assert moved is not None
    assert moved.version == 5
    assert [m.created_at.second for m in moved.messages] == [4, 3, 2]


def test_a_message_older_than_the_newest_kept_one_cannot_be_placed() -> None:
    # Another process's clock ahead of ours: only a read can tell where it goes.
    assert entry(4, message(5)).with_new(5, [message(3)]) is None


def test_what_is_kept_is_a_copy_of_what_was_written() -> None:
    written = message(3, "first")
    moved = entry(1).with_new(2, [written])
    assert moved is not None
    written.content, written.status = "changed later", MessageStatus.FAILED
    written.metadata["x"] = 1
    (kept,) = moved.messages
    assert (kept.content, kept.status, kept.metadata) == ("first", MessageStatus.COMPLETE, {})
    saved = moved.with_saved(3, written)
    assert saved.messages[0].content == "changed later"
    assert saved.messages[0] is not written


def test_a_saved_message_outside_the_window_changes_nothing_kept() -> None:
    kept = entry(1, message(2), message(1))
    assert kept.with_saved(2, message(0)).messages == kept.messages


def test_the_cache_drops_the_least_recently_used_and_the_too_old() -> None:
    now = [0.0]
    cache = HistoryCache(capacity=2, max_age=60, clock=lambda: now[0])
    a, b, c = ((USER, uuid.uuid4()) for _ in range(3))
    cache.put(a, entry(1))
    cache.put(b, entry(1))
    assert cache.get(a) is not None  # a is now the most recently used
    cache.put(c, entry(1))
    assert (cache.get(a) is not None, cache.get(b), cache.get(c) is not None) == (True, None, True)
    now[0] = 61
    assert cache.get(a) is None
    assert len(cache) == 1


def test_the_cache_keeps_the_later_of_two_versions() -> None:
    cache = HistoryCache(clock=lambda: 0.0)  # entries read at 0.0 stay fresh
    key = (USER, CONVERSATION)
    cache.put(key, entry(7, message(7)))
    cache.put(key, entry(6, message(6)))  # a unit of work that committed earlier
    kept = cache.get(key)
    assert kept is not None
    assert kept.version == 7


def test_a_unit_of_work_publishes_on_commit_only() -> None:
    cache = HistoryCache(clock=lambda: 0.0)  # entries read at 0.0 stay fresh
    pending = PendingHistory(cache, USER)
    pending.read(CONVERSATION, 3, 3, conversation(), [message(1)])
    pending.wrote(CONVERSATION, 4, lambda e, v: e.with_new(v, [message(2)]))
    assert cache.get((USER, CONVERSATION)) is None
    pending.discard()
    assert cache.get((USER, CONVERSATION)) is None

    pending.read(CONVERSATION, 3, 3, conversation(), [message(1)])
    pending.wrote(CONVERSATION, 4, lambda e, v: e.with_new(v, [message(2)]))
    pending.commit()
    kept = cache.get((USER, CONVERSATION))
    assert kept is not None
    assert (kept.version, len(kept.messages)) == (4, 2)


def test_a_write_that_skips_a_version_drops_the_kept_copy() -> None:
    # Version 6 after 4: someone else wrote 5, which this copy does not have.
    cache = HistoryCache(clock=lambda: 0.0)  # entries read at 0.0 stay fresh
    cache.put((USER, CONVERSATION), entry(4, message(1)))
    pending = PendingHistory(cache, USER)
    pending.wrote(CONVERSATION, 6, lambda e, v: e.with_new(v, [message(2)]))
    assert pending.known(CONVERSATION, 3) is None
    pending.commit()
    assert cache.get((USER, CONVERSATION)) is None


def test_the_copies_of_one_user_are_not_another_users() -> None:
    cache = HistoryCache(clock=lambda: 0.0)  # entries read at 0.0 stay fresh
    cache.put((USER, CONVERSATION), entry(1, message(1)))
    assert PendingHistory(cache, uuid.uuid4()).known(CONVERSATION, 3) is None
    assert PendingHistory(cache, USER).known(CONVERSATION, 3) is not None


def test_metrics_export_the_cache_figures() -> None:
    metrics = Metrics()
    assert b'chatcore_history_cache_reads_total{result="hit"} 0.0' in generate_latest(
        metrics.registry
    )
    metrics.watch_history_cache(lambda: (5, 2, 1, 3))
    text = generate_latest(metrics.registry).decode()
    assert 'chatcore_history_cache_reads_total{result="hit"} 5.0' in text
    assert 'chatcore_history_cache_reads_total{result="miss"} 2.0' in text
    assert 'chatcore_history_cache_reads_total{result="stale"} 1.0' in text
    assert "chatcore_history_cache_conversations 3.0" in text


def test_new_messages_move_the_conversations_updated_at_up_never_back() -> None:
    later = T0 + timedelta(minutes=5)
    moved = entry(1).with_new(2, [message(3)], touched_at=later)
    assert moved is not None
    assert moved.conversation.updated_at == later
    back = moved.with_new(3, [message(4)], touched_at=T0)
    assert back is not None
    assert back.conversation.updated_at == later
    # An answer does not touch the conversation: updated_at stays.
    answered = moved.with_new(3, [message(5)])
    assert answered is not None
    assert answered.conversation.updated_at == later


def test_a_saved_conversation_is_kept_as_a_copy() -> None:
    saved = conversation()
    saved.rename("renamed", T0 + timedelta(seconds=9))
    kept = entry(1, message(1)).with_conversation(2, saved)
    saved.metadata["language"] = "id"  # the writer goes on changing its own
    assert (kept.version, kept.conversation.title) == (2, "renamed")
    assert kept.conversation.metadata == {"language": "en"}
    assert kept.conversation is not saved
    assert len(kept.messages) == 1


def test_a_read_answered_from_memory_relies_on_the_kept_version() -> None:
    cache = HistoryCache(clock=lambda: 0.0)  # entries read at 0.0 stay fresh
    cache.put((USER, CONVERSATION), entry(4, message(1)))
    pending = PendingHistory(cache, USER)
    assert pending.relied_on(CONVERSATION) is None
    assert pending.remembered(CONVERSATION, 3) is not None
    assert pending.relied_on(CONVERSATION) == 4
    assert pending.unchecked == {CONVERSATION: 4}
    assert cache.hits == 1
    pending.checked(CONVERSATION)
    assert pending.unchecked == {}
    # A window wider than the kept one is not answered, and relies on nothing.
    other = PendingHistory(cache, USER)
    assert other.remembered(CONVERSATION, 4) is None
    assert other.unchecked == {}


def test_what_the_unit_read_itself_needs_no_check() -> None:
    cache = HistoryCache(clock=lambda: 0.0)  # entries read at 0.0 stay fresh
    pending = PendingHistory(cache, USER)
    pending.read(CONVERSATION, 3, 3, conversation(), [message(1)])
    assert pending.remembered(CONVERSATION, 3) is not None
    assert pending.unchecked == {}


def test_a_stale_read_drops_the_kept_copy_at_once() -> None:
    cache = HistoryCache(clock=lambda: 0.0)  # entries read at 0.0 stay fresh
    cache.put((USER, CONVERSATION), entry(4, message(1)))
    pending = PendingHistory(cache, USER)
    assert pending.remembered(CONVERSATION, 3) is not None
    pending.stale(CONVERSATION)
    assert cache.get((USER, CONVERSATION)) is None  # without waiting for a commit
    assert (pending.unchecked, cache.stale) == ({}, 1)


def test_commit_and_discard_end_what_the_unit_relied_on() -> None:
    cache = HistoryCache(clock=lambda: 0.0)  # entries read at 0.0 stay fresh
    cache.put((USER, CONVERSATION), entry(4, message(1)))
    for end in ("commit", "discard"):
        pending = PendingHistory(cache, USER)
        assert pending.remembered(CONVERSATION, 3) is not None
        getattr(pending, end)()
        assert pending.unchecked == {}
