"""Certificates as Open Badges 3.0 credentials (1EdTech OB 3.0 on the W3C Verifiable
Credentials 2.0 data model), secured as VC-JWTs (W3C VC-JOSE-COSE, `application/vc+jwt`),
with a Bitstring Status List for revocation.

Every certificate is an `OpenBadgeCredential`: the issuer is this school, the achievement
its course, the subject the student. It is signed (ES256) with the service's newest
signing key; every key is published at /.well-known/jwks.json, so what an older key signed
still verifies after a rotation. Revoking a certificate sets its bit (the certificate's id)
in the status list this service publishes, which any verifier reads.
"""

import base64
import gzip
import json
import secrets
from datetime import datetime
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy import bindparam, insert, select, update

from coursepulse.models import Certificate, SigningKey, utcnow
from coursepulse.models.rows import CertificateRow, SigningKeyRow
from coursepulse.models.sql import Query
from coursepulse.models.transactions import Transaction

ALGORITHM = "ES256"
#: The media type of a credential secured as a JWT.
MEDIA_TYPE = "application/vc+jwt"
CONTEXTS = [
    "https://www.w3.org/ns/credentials/v2",
    "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
]
#: Bits of the status list at least (16 KiB, as the specification asks, so that one
#: certificate's bit says nothing about who else holds one).
STATUS_LIST_BITS = 131_072
STATUS_LIST_PATH = "/credentials/status/1"
JWKS_PATH = "/.well-known/jwks.json"

_KEYS = SigningKey.__table__
_CERTIFICATES = Certificate.__table__
_SIGNER = Query(
    select(_KEYS).where(_KEYS.c.retired_at.is_(None)).order_by(_KEYS.c.id.desc()).limit(1)
)
_ALL_KEYS = Query(select(_KEYS).order_by(_KEYS.c.id))
_ADD_KEY = Query(
    insert(_KEYS)
    .values(kid=bindparam("kid"), private_jwk=bindparam("jwk"), created_at=bindparam("at"))
    .returning(_KEYS)
)
_RETIRE_KEYS = Query(
    update(_KEYS).where(_KEYS.c.retired_at.is_(None)).values(retired_at=bindparam("at"))
)
_REVOKED_IDS = Query(
    select(_CERTIFICATES.c.id).where(_CERTIFICATES.c.revoked_at.is_not(None)), unbounded=True
)
_LAST_CERTIFICATE_ID = Query(
    select(_CERTIFICATES.c.id).order_by(_CERTIFICATES.c.id.desc()).limit(1)
)


def badge_url(base_url: str, certificate: CertificateRow) -> str:
    """Where the certificate's credential is served: its unguessable token, as the PDF."""
    return f"{base_url.rstrip('/')}/certificates/{certificate.token}/badge"


async def _new_key(tx: Transaction) -> SigningKeyRow:
    kid = secrets.token_urlsafe(12)
    key = ECKey.generate_key("P-256", parameters={"kid": kid})
    row: SigningKeyRow = await tx.first(
        _ADD_KEY, kid=kid, jwk=json.dumps(key.as_dict(private=True)), at=utcnow()
    )
    return row


async def has_signing_key(tx: Transaction) -> bool:
    """Whether a key signs already (else the first signature makes one, in a write)."""
    return await tx.first(_SIGNER) is not None


async def signing_key(tx: Transaction) -> SigningKeyRow:
    """The key that signs now, made on first use (`tx` must be a write transaction then)."""
    row = await tx.first(_SIGNER)
    return row if row is not None else await _new_key(tx)


async def rotate_key(tx: Transaction) -> SigningKeyRow:
    """Retire the signing keys and make a new one (the retired ones stay published)."""
    await tx.execute(_RETIRE_KEYS, at=utcnow())
    return await _new_key(tx)


async def published_keys(tx: Transaction) -> dict[str, Any]:
    """The JWKS of every signing key: their public halves."""
    keys = []
    for row in await tx.all(_ALL_KEYS):
        public = ECKey.import_key(json.loads(row.private_jwk)).as_dict(private=False)
        keys.append({**public, "kid": row.kid, "use": "sig", "alg": ALGORITHM})
    return {"keys": keys}


def _sign(row: SigningKeyRow, credential: dict[str, Any]) -> str:
    """The credential secured as W3C VC-JOSE-COSE says for `application/vc+jwt`: the JWT's
    payload is the credential itself (no `vc` claim), with `iss` and `jti` mirroring its
    issuer and id, and `iat`."""
    key = ECKey.import_key(json.loads(row.private_jwk))
    header = {"alg": ALGORITHM, "typ": "vc+jwt", "cty": "vc", "kid": row.kid}
    claims = {
        **credential,
        "iss": credential["issuer"]["id"],
        "jti": credential["id"],
        "iat": _seconds(utcnow()),
    }
    return jwt.encode(header, claims, key, algorithms=[ALGORITHM])


def _seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def _issuer(base_url: str, issuer_name: str) -> dict[str, Any]:
    base = base_url.rstrip("/")
    return {"id": f"{base}/", "type": ["Profile"], "name": issuer_name, "url": f"{base}/"}


def open_badge(certificate: CertificateRow, base_url: str, issuer_name: str) -> dict[str, Any]:
    """The certificate as an OpenBadgeCredential (the credential, unsigned)."""
    base = base_url.rstrip("/")
    return {
        "@context": CONTEXTS,
        "id": badge_url(base_url, certificate),
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "issuer": _issuer(base_url, issuer_name),
        "validFrom": certificate.issued_at.isoformat(),
        "name": f"{certificate.course_title}: certificate of completion",
        "credentialSubject": {
            "type": ["AchievementSubject"],
            "identifier": [
                {
                    "type": "IdentityObject",
                    "identityType": "name",
                    "hashed": False,
                    "identityHash": certificate.student_name,
                }
            ],
            "achievement": {
                "id": f"{base}/courses/{certificate.course_id}/achievement",
                "type": ["Achievement"],
                "achievementType": "Certificate",
                "name": certificate.course_title,
                "description": f"Completed every lesson of {certificate.course_title}.",
                "criteria": {"narrative": "Complete every lesson of the course."},
            },
        },
        "credentialStatus": {
            "id": f"{base}{STATUS_LIST_PATH}#{certificate.id}",
            "type": "BitstringStatusListEntry",
            "statusPurpose": "revocation",
            "statusListIndex": str(certificate.id),
            "statusListCredential": f"{base}{STATUS_LIST_PATH}",
        },
    }


async def open_badge_jwt(
    tx: Transaction, certificate: CertificateRow, base_url: str, issuer_name: str
) -> str:
    """The certificate's credential as a VC-JWT (`_sign`)."""
    return _sign(await signing_key(tx), open_badge(certificate, base_url, issuer_name))


def encode_bits(indexes: list[int], size: int) -> str:
    """A Bitstring Status List's `encodedList`: the GZIP-compressed bitstring (index 0 is the
    first byte's leftmost bit), base64url without padding, multibase prefix `u`."""
    bits = bytearray(size // 8)
    for index in indexes:
        bits[index // 8] |= 0x80 >> (index % 8)
    packed = base64.urlsafe_b64encode(gzip.compress(bytes(bits), mtime=0)).rstrip(b"=")
    return "u" + packed.decode()


async def status_list_jwt(tx: Transaction, base_url: str, issuer_name: str) -> str:
    """The revocation status list of every certificate, as a signed credential."""
    revoked = [int(row) for row in await tx.scalars(_REVOKED_IDS)]
    last = await tx.scalar(_LAST_CERTIFICATE_ID) or 0
    size = max(STATUS_LIST_BITS, (int(last) // STATUS_LIST_BITS + 1) * STATUS_LIST_BITS)
    base = base_url.rstrip("/")
    now = utcnow()
    credential = {
        "@context": [CONTEXTS[0]],
        "id": f"{base}{STATUS_LIST_PATH}",
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": _issuer(base_url, issuer_name),
        "validFrom": now.isoformat(),
        "credentialSubject": {
            "id": f"{base}{STATUS_LIST_PATH}#list",
            "type": "BitstringStatusList",
            "statusPurpose": "revocation",
            "encodedList": encode_bits(revoked, size),
        },
    }
    return _sign(await signing_key(tx), credential)
