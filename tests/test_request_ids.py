"""Request ids: unique across requests and across forked workers."""

import os
import re

from coursepulse.web.request_ids import RequestIds


def test_ids_are_32_hex_digits_and_never_repeat() -> None:
    ids = RequestIds()
    made = [ids.next() for _ in range(10_000)]
    assert len(set(made)) == len(made)
    assert all(re.fullmatch("[0-9a-f]{32}", made_id) for made_id in made)


def test_a_forked_worker_makes_ids_of_its_own() -> None:
    ids = RequestIds()
    parent = ids.next()
    reading, writing = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker
        os.write(writing, ids.next().encode())
        os._exit(0)
    os.close(writing)
    os.waitpid(pid, 0)
    child = os.read(reading, 64).decode()
    os.close(reading)
    assert re.fullmatch("[0-9a-f]{32}", child)
    assert child[:16] != parent[:16]
    assert ids.next() != child
