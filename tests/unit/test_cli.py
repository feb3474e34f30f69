"""The ``chatcore`` command, run as a user would (``python -m entrypoints.cli``)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from entrypoints.auth import Authenticator, AuthError

SECRET = "cli-test-secret-0123456789abcdef"
ISSUER, AUDIENCE = "atma-auth-service", "atma-services"


def chatcore(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if k in {"PATH", "HOME", "LANG", "LC_ALL", "SYSTEMROOT", "PYTHONPATH"}
    }
    return subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "entrypoints.cli", *args],
        env={**base, "CHATCORE_DATA_DIR": str(tmp_path / "data"), **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_token_prints_a_token_the_authenticator_accepts(tmp_path: Path) -> None:
    user_id = uuid.uuid4()
    done = chatcore(tmp_path, "token", "--user-id", str(user_id), JWT_SECRET=SECRET)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert token.count(".") == 2
    assert "\n" not in token
    principal = Authenticator(secret=SECRET, issuer=ISSUER, audience=AUDIENCE).verify(token)
    assert principal.user_id == user_id
    assert principal.is_admin is False
    with pytest.raises(AuthError):
        Authenticator(secret=SECRET + "x", issuer=ISSUER, audience=AUDIENCE).verify(token)


def test_an_admin_token(tmp_path: Path) -> None:
    user_id = uuid.uuid4()
    done = chatcore(
        tmp_path, "token", "--user-id", str(user_id), "--admin", "--ttl", "60", JWT_SECRET=SECRET
    )
    assert done.returncode == 0, done.stderr
    principal = Authenticator(secret=SECRET, issuer=ISSUER, audience=AUDIENCE).verify(
        done.stdout.strip()
    )
    assert principal.is_admin is True


def test_without_jwt_secret_the_token_uses_the_development_secret(tmp_path: Path) -> None:
    user_id = uuid.uuid4()
    done = chatcore(tmp_path, "token", "--user-id", str(user_id))
    assert done.returncode == 0, done.stderr
    secret = (tmp_path / "data" / "jwt_secret").read_text().strip()
    principal = Authenticator(secret=secret, issuer=ISSUER, audience=AUDIENCE).verify(
        done.stdout.strip()
    )
    assert principal.user_id == user_id


@pytest.mark.parametrize(
    "args",
    [["--user-id", "nope"], ["--user-id", "0b7f6a52-51f4-4d4e-9a51-1d6f6f0c2a11", "--ttl", "0"]],
)
def test_bad_token_arguments_exit_2(tmp_path: Path, args: list[str]) -> None:
    done = chatcore(tmp_path, "token", *args, JWT_SECRET=SECRET)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip()


def test_serve_with_a_bad_port_exits_2_with_one_line_naming_it(tmp_path: Path) -> None:
    done = chatcore(tmp_path, "serve", PORT="abc")
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "PORT" in lines[0]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists()  # nothing was started


def test_serve_starts_when_the_database_cannot_be_reached_yet(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A database down at start-up must not keep the service down once it is back: the
    # schema is then not checked, a warning says so, and start-up goes on.
    from entrypoints.cli import _check_schema  # noqa: PLC0415
    from entrypoints.settings import load_settings  # noqa: PLC0415

    settings = load_settings(
        {"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nothing", "JWT_SECRET": "x" * 32}
    )
    _check_schema(settings)  # returns: no SystemExit
