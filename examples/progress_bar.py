"""A terminal progress bar that follows a student's progress live, with the `gql` client.

    .venv/bin/python examples/progress_bar.py --course 1 --user john_doe --password student-password

It prints the bar as it stands, then every change. When the connection drops or the server
restarts, it reconnects and resumes from the last event it saw (`after`), so no update is
lost. Complete a lesson in another terminal (or in the app at http://127.0.0.1:8000/) to
watch it move. (`make install` puts gql in .venv.)
"""

import argparse
import asyncio
import base64
import contextlib
from pathlib import Path

from gql import Client, gql
from gql.transport.aiohttp import AIOHTTPTransport
from gql.transport.exceptions import TransportError, TransportQueryError
from gql.transport.websockets import WebsocketsTransport

OPERATIONS = Path(__file__).parent.parent / "graphql/operations"
PROGRESS_UPDATED = (OPERATIONS / "ProgressUpdated.graphql").read_text()
CURRENT = """
query Current($courseId: ID!) {
  courseProgress(courseId: $courseId) { progressPercentage lastEventId }
}
"""
RETRY_SECONDS = 2


def bar(percentage: int, width: int = 40) -> str:
    filled = width * percentage // 100
    return f"[{'#' * filled}{'.' * (width - filled)}] {percentage:3d}%"


async def current_bar(url: str, course: str, authorization: str) -> tuple[int, str]:
    """The student's percentage now, over HTTP, and the id of the event it stands at."""
    transport = AIOHTTPTransport(url=url, headers={"Authorization": authorization})
    async with Client(transport=transport) as session:
        result = await session.execute(gql(CURRENT), variable_values={"courseId": course})
    progress = result["courseProgress"]
    return progress["progressPercentage"], progress["lastEventId"]


async def follow(url: str, course: str, username: str, password: str) -> None:
    authorization = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
    http_url = url.replace("ws://", "http://", 1).replace("wss://", "https://", 1)
    after: str | None = None
    while True:
        try:
            if after is None:
                percentage, after = await current_bar(http_url, course, authorization)
                print(f"{bar(percentage)}  now", flush=True)
            transport = WebsocketsTransport(
                url=url,
                subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
                init_payload={"Authorization": authorization},
            )
            async with Client(transport=transport) as session:
                variables = {"courseId": course, "after": after}
                subscription = gql(PROGRESS_UPDATED)
                async for result in session.subscribe(subscription, variable_values=variables):
                    event = result["progressUpdated"]
                    after = event["id"]
                    kind = event["kind"].lower()
                    print(f"{bar(event['progressPercentage'])}  {kind}", flush=True)
        except TransportQueryError as error:  # refused (wrong password, not enrolled): final
            raise SystemExit(f"refused: {error}") from None
        except (TimeoutError, OSError, TransportError) as error:
            resume = f"after event {after}" if after else "from the current bar"
            print(f"connection lost ({type(error).__name__}); resuming {resume}", flush=True)
            await asyncio.sleep(RETRY_SECONDS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8000/graphql")
    parser.add_argument("--course", default="1")
    parser.add_argument("--user", default="john_doe")
    parser.add_argument("--password", default="student-password")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(follow(args.url, args.course, args.user, args.password))


if __name__ == "__main__":
    main()
