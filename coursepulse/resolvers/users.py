"""Users, their passwords and API tokens, and turning credentials into a viewer."""

import asyncio
import hashlib
import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from coursepulse.models import ApiToken, Role, User
from coursepulse.resolvers.access import require_admin
from coursepulse.resolvers.errors import InvalidCredentials, InvalidInput, NotFound
from coursepulse.resolvers.validation import clean_text
from coursepulse.resolvers.viewer import Viewer

_hasher = PasswordHasher()
# Verified against when the username is unknown, so both failures cost the same time.
_DUMMY_HASH = _hasher.hash("not a real password")
_USERNAME_RE = re.compile(r"[A-Za-z0-9_.@-]{3,60}")
PASSWORD_MIN, PASSWORD_MAX = 8, 256
TOKEN_PREFIX = "cp_"  # noqa: S105  (a visible prefix, not a secret)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def token_digest(token: str) -> str:
    """The stored form of an API token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def viewer_of(user: User) -> Viewer:
    return Viewer(user_id=user.id, username=user.username, role=Role(user.role))  # type: ignore[arg-type]


async def authenticate_password(session: AsyncSession, username: str, password: str) -> Viewer:
    """The viewer for a username and password, or `invalid_credentials` (same for both faults)."""
    user = None
    if _USERNAME_RE.fullmatch(username):
        user = await session.scalar(select(User).where(User.username == username))
    stored = user.password_hash if user is not None else _DUMMY_HASH
    # Hashing is slow by design: keep it off the event loop.
    matches = await asyncio.to_thread(_verify, stored, password)
    if user is None or not matches:
        raise InvalidCredentials()
    return viewer_of(user)


async def authenticate_token(session: AsyncSession, token: str) -> Viewer:
    """The viewer owning an API token, or `invalid_credentials`."""
    user = await session.scalar(
        select(User)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_digest == token_digest(token))
    )
    if user is None:
        raise InvalidCredentials("Invalid API token")
    return viewer_of(user)


async def create_user(
    session: AsyncSession,
    *,
    username: str,
    password: str,
    display_name: str | None = None,
    email: str | None = None,
    role: Role = Role.STUDENT,
    avatar: str | None = None,
) -> User:
    """A new user with a hashed password; `invalid_input` for a taken or malformed username."""
    username = username.strip()
    if not _USERNAME_RE.fullmatch(username):
        raise InvalidInput("username must be 3-60 letters, digits or _ . @ -", field="username")
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise InvalidInput(
            f"password must be {PASSWORD_MIN} to {PASSWORD_MAX} characters", field="password"
        )
    name = clean_text(display_name or username, field="displayName", max_length=120)
    if email is not None:
        email = clean_text(email, field="email", max_length=254, required=False) or None
        if email is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+", email):
            raise InvalidInput("email is not an e-mail address", field="email")
    if await session.scalar(select(User.id).where(User.username == username)) is not None:
        raise InvalidInput("username is already taken", field="username")
    user = User(
        username=username,
        password_hash=await asyncio.to_thread(hash_password, password),
        display_name=name,
        email=email,
        role=role,
        avatar=avatar,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as error:
        raise InvalidInput("username is already taken", field="username") from error
    return user


async def create_user_as(
    session: AsyncSession,
    viewer: Viewer | None,
    **fields: object,
) -> User:
    """createUser for admins."""
    require_admin(viewer)
    return await create_user(session, **fields)  # type: ignore[arg-type]


async def create_token(session: AsyncSession, username: str, name: str = "cli") -> str:
    """A new API token for the user; the secret is returned once and only its digest kept."""
    user = await session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"User {username!r} not found")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            user_id=user.id,  # type: ignore[arg-type]
            name=clean_text(name, field="name", max_length=100),
            token_digest=token_digest(token),
        )
    )
    await session.flush()
    return token
