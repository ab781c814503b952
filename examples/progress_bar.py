"""A terminal progress bar that follows a student's progress live, with the `gql` client.

    pip install "gql[websockets]"
    python examples/progress_bar.py --course 1 --user john_doe --password student-password

It resumes after a dropped connection from the last event it saw (`after`), so
no update is lost. Complete a lesson in another terminal to watch it move.
"""

import argparse
import asyncio
import base64
from pathlib import Path

from gql import Client, gql
from gql.transport.websockets import WebsocketsTransport

OPERATION = (
    Path(__file__).parent.parent / "graphql/operations/ProgressUpdated.graphql"
).read_text()


def bar(percentage: int, width: int = 40) -> str:
    filled = width * percentage // 100
    return f"[{'#' * filled}{'.' * (width - filled)}] {percentage:3d}%"


async def follow(url: str, course: str, username: str, password: str) -> None:
    credentials = base64.b64encode(f"{username}:{password}".encode()).decode()
    after: str | None = None
    while True:
        transport = WebsocketsTransport(
            url=url,
            subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
            init_payload={"Authorization": f"Basic {credentials}"},
        )
        try:
            async with Client(transport=transport) as session:
                variables = {"courseId": course, "after": after}
                async for result in session.subscribe(gql(OPERATION), variable_values=variables):
                    event = result["progressUpdated"]
                    after = event["id"]
                    print(
                        f"{bar(event['progressPercentage'])}  {event['kind'].lower()}", flush=True
                    )
        except (OSError, ConnectionError) as error:
            print(f"connection lost ({error}); resuming after event {after}")
            await asyncio.sleep(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8000/graphql")
    parser.add_argument("--course", default="1")
    parser.add_argument("--user", default="john_doe")
    parser.add_argument("--password", default="student-password")
    args = parser.parse_args()
    asyncio.run(follow(args.url, args.course, args.user, args.password))


if __name__ == "__main__":
    main()
