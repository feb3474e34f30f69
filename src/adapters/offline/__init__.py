"""The offline advisor model: deterministic answers grounded in the assessment profile."""

from adapters.offline.advisor import OFFLINE_MODEL_NAME, OfflineChatModel, split_words
from adapters.offline.compose import compose_answer
from adapters.offline.topics import Topic, detect_topics

__all__ = [
    "OFFLINE_MODEL_NAME",
    "OfflineChatModel",
    "Topic",
    "compose_answer",
    "detect_topics",
    "split_words",
]
