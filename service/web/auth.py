"""Who may do what: viewing is open, curating and publishing need a user (a login checked against argon2 hashes
in settings.web.users, or the name a trusted reverse proxy puts in settings.web.trusted_user_header).

Every form carries the session's CSRF token; `check_csrf` rejects a POST whose token does not match (403).
"""

from __future__ import annotations

import secrets
from typing import Annotated

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, Form, HTTPException, Request

from skyqa.service.config import WebConfig

CSRF_KEY = "csrf"
USER_KEY = "user"
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(config: WebConfig, user: str, password: str) -> bool:
    """False for an unknown user or a wrong password; the unknown-user case still pays for one hash."""
    stored = config.users.get(user)
    try:
        return _hasher.verify(stored or _DUMMY, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


_DUMMY = hash_password(secrets.token_urlsafe(16))


def current_user(request: Request) -> str | None:
    config: WebConfig = request.app.state.web_config
    if config.trusted_user_header and (name := request.headers.get(config.trusted_user_header)):
        return name
    return request.session.get(USER_KEY)


def csrf_token(request: Request) -> str:
    """The session's token, made on first use (every page that renders a form asks for it)."""
    token = request.session.get(CSRF_KEY)
    if token is None:
        token = request.session[CSRF_KEY] = secrets.token_urlsafe(32)
    return token


def check_csrf(request: Request, csrf: Annotated[str, Form()] = "") -> None:
    expected = request.session.get(CSRF_KEY)
    if not expected or not secrets.compare_digest(expected, csrf):
        raise HTTPException(status_code=403, detail="missing or wrong CSRF token: reload the page and try again")


def require_user(request: Request, _: Annotated[None, Depends(check_csrf)]) -> str:
    """A curation or publishing POST: a valid CSRF token and a logged-in user."""
    user = current_user(request)
    if user is None:
        raise HTTPException(status_code=401, detail="log in to curate or publish")
    return user


def log_in(request: Request, user: str) -> None:
    request.session.clear()  # a new session on login: no fixation
    request.session[USER_KEY] = user
    csrf_token(request)


def log_out(request: Request) -> None:
    request.session.clear()
