"""A coursepulse webhook receiver: checks each signature, handles each event once.

pip install standardwebhooks aiohttp
WEBHOOK_SECRET=whsec_... python examples/webhook_receiver.py   # listens on :9000
"""

import os

from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError

verifier = Webhook(os.environ["WEBHOOK_SECRET"])  # the secret createWebhook showed once
handled: set[str] = set()  # keep it in your database: a delivery may come more than once


async def receive(request: web.Request) -> web.Response:
    body = await request.read()
    try:
        message = verifier.verify(body, dict(request.headers))
    except WebhookVerificationError:
        return web.Response(status=400)  # not from coursepulse, or altered on the way
    if request.headers["webhook-id"] not in handled:
        handled.add(request.headers["webhook-id"])
        event = message["data"]
        print(event["kind"], event["userId"], event["progressPercentage"], flush=True)
    return web.Response(status=204)  # any 2xx: delivered; anything else is retried


app = web.Application()
app.router.add_post("/coursepulse", receive)
if __name__ == "__main__":
    web.run_app(app, host="127.0.0.1", port=int(os.environ.get("PORT", "9000")))
