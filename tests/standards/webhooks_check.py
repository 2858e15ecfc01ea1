"""Standard Webhooks signatures of a sink's deliveries, checked with the
reference library (`standardwebhooks` 1.3.0, tests/standards/requirements.txt);
deliveries in the CloudEvents format also parsed with the CloudEvents SDK.

Usage: python webhooks_check.py SECRET < deliveries.json

stdin: `[{"path", "headers": {name: value}, "body_base64"}]`, each request
a sink made (`path` tells the sinks apart), failed attempts and their
retries alike, exactly as received. Each must verify with
`Webhook(SECRET).verify(body, headers)`; the same delivery with a byte of
its body changed, another `webhook-id` or `webhook-timestamp`, or checked
with another secret must not. Every delivery of one `webhook-id` to one
path (an event and its retries) carries the same body, and the id is the
event's. A delivery sent as `application/cloudevents+json` must parse with
the CloudEvents SDK (`from_http`, core and 1.x APIs), its `id` the
`webhook-id`. Prints a JSON summary: deliveries, verified, tampered and
refused, failures.
"""

import base64
import json
import sys

import standardwebhooks
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.v1.http import from_http as v1_from_http
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

OTHER_SECRET = "whsec_" + base64.b64encode(b"not the sink's secret, 32 bytes").decode()


def refuses(webhook, body, headers):
    """Whether the library refuses the delivery (it must raise
    WebhookVerificationError and nothing else)."""
    try:
        webhook.verify(body, headers)
    except WebhookVerificationError:
        return True
    return False


def tampered(body):
    """`body` with one byte changed (inside the JSON, so it still parses)."""
    at = body.rindex(b"}") - 1
    return body[:at] + bytes([body[at] ^ 0x01]) + body[at + 1 :]


def main():
    secret = sys.argv[1]
    deliveries = json.load(sys.stdin)
    webhook, other = Webhook(secret), Webhook(OTHER_SECRET)
    failures = []
    summary = {"library": f"standardwebhooks {standardwebhooks.__version__}",
               "deliveries": len(deliveries), "verified": 0, "tampered_refused": 0,
               "cloudevents_parsed": 0, "events": 0}
    bodies = {}
    for n, delivery in enumerate(deliveries):
        headers = delivery["headers"]
        body = base64.b64decode(delivery["body_base64"])
        what = f"delivery {n} ({headers.get('webhook-id')})"
        try:
            payload = webhook.verify(body, headers)
            summary["verified"] += 1
        except Exception as e:
            failures.append(f"{what}: the library refuses it: {e!r}: {headers} {body!r}")
            continue
        attacks = {
            "a byte of the body changed": (webhook, tampered(body), headers),
            "another webhook-id": (webhook, body, dict(headers, **{"webhook-id": "msg_other"})),
            "another timestamp": (webhook, body, dict(
                headers, **{"webhook-timestamp": str(int(headers["webhook-timestamp"]) + 1)})),
            "another secret": (other, body, headers),
        }
        refused = [name for name, attack in attacks.items() if refuses(*attack)]
        for name in attacks.keys() - set(refused):
            failures.append(f"{what}: verifies with {name}")
        if len(refused) == len(attacks):
            summary["tampered_refused"] += 1
        message_id = headers["webhook-id"]
        if bodies.setdefault((delivery["path"], message_id), body) != body:
            failures.append(f"{what}: a retry of {message_id} with another body")
        event_id = payload.get("id")
        if event_id != message_id:
            failures.append(f"{what}: webhook-id is not the event's id {event_id!r}")
        if headers.get("content-type") == "application/cloudevents+json":
            try:
                core = ce_http.from_http(ce_http.HTTPMessage(headers, body), JSONFormat())
                v1 = v1_from_http(headers, body)
            except Exception as e:
                failures.append(f"{what}: the CloudEvents SDK refuses it: {e!r}: {body!r}")
                continue
            if core.get_id() != message_id or v1["id"] != message_id:
                failures.append(f"{what}: CloudEvent id {core.get_id()!r} is not the webhook-id")
            summary["cloudevents_parsed"] += 1
    summary["events"] = len(bodies)
    summary["failures"] = failures
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
