"""``chatcore demo`` runs the whole journey on PostgreSQL and prints it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.postgres


def test_demo_prints_the_journey(pg_url: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": pg_url,
        "CHATCORE_DATA_DIR": str(tmp_path),
        "JWT_SECRET": "demo-secret-0123456789-abcdefghijkl",
    }
    for name in ("OPENROUTER_API_KEY", "RABBITMQ_URL", "REDIS_URL", "ARCHIVE_SERVICE_URL"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for expected in (
        "[ 50%]",
        "[ 75%]",
        "[100%]",
        "chatbot_ready",
        "The Analytical Innovator",
        "IAS (Investigatif–Artistik–Sosial)",
        "Seperti apa keseharian kerja seorang Data Scientist?",
        "(model offline,",
    ):
        assert expected in out, f"{expected!r} missing from:\n{out}"
    # The answer streamed after the question and is grounded in the profile.
    answer = out.split("5. The student asks:", 1)[1]
    assert "Data Scientist" in answer
