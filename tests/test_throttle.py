"""Sign-in throttling: failed sign-ins limited per address, per username and per pair.

The throttle's rules are shown first on its own with a clock the test moves;
then over real HTTP and real websockets on both databases: the 201st wrong
guess in a minute is refused with `rate_limited` (429, Retry-After,
`extensions.retryAfter`) on GraphQL, REST and the websocket handshake; a flood
from one address does not lock its target out elsewhere; and a real sign-in
during a flood of guesses, hashed with the real argon2 parameters, still answers
within a second.

Two client addresses are made on one machine by trusting 127.0.0.1 as a proxy
(COURSEPULSE_TRUSTED_PROXIES) and sending X-Forwarded-For.
"""

import asyncio
import base64
import json
import statistics
import time
from collections import Counter
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher

from coursepulse.models.db import Database
from coursepulse.resolvers import users
from coursepulse.resolvers.errors import RateLimited
from coursepulse.settings import Settings
from coursepulse.web.throttle import FairHashing, SignInLimits, SignInThrottle
from tests.conftest import PASSWORD, School, error_codes, make_user

ME = "{ me { username } }"
REST_MY_COURSES = "/wp-json/fluent-community/v2/courses/my-courses"
WAIT = 10.0


@pytest.fixture(autouse=True)
def _cheap_unknown_user_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unknown usernames are checked against a hash as cheap as the tests' (conftest)."""
    monkeypatch.setattr(users, "_DUMMY_HASH", users.hash_password("not a real password"))


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def from_address(address: str, username: str, password: str) -> dict[str, str]:
    """Headers of a sign-in from `address` (believed: 127.0.0.1 is a trusted proxy)."""
    return {"Authorization": basic(username, password), "X-Forwarded-For": address}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def refused(throttle: SignInThrottle, username: str | None, address: str) -> int:
    """The retryAfter of a refused attempt (fails the test when it is admitted)."""
    with pytest.raises(RateLimited) as caught:
        throttle.begin(username, address)
    return caught.value.extra["retryAfter"]


def fail(throttle: SignInThrottle, username: str | None, address: str, times: int = 1) -> None:
    for _ in range(times):
        throttle.begin(username, address).failed()


# ---- the rules, on their own ----------------------------------------------------------


def test_the_201st_failure_from_one_address_in_a_minute_waits_for_the_oldest_to_expire() -> None:
    clock = Clock()
    throttle = SignInThrottle(clock=clock)
    for number in range(200):
        fail(throttle, f"guess{number}", "198.51.100.7")
        clock.now += 0.1  # 200 failures over 20 seconds
    assert refused(throttle, "guess200", "198.51.100.7") == 40  # the first expires at 60 s
    assert refused(throttle, None, "198.51.100.7")  # an API token from there too
    throttle.begin("guess200", "198.51.100.8").failed()  # another address is not concerned
    clock.now += 40.0
    throttle.begin("guess200", "198.51.100.7").failed()  # one place is free again
    assert refused(throttle, "guess201", "198.51.100.7") == 1


def test_attempts_under_way_hold_their_places_so_concurrent_guesses_cannot_overshoot() -> None:
    throttle = SignInThrottle(SignInLimits(per_address=5, per_user_and_address=5, per_user=5))
    attempts = [throttle.begin(f"user{number}", "192.0.2.1") for number in range(5)]
    refused(throttle, "user5", "192.0.2.1")
    attempts[0].succeeded()  # a success is not a failure: its place is free again
    attempts[1].abandoned()  # nor a check that broke
    throttle.begin("user6", "192.0.2.1").failed()
    throttle.begin("user7", "192.0.2.1").failed()
    refused(throttle, "user8", "192.0.2.1")


def test_one_address_guessing_one_username_is_stopped_for_that_username_only() -> None:
    throttle = SignInThrottle()
    fail(throttle, "john_doe", "203.0.113.9", times=10)
    refused(throttle, "john_doe", "203.0.113.9")
    throttle.begin("jane_roe", "203.0.113.9").failed()  # other usernames from there: allowed
    throttle.begin("john_doe", "203.0.113.10").succeeded()  # the user elsewhere: allowed


def test_many_addresses_lock_a_username_only_for_addresses_it_never_signed_in_from() -> None:
    throttle = SignInThrottle(SignInLimits(per_user_and_address=3, per_user=9))
    throttle.begin("john_doe", "192.0.2.50").succeeded()  # John's own address
    for bot in range(3):
        fail(throttle, "john_doe", f"198.51.100.{bot}", times=3)
    refused(throttle, "john_doe", "198.51.100.200")  # a fourth bot
    refused(throttle, "john_doe", "192.0.2.99")  # or any address new to John
    throttle.begin("john_doe", "192.0.2.50").succeeded()  # John at home still signs in
    throttle.begin("jane_roe", "198.51.100.200").succeeded()  # the lock is John's only


def test_a_success_clears_the_pair_but_never_the_address_window() -> None:
    throttle = SignInThrottle(SignInLimits(per_address=6, per_user_and_address=3))
    fail(throttle, "mallory", "192.0.2.7", times=2)
    throttle.begin("mallory", "192.0.2.7").succeeded()  # her own account, between guesses
    fail(throttle, "mallory", "192.0.2.7", times=3)  # the pair starts again...
    fail(throttle, "victim", "192.0.2.7")
    refused(throttle, "victim2", "192.0.2.7")  # ...but the address counted all six


def test_the_throttle_keeps_a_bounded_number_of_keys() -> None:
    throttle = SignInThrottle(max_tracked=100)
    for number in range(5000):
        fail(throttle, f"user{number}", f"10.0.{number // 256}.{number % 256}")
    assert throttle.tracked() == 300  # 100 addresses, pairs and usernames: the latest ones


async def test_one_address_cannot_hold_every_hashing_slot() -> None:
    hashing = FairHashing(slots=4, per_address=2)
    release = asyncio.Event()
    inside: Counter[str] = Counter()

    async def hash_from(address: str) -> None:
        async with hashing.slot(address):
            inside[address] += 1
            await release.wait()

    flood = [asyncio.create_task(hash_from("198.51.100.1")) for _ in range(20)]
    await asyncio.sleep(0)
    # Two of the flood's twenty are hashing; a real user from elsewhere gets in at once.
    user = asyncio.create_task(hash_from("192.0.2.1"))
    async with asyncio.timeout(WAIT):
        while not inside["192.0.2.1"]:  # noqa: ASYNC110  (a few turns of the loop)
            await asyncio.sleep(0)
    assert inside["198.51.100.1"] == 2
    release.set()
    await asyncio.gather(user, *flood)
    assert inside["198.51.100.1"] == 20
    assert not hashing._queues  # nothing left behind per address


def test_trusted_proxies_are_read_from_the_environment_and_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COURSEPULSE_TRUSTED_PROXIES", "10.0.0.1, 192.168.0.0/16,fd00::/8")
    assert Settings().trusted_proxies == ["10.0.0.1", "192.168.0.0/16", "fd00::/8"]
    monkeypatch.setenv("COURSEPULSE_TRUSTED_PROXIES", "10.0.0.1,proxy.internal")
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6"):
        Settings()


# ---- over HTTP and websockets ---------------------------------------------------------


async def test_the_201st_wrong_guess_in_a_minute_gets_429_with_retry_after(
    client: TestClient, school: School
) -> None:
    # Given an attacker guessing 220 accounts' passwords, 20 at once, from one address
    semaphore = asyncio.Semaphore(20)

    async def guess(number: int) -> tuple[int, dict[str, Any], str | None]:
        async with semaphore:
            response = await client.post(
                "/graphql",
                json={"query": ME},
                headers={"Authorization": basic(f"student{number}", "wrong password")},
            )
            return response.status, await response.json(), response.headers.get("Retry-After")

    answers = await asyncio.gather(*(guess(number) for number in range(220)))
    # Then exactly 200 are checked (401) and the rest refused before any hashing (429)
    statuses = Counter(status for status, _, _ in answers)
    assert statuses == {401: 200, 429: 20}
    _, body, retry_after = next(answer for answer in answers if answer[0] == 429)
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "rate_limited"
    assert error["extensions"]["status"] == 429
    assert 1 <= error["extensions"]["retryAfter"] <= 60
    assert retry_after == str(error["extensions"]["retryAfter"])
    # And from that address even a right password waits (it is not hashed to find out)
    right = await client.post("/graphql", json={"query": ME}, headers=school.student.auth)
    assert right.status == 429
    # And the REST facade answers in its own error shape
    rest = await client.get(REST_MY_COURSES, headers=school.student.auth)
    assert rest.status == 429
    rest_body = await rest.json()
    assert rest_body["code"] == "rate_limited"
    assert rest_body["data"]["status"] == 429
    assert rest.headers["Retry-After"] == str(rest_body["data"]["retry_after"])


async def test_lowered_limits_refuse_then_admit_again_once_the_window_has_passed(
    serve: Any, settings: Settings, school: School
) -> None:
    limits = {"signin_failures_per_address": 3, "signin_window_seconds": 1.5}
    client = await serve(settings.model_copy(update=limits))
    wrong = {"Authorization": basic("john_doe", "wrong password")}
    for _ in range(3):
        assert (await client.post("/graphql", json={"query": ME}, headers=wrong)).status == 401
    refused = await client.post("/graphql", json={"query": ME}, headers=school.student.auth)
    assert refused.status == 429
    assert refused.headers["Retry-After"] in ("1", "2")
    await asyncio.sleep(int(refused.headers["Retry-After"]) + 0.1)
    admitted = await client.post("/graphql", json={"query": ME}, headers=school.student.auth)
    assert (await admitted.json())["data"]["me"]["username"] == "john_doe"


async def test_wrong_api_tokens_count_against_the_address(
    serve: Any, settings: Settings, school: School
) -> None:
    client = await serve(settings.model_copy(update={"signin_failures_per_address": 2}))
    for token in ("cp_not-a-token", "cp_nor-this-one"):
        bearer = {"Authorization": f"Bearer {token}"}
        assert (await client.post("/graphql", json={"query": ME}, headers=bearer)).status == 401
    third = await client.post(
        "/graphql", json={"query": ME}, headers={"Authorization": "Bearer cp_third"}
    )
    assert error_codes(await third.json()) == ["rate_limited"]


async def test_a_flood_from_one_address_leaves_the_user_free_to_sign_in_from_another(
    serve: Any, settings: Settings, school: School
) -> None:
    client = await serve(settings.model_copy(update={"trusted_proxies": ["127.0.0.1"]}))

    async def me(headers: dict[str, str]) -> int:
        response = await client.post("/graphql", json={"query": ME}, headers=headers)
        return response.status

    # Given an attacker who sends 60 guesses at John's password from one address
    attacker = [from_address("198.51.100.66", "john_doe", f"guess {n}") for n in range(60)]
    statuses = Counter(await asyncio.gather(*(me(headers) for headers in attacker)))
    assert statuses == {401: 10, 429: 50}  # ten checked, the rest refused
    # Then John, from an address he never used, signs in
    assert await me(from_address("192.0.2.10", "john_doe", PASSWORD)) == 200
    # And the attacker's address stays refused
    assert await me(from_address("198.51.100.66", "john_doe", "one more guess")) == 429


async def test_a_distributed_flood_locks_a_username_only_for_addresses_it_never_used(
    serve: Any, settings: Settings, school: School
) -> None:
    limits = {
        "trusted_proxies": ["127.0.0.0/8"],
        "signin_failures_per_user_and_address": 2,
        "signin_failures_per_user": 6,
        "auth_cache_seconds": 0,  # every sign-in below is checked, none answered from memory
    }
    client = await serve(settings.model_copy(update=limits))

    async def me(address: str, password: str) -> int:
        headers = from_address(address, "john_doe", password)
        return (await client.post("/graphql", json={"query": ME}, headers=headers)).status

    assert await me("192.0.2.10", PASSWORD) == 200  # John's usual address
    for bot in range(3):
        for attempt in range(2):
            assert await me(f"198.51.100.{bot}", f"guess {attempt}") == 401
    assert await me("198.51.100.99", "guess") == 429  # a new bot
    assert await me("192.0.2.11", PASSWORD) == 429  # an address new to John, too
    assert await me("192.0.2.10", PASSWORD) == 200  # but not John's own


async def test_x_forwarded_for_counts_only_behind_a_trusted_proxy(
    client: TestClient, school: School
) -> None:
    # Without COURSEPULSE_TRUSTED_PROXIES every request counts for its peer, 127.0.0.1
    for number in range(10):
        headers = from_address(f"198.51.100.{number}", "john_doe", "wrong password")
        response = await client.post("/graphql", json={"query": ME}, headers=headers)
        assert response.status == 401
    fresh = from_address("192.0.2.200", "john_doe", PASSWORD)
    assert (await client.post("/graphql", json={"query": ME}, headers=fresh)).status == 429


async def test_ipv6_clients_count_by_their_64_bit_network(
    serve: Any, settings: Settings, school: School
) -> None:
    limits = {"trusted_proxies": ["127.0.0.1"], "signin_failures_per_address": 1}
    client = await serve(settings.model_copy(update=limits))

    async def guess(address: str) -> int:
        headers = from_address(address, "john_doe", "wrong password")
        return (await client.post("/graphql", json={"query": ME}, headers=headers)).status

    assert await guess("2001:db8:1:2::5") == 401
    assert await guess("2001:db8:1:2:ffff::1") == 429  # the same /64
    assert await guess("2001:db8:1:3::1") == 401  # the next one


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_a_throttled_sign_in_is_refused_at_the_websocket_handshake(
    serve: Any, settings: Settings, school: School, protocol: str
) -> None:
    client = await serve(settings.model_copy(update={"signin_failures_per_address": 1}))
    url = f"ws://127.0.0.1:{client.server.port}/graphql"
    wrong = basic("john_doe", "wrong password")
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, protocols=[protocol]) as websocket:
            await websocket.send_json(
                {"type": "connection_init", "payload": {"Authorization": wrong}}
            )
            frames = [await websocket.receive(timeout=WAIT)]
            if frames[0].type == WSMsgType.TEXT:
                frames.append(await websocket.receive(timeout=WAIT))
            assert frames[-1].type == WSMsgType.CLOSE
            assert frames[-1].data == 4403  # a wrong password: Forbidden, on both protocols
        async with session.ws_connect(url, protocols=[protocol]) as websocket:
            right = {"Authorization": school.student.auth["Authorization"]}
            await websocket.send_json({"type": "connection_init", "payload": right})
            first = await websocket.receive(timeout=WAIT)
            if protocol == "graphql-ws":
                # connection_error with the code and the wait, then the close
                error = json.loads(first.data)
                assert error["type"] == "connection_error"
                assert error["payload"]["code"] == "rate_limited"
                assert error["payload"]["retryAfter"] >= 1
                first = await websocket.receive(timeout=WAIT)
            assert (first.type, first.data) == (WSMsgType.CLOSE, 4429)
            assert "rate_limited" in first.extra
        # A throttled Authorization header on the upgrade request is answered 429 over HTTP
        with pytest.raises(aiohttp.WSServerHandshakeError) as handshake:
            await session.ws_connect(url, protocols=[protocol], headers=school.student.auth)
        assert handshake.value.status == 429


async def test_a_real_sign_in_during_a_flood_of_guesses_answers_within_a_second(
    serve: Any, settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Real argon2 (the default parameters) for John's password and the unknown usernames
    real = PasswordHasher()
    monkeypatch.setattr(users, "_hasher", real)
    monkeypatch.setattr(users, "_DUMMY_HASH", real.hash("not a real password"))
    solo = real.hash("warm up")

    def hash_once() -> float:
        started = time.perf_counter()
        real.verify(solo, "warm up")
        return time.perf_counter() - started

    one_hash = statistics.median([hash_once() for _ in range(3)])
    # Every password check, in the order the hashing threads start them
    hashing_order: list[str] = []
    verify = users._verify

    def recorded(password_hash: str, password: str) -> bool:
        hashing_order.append(password)
        return verify(password_hash, password)

    monkeypatch.setattr(users, "_verify", recorded)
    john = await make_user(db, "john_real")
    # (no credential cache: each of John's sign-ins is hashed)
    limits = {"trusted_proxies": ["127.0.0.1"], "auth_cache_seconds": 0}
    client = await serve(settings.model_copy(update=limits))
    stop = asyncio.Event()
    guesses: Counter[int] = Counter()

    async def attacker(worker: int) -> None:
        number = 0
        while not stop.is_set():
            number += 1
            headers = from_address("198.51.100.1", f"nobody{worker}x{number}", "guess")
            response = await client.post("/graphql", json={"query": ME}, headers=headers)
            guesses[response.status] += 1

    # Given twenty guesses at a time from one address, hashing since a moment
    flood = [asyncio.create_task(attacker(worker)) for worker in range(20)]
    try:
        async with asyncio.timeout(60):
            while guesses[401] < 4:  # noqa: ASYNC110  (polls the flood's progress)
                await asyncio.sleep(0.05)
        # When John signs in from his address, three times
        latencies, overtaken = [], []
        for _ in range(3):
            checks_before = len(hashing_order)
            started = time.perf_counter()
            headers = from_address("192.0.2.10", john.username, PASSWORD)
            response = await client.post("/graphql", json={"query": ME}, headers=headers)
            latencies.append(time.perf_counter() - started)
            assert (await response.json())["data"]["me"]["username"] == "john_real"
            # guesses whose hashing started after John asked and before his own
            overtaken.append(hashing_order.index(PASSWORD, checks_before) - checks_before)
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*flood)
    latency = statistics.median(latencies)
    print(
        f"\nsign-in during a flood: {latency * 1000:.0f} ms median "
        f"(one hash alone {one_hash * 1000:.0f} ms; {guesses[401]} guesses checked meanwhile; "
        f"guesses hashed before John's after he asked: {overtaken})"
    )
    # Then John's password was hashed as soon as he asked, not after the flood's queue (at
    # most one guess may slip in between the request leaving and reaching the server)...
    assert all(count <= 1 for count in overtaken), overtaken
    # ...and each answered within a second; on a machine so loaded that one hash alone takes
    # more than a quarter of that, within four hashes' time (it shares the cores with the
    # guess hashed beside it).
    assert latency < max(1.0, 4 * one_hash)
