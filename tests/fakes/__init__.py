"""Fakes of external services, speaking their real protocols over real sockets.

``tests.fakes.openrouter`` holds :class:`~tests.fakes.openrouter.FakeOpenRouter`, an
HTTP/1.1 server on 127.0.0.1 that answers like OpenRouter's chat-completions API;
import it and its behaviours from there (``from tests.fakes.openrouter import ...``).
This package module imports nothing on purpose, so that
``python -m tests.fakes.openrouter`` runs the module once, cleanly.
"""
