"""Certificates as Open Badges 3.0 credentials: VC-JWTs that an independent JOSE library
(PyJWT) verifies against the published JWKS, with a revocation status list."""

import base64
import gzip
from typing import Any

import jwt
from aiohttp.test_utils import TestClient
from sqlalchemy import text

from coursepulse.demo import LOGINS, load_demo
from coursepulse.models.db import Database
from coursepulse.resolvers import badges, completions, enrollments
from tests.conftest import School, graphql

CERTIFICATE = "query($c: ID!) { certificate(courseId: $c) { certificateId openBadgeUrl } }"
VERIFY = """query($n: String!) { verifyCertificate(certificateId: $n) {
  valid certificate { openBadgeUrl } } }"""
REVOKE = """mutation($n: String!) {
  revokeCertificate(certificateId: $n, reason: "issued in error") {
  revokedAt } }"""
OB_CONTEXT = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"


async def finished_certificate(client: TestClient, db: Database, school: School) -> dict[str, Any]:
    async with db.write() as tx:
        await enrollments.enroll(tx, school.student.viewer, school.course_id)
        for lesson_id in school.lesson_ids:
            await completions.complete_lesson(
                tx, school.student.viewer, school.course_id, lesson_id
            )
    body = await graphql(client, CERTIFICATE, {"c": str(school.course_id)}, as_=school.student)
    assert "errors" not in body, body
    return body["data"]["certificate"]


async def verified(client: TestClient, token: str) -> dict[str, Any]:
    """The JWT's claims, verified by PyJWT with the key the service publishes for its kid."""
    response = await client.get(badges.JWKS_PATH)
    assert response.status == 200
    keys = {key["kid"]: key for key in (await response.json())["keys"]}
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWK(keys[kid])
    return jwt.decode(token, key=key.key, algorithms=["ES256"], options={"verify_aud": False})


def path_of(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


async def status_bit(client: TestClient, entry: dict[str, Any]) -> int:
    """The credential's bit in the status list it points to (after verifying the list)."""
    response = await client.get(path_of(entry["statusListCredential"]))
    assert response.status == 200
    claims = await verified(client, await response.text())
    assert claims["type"] == ["VerifiableCredential", "BitstringStatusListCredential"]
    subject = claims["credentialSubject"]
    assert subject["statusPurpose"] == "revocation"
    encoded = subject["encodedList"]
    assert encoded.startswith("u")
    packed = encoded[1:] + "=" * (-len(encoded[1:]) % 4)
    bits = gzip.decompress(base64.urlsafe_b64decode(packed))
    assert len(bits) * 8 >= badges.STATUS_LIST_BITS
    index = int(entry["statusListIndex"])
    return (bits[index // 8] >> (7 - index % 8)) & 1


async def test_a_certificate_is_an_open_badge_that_verifies_and_can_be_revoked(
    client: TestClient, db: Database, school: School
) -> None:
    certificate = await finished_certificate(client, db, school)
    # The credential verifies against the published keys, with an independent library
    response = await client.get(path_of(certificate["openBadgeUrl"]))
    assert response.status == 200
    assert response.content_type == "application/vc+jwt"
    token = await response.text()
    header = jwt.get_unverified_header(token)
    assert (header["typ"], header["cty"], header["alg"]) == ("vc+jwt", "vc", "ES256")
    # VC-JOSE-COSE: the payload is the credential itself, no `vc` claim
    credential = await verified(client, token)
    assert "vc" not in credential
    claims = credential
    assert credential["@context"][0] == "https://www.w3.org/ns/credentials/v2"
    assert OB_CONTEXT in credential["@context"]
    assert credential["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert claims["iss"] == credential["issuer"]["id"]
    assert credential["issuer"]["type"] == ["Profile"]
    subject = credential["credentialSubject"]
    assert subject["type"] == ["AchievementSubject"]
    assert subject["identifier"][0]["identityHash"] == "John Doe"
    assert subject["achievement"]["type"] == ["Achievement"]
    assert subject["achievement"]["name"] == "Introduction to Web Development"
    assert "narrative" in subject["achievement"]["criteria"]
    entry = credential["credentialStatus"]
    assert entry["type"] == "BitstringStatusListEntry"
    # Valid: its status bit is clear; revoked: set
    assert await status_bit(client, entry) == 0
    body = await graphql(client, REVOKE, {"n": certificate["certificateId"]}, as_=school.admin)
    assert "errors" not in body, body
    assert await status_bit(client, entry) == 1


async def test_only_its_owner_and_staff_learn_the_badge_address(
    client: TestClient, db: Database, school: School
) -> None:
    certificate = await finished_certificate(client, db, school)
    number = certificate["certificateId"]
    for account, seen in (
        (school.student, certificate["openBadgeUrl"]),
        (school.instructor, certificate["openBadgeUrl"]),
        (school.other_student, None),
        (None, None),
    ):
        body = await graphql(client, VERIFY, {"n": number}, as_=account)
        assert body["data"]["verifyCertificate"]["certificate"]["openBadgeUrl"] == seen
    # The public page links the credential's public form, which says what the page says,
    # and the keys; never the holder's address (its token also opens the PDF)
    page = await (await client.get(f"/verify/{number}")).text()
    assert "Open Badges 3.0 credential" in page
    assert badges.JWKS_PATH in page
    assert f'href="/verify/{number}/badge"' in page
    assert 'type="application/vc+jwt"' in page
    token = path_of(certificate["openBadgeUrl"]).split("/")[2]
    assert token not in page
    public = await client.get(f"/verify/{number}/badge")
    assert public.content_type == "application/vc+jwt"
    held = await (await client.get(path_of(certificate["openBadgeUrl"]))).text()
    assert (await verified(client, await public.text()))["id"] == (await verified(client, held))[
        "id"
    ]
    assert (await client.get("/verify/CERT-1999-999/badge")).status == 404
    response = await client.get("/certificates/not-a-token/badge")
    assert response.status == 404


async def test_a_rotated_key_still_verifies_what_it_signed(
    client: TestClient, db: Database, school: School
) -> None:
    certificate = await finished_certificate(client, db, school)
    badge = path_of(certificate["openBadgeUrl"])
    before = await (await client.get(badge)).text()
    async with db.write() as tx:
        await badges.rotate_key(tx)
    after = await (await client.get(badge)).text()
    assert jwt.get_unverified_header(before)["kid"] != jwt.get_unverified_header(after)["kid"]
    first, second = await verified(client, before), await verified(client, after)
    assert first["credentialSubject"] == second["credentialSubject"]
    keys = (await (await client.get(badges.JWKS_PATH)).json())["keys"]
    assert len(keys) == 2
    assert all("d" not in key for key in keys), "private key material published"


def test_operators_rotate_the_key_from_the_command_line(tmp_path: Any) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "COURSEPULSE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/keys.db"}
    subprocess.run([sys.executable, "-m", "coursepulse", "migrate"], env=env, check=True)
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "coursepulse", "signing-key", "rotate"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert "new signing key" in done.stdout


async def test_a_finished_demo_student_holds_a_credential_that_verifies_until_revoked(
    client: TestClient, db: Database
) -> None:
    await load_demo(db)
    logins = {login.username: login for login in LOGINS}
    jane, admin = logins["jane_roe"], logins["admin"]
    async with db.read() as tx:
        courses_ = await tx.all(text("SELECT id FROM courses ORDER BY id"))
    web_course = str(courses_[0][0])

    def auth(login: Any) -> dict[str, str]:
        return {
            "Authorization": "Basic "
            + base64.b64encode(f"{login.username}:{login.password}".encode()).decode()
        }

    response = await client.post(
        "/graphql", json={"query": CERTIFICATE, "variables": {"c": web_course}}, headers=auth(jane)
    )
    certificate = (await response.json())["data"]["certificate"]
    badge = await (await client.get(path_of(certificate["openBadgeUrl"]))).text()
    credential = await verified(client, badge)
    assert credential["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert OB_CONTEXT in credential["@context"]
    assert (
        credential["credentialSubject"]["achievement"]["name"] == "Introduction to Web Development"
    )
    assert await status_bit(client, credential["credentialStatus"]) == 0

    response = await client.post(
        "/graphql",
        json={"query": REVOKE, "variables": {"n": certificate["certificateId"]}},
        headers=auth(admin),
    )
    assert "errors" not in await response.json()
    assert await status_bit(client, credential["credentialStatus"]) == 1
