"""Users, their passwords and API tokens, and turning credentials into a viewer.

A sign-in gives a `Credential`: the viewer and what it was verified against (the
password hash, or the API token), so that a later change (a new password, a
revoked token, another role) can be told from it without the secret.

Password hashing (argon2) is slow by design and runs in a thread. It never runs
between two statements of a write transaction when that can be helped: a new
password is hashed before the first statement (`prepare_user`), and a password
sign-in or change reads the stored hash first (`user_to_sign_in`,
`password_holder`) so that the caller can end that transaction before verifying
it (`verify_sign_in`, `prepare_password_change`).
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
from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from coursepulse.models import ApiToken, Role, User, utcnow
from coursepulse.models.access import AccessChange, AccessNotice, note_access_change
from coursepulse.models.rows import ApiTokenRow, UserRow
from coursepulse.models.sql import Query, in_ids
from coursepulse.models.transactions import Transaction
from coursepulse.resolvers.access import require_admin
from coursepulse.resolvers.errors import InvalidCredentials, InvalidInput, NotFound
from coursepulse.resolvers.validation import clean_text
from coursepulse.resolvers.viewer import Viewer, require_viewer
from coursepulse.resolvers.webhooks import switch_off_webhooks_of

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

_USERS = User.__table__
_TOKENS = ApiToken.__table__

_USER_NAMED = Query(select(_USERS).where(_USERS.c.username == bindparam("username")))
_USERNAME_TAKEN = Query(select(_USERS.c.id).where(_USERS.c.username == bindparam("username")))
_USER_BY_ID = Query(select(_USERS).where(_USERS.c.id == bindparam("user_id")))
_ADD_USER = Query(
    insert(_USERS)
    .values(
        username=bindparam("new_username"),
        password_hash=bindparam("new_password_hash"),
        display_name=bindparam("new_display_name"),
        email=bindparam("new_email"),
        role=bindparam("new_role"),
        avatar=bindparam("new_avatar"),
        created_at=bindparam("at"),
    )
    .returning(_USERS)
)
#: Only over the hash that was verified: a change made meanwhile wins, this one is refused.
_SET_PASSWORD = Query(
    update(_USERS)
    .where(_USERS.c.id == bindparam("user_id"), _USERS.c.password_hash == bindparam("old_hash"))
    .values(password_hash=bindparam("new_password_hash"))
    .returning(_USERS)
)
#: Gives the user another role, and the row, unless they have that role already.
_SET_ROLE = Query(
    update(_USERS)
    .where(_USERS.c.username == bindparam("username"), _USERS.c.role != bindparam("new_role"))
    .values(role=bindparam("new_role"))
    .returning(_USERS)
)
_USERS_TO_RECHECK = Query(
    select(_USERS.c.id, _USERS.c.role, _USERS.c.password_hash).where(
        in_ids(_USERS.c.id, "user_ids")
    )
)

_TOKEN_SIGN_IN = Query(
    select(
        _USERS.c.id,
        _USERS.c.username,
        _USERS.c.role,
        _TOKENS.c.id.label("token_id"),
        _TOKENS.c.last_used_at,
    )
    .join_from(_USERS, _TOKENS, _TOKENS.c.user_id == _USERS.c.id)
    .where(_TOKENS.c.token_digest == bindparam("digest"), _TOKENS.c.revoked_at.is_(None))
)
_RECORD_TOKEN_USE = Query(
    update(_TOKENS)
    .where(
        _TOKENS.c.id == bindparam("token_id"),
        or_(_TOKENS.c.last_used_at.is_(None), _TOKENS.c.last_used_at <= bindparam("due_from")),
    )
    .values(last_used_at=bindparam("now"))
)
_ADD_TOKEN = Query(
    insert(_TOKENS)
    .values(
        user_id=bindparam("user_id"),
        name=bindparam("new_name"),
        token_digest=bindparam("digest"),
        created_at=bindparam("at"),
    )
    .returning(_TOKENS)
)
_TOKEN = Query(select(_TOKENS).where(_TOKENS.c.id == bindparam("token_id")))
_TOKEN_OWNER = Query(select(_TOKENS.c.user_id).where(_TOKENS.c.id == bindparam("token_id")))
#: Revokes a token that is not revoked yet, and gives its row (none for a revoked one).
_REVOKE_TOKEN = Query(
    update(_TOKENS)
    .where(_TOKENS.c.id == bindparam("token_id"), _TOKENS.c.revoked_at.is_(None))
    .values(revoked_at=bindparam("at"))
    .returning(_TOKENS)
)
_TOKENS_OF = Query(
    select(_TOKENS).where(_TOKENS.c.user_id == bindparam("user_id")).order_by(_TOKENS.c.id)
)
_LIVE_TOKENS = Query(
    select(_TOKENS.c.id).where(in_ids(_TOKENS.c.id, "token_ids"), _TOKENS.c.revoked_at.is_(None))
)


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


@dataclass(frozen=True, slots=True)
class NewUser:
    """A user ready to be stored (`add_user`): fields checked, the password already hashed."""

    username: str
    password_hash: str
    display_name: str
    email: str | None
    role: Role
    avatar: str | None


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


def viewer_of(user: UserRow) -> Viewer:
    """The viewer a user row signs in as (any row with `id`, `username` and `role`)."""
    return Viewer(user_id=user.id, username=user.username, role=Role(user.role))


async def user_to_sign_in(tx: Transaction, username: str) -> UserRow | None:
    """The user a password sign-in as `username` is checked against; None when unknown
    (or malformed, which is not looked up). End the transaction, then `verify_sign_in`."""
    if not _USERNAME_RE.fullmatch(username):
        return None
    return await tx.first(_USER_NAMED, username=username)


async def verify_sign_in(user: UserRow | None, password: str) -> Credential:
    """The credential of a password checked against the user's stored hash (from
    `user_to_sign_in`); `invalid_credentials`, the same for an unknown user (None)
    and a wrong password, which cost one hash each."""
    stored = user.password_hash if user is not None else _DUMMY_HASH
    # Hashing is slow by design: keep it off the event loop.
    matches = await asyncio.to_thread(_verify, stored, password)
    if user is None or not matches:
        raise InvalidCredentials()
    return Credential(viewer_of(user), stamp=_password_stamp(user.password_hash))


async def sign_in_token(tx: Transaction, token: str) -> Credential:
    """The credential of an API token that is not revoked, or `invalid_credentials`."""
    found = await tx.first(_TOKEN_SIGN_IN, digest=token_digest(token))
    if found is None:
        raise InvalidCredentials("Invalid API token")
    return Credential(viewer_of(found), token_id=found.token_id, last_used_at=found.last_used_at)


async def record_token_use(tx: Transaction, token_id: int) -> None:
    """Write down that the token was used now, unless that was done within the minute."""
    now = utcnow()
    await tx.execute(
        _RECORD_TOKEN_USE, token_id=token_id, due_from=now - TOKEN_USE_PRECISION, now=now
    )


async def credentials_holding(tx: Transaction, credentials: Sequence[Credential]) -> list[bool]:
    """For each credential, whether it still signs in as the same viewer.

    A password credential stops holding when the password (its hash) changes, a
    token one when the token is revoked; both when the user is gone or has another
    role (the viewer carries the role). Two queries per `RECHECK_BATCH` credentials.
    """
    ordered_users = sorted({credential.viewer.user_id for credential in credentials})
    ordered_tokens = sorted({c.token_id for c in credentials if c.token_id is not None})
    users: dict[int, tuple[str, str]] = {}
    live_tokens: set[int] = set()
    for start in range(0, len(ordered_users), RECHECK_BATCH):
        chunk = ordered_users[start : start + RECHECK_BATCH]
        rows = await tx.all(_USERS_TO_RECHECK, user_ids=chunk)
        users.update({row.id: (row.role, row.password_hash) for row in rows})
    for start in range(0, len(ordered_tokens), RECHECK_BATCH):
        chunk = ordered_tokens[start : start + RECHECK_BATCH]
        live_tokens.update(row.id for row in await tx.all(_LIVE_TOKENS, token_ids=chunk))
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


async def prepare_user(
    *,
    username: str,
    password: str,
    display_name: str | None = None,
    email: str | None = None,
    role: Role = Role.STUDENT,
    avatar: str | None = None,
) -> NewUser:
    """A user to store with `add_user`: fields checked (`invalid_input`), password hashed.

    It needs no database: prepare before a write transaction's first statement, so
    the hashing holds no connection and no lock.
    """
    username = username.strip()
    if not _USERNAME_RE.fullmatch(username):
        raise InvalidInput("username must be 3-60 letters, digits or _ . @ -", field="username")
    _check_password(password)
    name = clean_text(display_name or username, field="displayName", max_length=120)
    if email is not None:
        email = clean_text(email, field="email", max_length=254, required=False) or None
        if email is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+", email):
            raise InvalidInput("email is not an e-mail address", field="email")
    return NewUser(
        username=username,
        password_hash=await asyncio.to_thread(hash_password, password),
        display_name=name,
        email=email,
        role=role,
        avatar=avatar,
    )


async def add_user(tx: Transaction, user: NewUser) -> UserRow:
    """Store a prepared user; `invalid_input` when the username is taken."""
    if await tx.first(_USERNAME_TAKEN, username=user.username) is not None:
        raise InvalidInput("username is already taken", field="username")
    try:
        row: UserRow = await tx.first(
            _ADD_USER,
            new_username=user.username,
            new_password_hash=user.password_hash,
            new_display_name=user.display_name,
            new_email=user.email,
            new_role=user.role.value,
            new_avatar=user.avatar,
            at=utcnow(),
        )
    except IntegrityError as error:
        # Taken meanwhile; on PostgreSQL the transaction is aborted: nothing more runs in it.
        raise InvalidInput("username is already taken", field="username") from error
    return row


async def create_user(
    tx: Transaction,
    *,
    username: str,
    password: str,
    display_name: str | None = None,
    email: str | None = None,
    role: Role = Role.STUDENT,
    avatar: str | None = None,
) -> UserRow:
    """A new user with a hashed password; `invalid_input` for a taken or malformed username.

    The password is hashed before this function's first statement: first in a write
    transaction, it holds nothing while hashing (several users in one transaction:
    `prepare_user` each first, then `add_user`).
    """
    new = await prepare_user(
        username=username,
        password=password,
        display_name=display_name,
        email=email,
        role=role,
        avatar=avatar,
    )
    return await add_user(tx, new)


async def create_user_as(tx: Transaction, viewer: Viewer | None, **fields: object) -> UserRow:
    """createUser for admins (see `create_user`)."""
    require_admin(viewer)
    return await create_user(tx, **fields)  # type: ignore[arg-type]


async def _user_named(tx: Transaction, username: str) -> UserRow:
    user = await tx.first(_USER_NAMED, username=username)
    if user is None:
        raise NotFound(f"User {username!r} not found")
    return user


async def _new_token(tx: Transaction, user_id: int, name: str) -> tuple[str, ApiTokenRow]:
    """A new token row for the user and its secret (shown once; only the digest is kept)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = await tx.first(
        _ADD_TOKEN,
        user_id=user_id,
        new_name=clean_text(name, field="name", max_length=100),
        digest=token_digest(token),
        at=utcnow(),
    )
    return token, row


async def create_token(tx: Transaction, username: str, name: str = "cli") -> str:
    """A new API token for the user (the command line); the secret is returned once."""
    user = await _user_named(tx, username)
    token, _row = await _new_token(tx, user.id, name)
    return token


async def create_api_token(
    tx: Transaction, viewer: Viewer | None, name: str
) -> tuple[str, ApiTokenRow]:
    """createApiToken: a token of the viewer's own, and its secret (shown this once)."""
    viewer = require_viewer(viewer)
    return await _new_token(tx, viewer.user_id, name)


async def tokens_of(tx: Transaction, user_id: int) -> list[ApiTokenRow]:
    """The user's API tokens, revoked ones included, oldest first."""
    return await tx.all(_TOKENS_OF, user_id=user_id)


async def my_api_tokens(tx: Transaction, viewer: Viewer | None) -> list[ApiTokenRow]:
    """myApiTokens: the viewer's tokens, revoked ones included."""
    return await tokens_of(tx, require_viewer(viewer).user_id)


async def tokens_of_username(tx: Transaction, username: str) -> list[ApiTokenRow]:
    """`coursepulse token list USERNAME`: the user's tokens, or `not_found`."""
    return await tokens_of(tx, (await _user_named(tx, username)).id)


async def revoke_token(tx: Transaction, token_id: int) -> ApiTokenRow:
    """Revoke a token (the operator's command line; no viewer): it stops working at once.

    Revoking a revoked token changes nothing and keeps its first `revoked_at`.
    """
    row = await tx.first(_REVOKE_TOKEN, token_id=token_id, at=utcnow())
    if row is not None:
        note_access_change(tx, AccessNotice(AccessChange.TOKEN, row.user_id, token_id))
        return row
    row = await tx.first(_TOKEN, token_id=token_id)
    if row is None:
        raise NotFound(f"API token {token_id} not found")
    return row


async def revoke_api_token(tx: Transaction, viewer: Viewer | None, token_id: int) -> ApiTokenRow:
    """revokeApiToken: the viewer's own token, or anyone's for admins (`not_found` else)."""
    viewer = require_viewer(viewer)
    owner = await tx.scalar(_TOKEN_OWNER, token_id=token_id)
    if owner is None or (owner != viewer.user_id and not viewer.is_admin):
        # Another user's token is as unknown as a missing one: ids reveal nothing.
        raise NotFound(f"API token {token_id} not found")
    return await revoke_token(tx, token_id)


@dataclass(frozen=True, slots=True)
class PasswordChange:
    """A verified changePassword, ready to store."""

    user_id: int
    #: The hash the current password was verified against.
    old_hash: str
    new_hash: str


async def password_holder(tx: Transaction, viewer: Viewer | None) -> UserRow:
    """changePassword, first step (a read): the viewer's row with the stored hash."""
    viewer = require_viewer(viewer)
    user = await tx.first(_USER_BY_ID, user_id=viewer.user_id)
    if user is None:
        raise InvalidCredentials()
    return user


async def prepare_password_change(
    user: UserRow, current_password: str, new_password: str
) -> PasswordChange:
    """changePassword, second step (no transaction): `invalid_credentials` unless
    `current_password` is right; the new password checked and hashed."""
    _check_password(new_password, field="newPassword")
    if not await asyncio.to_thread(_verify, user.password_hash, current_password):
        raise InvalidCredentials("The current password is wrong")
    new_hash = await asyncio.to_thread(hash_password, new_password)
    return PasswordChange(user.id, user.password_hash, new_hash)


async def change_password(
    tx: Transaction, viewer: Viewer | None, change: PasswordChange
) -> UserRow:
    """changePassword, last step (a write): the new hash stored, unless the password changed
    since it was verified (then `invalid_credentials`, as the current password is no more).

    Every sign-in made with the old password ends (cached ones, open websockets);
    the user's API tokens keep working.
    """
    viewer = require_viewer(viewer)
    if change.user_id != viewer.user_id:
        raise InvalidCredentials()
    changed: UserRow | None = await tx.first(
        _SET_PASSWORD,
        user_id=change.user_id,
        old_hash=change.old_hash,
        new_password_hash=change.new_hash,
    )
    if changed is None:
        raise InvalidCredentials("The current password is wrong")
    note_access_change(tx, AccessNotice(AccessChange.USER, change.user_id))
    return changed


async def set_role(tx: Transaction, username: str, role: Role) -> UserRow:
    """Give a user another role (the operator's command line): their sign-ins are checked again.

    An open websocket of theirs closes, and a cached sign-in is forgotten: the
    next request carries the new role.
    """
    user = await tx.first(_SET_ROLE, username=username, new_role=role.value)
    if user is not None:
        note_access_change(tx, AccessNotice(AccessChange.USER, user.id))
        await switch_off_webhooks_of(tx, user.id)
        return user
    return await _user_named(tx, username)
