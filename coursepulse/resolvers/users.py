"""Users, their passwords and API tokens, and turning credentials into a viewer.

A sign-in gives a `Credential`: the viewer and what it was verified against (the
password hash, or the API token), so that a later change (a new password, a
revoked token, another role) can be told from it without the secret.
"""

import asyncio
import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from coursepulse.models import ApiToken, Role, User, utcnow
from coursepulse.models.access import AccessChange, AccessNotice, note_access_change
from coursepulse.resolvers.access import require_admin
from coursepulse.resolvers.errors import InvalidCredentials, InvalidInput, NotFound
from coursepulse.resolvers.validation import clean_text
from coursepulse.resolvers.viewer import Viewer, require_viewer

_hasher = PasswordHasher()
# Verified against when the username is unknown, so both failures cost the same time.
_DUMMY_HASH = _hasher.hash("not a real password")
_USERNAME_RE = re.compile(r"[A-Za-z0-9_.@-]{3,60}")
PASSWORD_MIN, PASSWORD_MAX = 8, 256
TOKEN_PREFIX = "cp_"  # noqa: S105  (a visible prefix, not a secret)
#: `api_tokens.last_used_at` is written at most this often per token.
TOKEN_USE_PRECISION = timedelta(minutes=1)
#: Credentials checked again per query (ids in one IN list).
RECHECK_BATCH = 500


@dataclass(frozen=True, slots=True)
class Credential:
    """A verified sign-in: who, and what it was verified against.

    `stamp` is a digest of the password hash a password was checked against (a
    new password makes a new hash); a token sign-in has its `token_id` instead.
    """

    viewer: Viewer
    token_id: int | None = None
    stamp: str = ""
    #: The token's `last_used_at` as read at sign-in (tokens only).
    last_used_at: datetime | None = None

    @property
    def token_use_due(self) -> bool:
        """True when the token's last use should be written down (at most once a minute)."""
        if self.token_id is None:
            return False
        return self.last_used_at is None or utcnow() - self.last_used_at >= TOKEN_USE_PRECISION


def _password_stamp(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:32]


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


async def sign_in_password(session: AsyncSession, username: str, password: str) -> Credential:
    """The credential of a username and password; `invalid_credentials` (same for both faults)."""
    user = None
    if _USERNAME_RE.fullmatch(username):
        user = await session.scalar(select(User).where(User.username == username))
    stored = user.password_hash if user is not None else _DUMMY_HASH
    # Hashing is slow by design: keep it off the event loop.
    matches = await asyncio.to_thread(_verify, stored, password)
    if user is None or not matches:
        raise InvalidCredentials()
    return Credential(viewer_of(user), stamp=_password_stamp(user.password_hash))


async def sign_in_token(session: AsyncSession, token: str) -> Credential:
    """The credential of an API token that is not revoked, or `invalid_credentials`."""
    found = (
        await session.execute(
            select(User, ApiToken.id, ApiToken.last_used_at)
            .join(ApiToken, ApiToken.user_id == User.id)
            .where(ApiToken.token_digest == token_digest(token), ApiToken.revoked_at.is_(None))  # type: ignore[union-attr]
        )
    ).first()
    if found is None:
        raise InvalidCredentials("Invalid API token")
    user, token_id, last_used_at = found
    return Credential(viewer_of(user), token_id=token_id, last_used_at=last_used_at)


async def authenticate_password(session: AsyncSession, username: str, password: str) -> Viewer:
    """The viewer for a username and password, or `invalid_credentials`."""
    return (await sign_in_password(session, username, password)).viewer


async def authenticate_token(session: AsyncSession, token: str) -> Viewer:
    """The viewer owning an API token, or `invalid_credentials`."""
    return (await sign_in_token(session, token)).viewer


async def record_token_use(session: AsyncSession, token_id: int) -> None:
    """Write down that the token was used now, unless that was done within the minute."""
    now = utcnow()
    await session.execute(
        update(ApiToken)
        .where(
            ApiToken.id == token_id,  # type: ignore[arg-type]
            or_(
                ApiToken.last_used_at.is_(None),  # type: ignore[union-attr]
                ApiToken.last_used_at <= now - TOKEN_USE_PRECISION,  # type: ignore[operator]
            ),
        )
        .values(last_used_at=now)
    )


async def credentials_holding(
    session: AsyncSession, credentials: Sequence[Credential]
) -> list[bool]:
    """For each credential, whether it still signs in as the same viewer.

    A password credential stops holding when the password (its hash) changes, a
    token one when the token is revoked; both when the user is gone or has another
    role (the viewer carries the role). Two queries per `RECHECK_BATCH` credentials.
    """
    user_ids = {credential.viewer.user_id for credential in credentials}
    token_ids = {c.token_id for c in credentials if c.token_id is not None}
    users: dict[int, tuple[str, str]] = {}
    live_tokens: set[int] = set()
    ordered_users = sorted(user_ids)
    for start in range(0, len(ordered_users), RECHECK_BATCH):
        chunk = ordered_users[start : start + RECHECK_BATCH]
        rows = await session.execute(
            select(User.id, User.role, User.password_hash).where(User.id.in_(chunk))  # type: ignore[union-attr]
        )
        users.update({row.id: (row.role, row.password_hash) for row in rows})
    ordered_tokens = sorted(token_ids)
    for start in range(0, len(ordered_tokens), RECHECK_BATCH):
        chunk = ordered_tokens[start : start + RECHECK_BATCH]
        live_tokens.update(
            await session.scalars(
                select(ApiToken.id).where(
                    ApiToken.id.in_(chunk),  # type: ignore[union-attr]
                    ApiToken.revoked_at.is_(None),  # type: ignore[union-attr]
                )
            )
        )
    answers = []
    for credential in credentials:
        user = users.get(credential.viewer.user_id)
        if user is None or Role(user[0]) != credential.viewer.role:
            answers.append(False)
        elif credential.token_id is not None:
            answers.append(credential.token_id in live_tokens)
        else:
            answers.append(_password_stamp(user[1]) == credential.stamp)
    return answers


def _check_password(password: str, *, field: str = "password") -> None:
    """`invalid_input` unless the password is of an allowed length."""
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise InvalidInput(
            f"password must be {PASSWORD_MIN} to {PASSWORD_MAX} characters", field=field
        )


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
    _check_password(password)
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


async def _user_named(session: AsyncSession, username: str) -> User:
    user = await session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"User {username!r} not found")
    return user


async def _new_token(session: AsyncSession, user_id: int, name: str) -> tuple[str, ApiToken]:
    """A new token row for the user and its secret (shown once; only the digest is kept)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user_id,
        name=clean_text(name, field="name", max_length=100),
        token_digest=token_digest(token),
    )
    session.add(row)
    await session.flush()
    return token, row


async def create_token(session: AsyncSession, username: str, name: str = "cli") -> str:
    """A new API token for the user (the command line); the secret is returned once."""
    user = await _user_named(session, username)
    token, _row = await _new_token(session, user.id, name)  # type: ignore[arg-type]
    return token


async def create_api_token(
    session: AsyncSession, viewer: Viewer | None, name: str
) -> tuple[str, ApiToken]:
    """createApiToken: a token of the viewer's own, and its secret (shown this once)."""
    viewer = require_viewer(viewer)
    return await _new_token(session, viewer.user_id, name)


async def tokens_of(session: AsyncSession, user_id: int) -> list[ApiToken]:
    """The user's API tokens, revoked ones included, oldest first."""
    return list(
        await session.scalars(
            select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id)  # type: ignore[arg-type]
        )
    )


async def my_api_tokens(session: AsyncSession, viewer: Viewer | None) -> list[ApiToken]:
    """myApiTokens: the viewer's tokens, revoked ones included."""
    return await tokens_of(session, require_viewer(viewer).user_id)


async def tokens_of_username(session: AsyncSession, username: str) -> list[ApiToken]:
    """`coursepulse token list USERNAME`: the user's tokens, or `not_found`."""
    return await tokens_of(session, (await _user_named(session, username)).id)  # type: ignore[arg-type]


async def revoke_token(session: AsyncSession, token_id: int) -> ApiToken:
    """Revoke a token (the operator's command line; no viewer): it stops working at once.

    Revoking a revoked token changes nothing and keeps its first `revoked_at`.
    """
    row = await session.scalar(
        select(ApiToken)
        .where(ApiToken.id == token_id)  # type: ignore[arg-type]
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if row is None:
        raise NotFound(f"API token {token_id} not found")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await session.flush()
        note_access_change(session, AccessNotice(AccessChange.TOKEN, row.user_id, token_id))
    return row


async def revoke_api_token(session: AsyncSession, viewer: Viewer | None, token_id: int) -> ApiToken:
    """revokeApiToken: the viewer's own token, or anyone's for admins (`not_found` else)."""
    viewer = require_viewer(viewer)
    owner = await session.scalar(select(ApiToken.user_id).where(ApiToken.id == token_id))  # type: ignore[arg-type]
    if owner is None or (owner != viewer.user_id and not viewer.is_admin):
        # Another user's token is as unknown as a missing one: ids reveal nothing.
        raise NotFound(f"API token {token_id} not found")
    return await revoke_token(session, token_id)


async def change_password(
    session: AsyncSession, viewer: Viewer | None, current_password: str, new_password: str
) -> User:
    """changePassword: `invalid_credentials` unless `current_password` is right.

    Every sign-in made with the old password ends (cached ones, open websockets);
    the user's API tokens keep working.
    """
    viewer = require_viewer(viewer)
    _check_password(new_password, field="newPassword")
    user = await session.scalar(
        select(User)
        .where(User.id == viewer.user_id)  # type: ignore[arg-type]
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if user is None:
        raise InvalidCredentials()
    if not await asyncio.to_thread(_verify, user.password_hash, current_password):
        raise InvalidCredentials("The current password is wrong")
    user.password_hash = await asyncio.to_thread(hash_password, new_password)
    await session.flush()
    note_access_change(session, AccessNotice(AccessChange.USER, viewer.user_id))
    return user


async def set_role(session: AsyncSession, username: str, role: Role) -> User:
    """Give a user another role (the operator's command line): their sign-ins are checked again.

    An open websocket of theirs closes, and a cached sign-in is forgotten: the
    next request carries the new role.
    """
    user = await session.scalar(
        select(User)
        .where(User.username == username)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if user is None:
        raise NotFound(f"User {username!r} not found")
    if Role(user.role) != role:
        user.role = role
        await session.flush()
        note_access_change(session, AccessNotice(AccessChange.USER, user.id))  # type: ignore[arg-type]
    return user
