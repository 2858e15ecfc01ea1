"""CloudEvents 1.0 at a running wasmsched host, checked with the official
Python SDK (`cloudevents` 2.2.0, tests/standards/requirements.txt).

Usage: python cloudevents_check.py BASE_URL TRIGGER_ID TRIGGER_TOPIC

Subscribes to `GET /api/events/stream?pattern=std.**&format=cloudevents`,
then publishes to `POST /api/events`:

- events the SDK makes (its `core` API, and the 1.x API kept as
  `cloudevents.v1`), in structured and binary mode: percent-encoded and
  non-ASCII values, media types in any case, extensions of every
  CloudEvents type, `subject`, `dataschema`, data of every JSON kind;
- what the host must refuse, and why: `data_base64`, data that is not
  JSON, empty `subject`, badly named attributes, specversion 0.3, bad
  percent-encoding (each a 4xx whose error names the reason);
- events in wasmsched's own shape whose headers are named like context
  attributes (`time`, `dataschema`, `subject`, empty `ce-source`...), and
  an api trigger's event.

Every event the stream emits is parsed by the SDK five ways (core JSON
format, core HTTP binding, 1.x `from_json`, `from_dict`, `from_http`); its
attributes must be what docs/observability.md says (type = topic, `id` kept
as the extension `ceid`, `source`, `subject`, extensions as strings,
`dataschema` and `time` not carried over). Each is then sent back to the
host as the SDK writes it (structured mode) and must come out again the
same. Prints a JSON summary: cases, round trips, failures.
"""

import datetime
import http.client
import json
import queue
import sys
import threading
import time
import urllib.parse
import uuid

import cloudevents
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v03.event import CloudEvent as CloudEventV03
from cloudevents.core.v1.event import CloudEvent
from cloudevents.v1 import conversion as v1_conversion
from cloudevents.v1.http import CloudEvent as V1CloudEvent
from cloudevents.v1.http import from_dict as v1_from_dict
from cloudevents.v1.http import from_http as v1_from_http
from cloudevents.v1.http import from_json as v1_from_json

FORMAT = JSONFormat()
STRUCTURED = "application/cloudevents+json"
WHEN = datetime.datetime(2026, 3, 1, 12, 30, 15, 250000, tzinfo=datetime.timezone.utc)
# A CloudEvents value of each type, and its canonical string (what the host
# keeps: every attribute it emits is a string).
EXTENSIONS = {
    "extstring": ("text with spaces", "text with spaces"),
    "extinteger": (-2147483648, "-2147483648"),
    "extboolean": (True, "true"),
    "exturi": ("https://example.com/a/b?c=d&e=%2F#f", "https://example.com/a/b?c=d&e=%2F#f"),
    "exturiref": ("../a/b#c", "../a/b#c"),
    "exttimestamp": (WHEN, "2026-03-01T12:30:15.250000Z"),
    "extbinary": ("AAECAwQ=", "AAECAwQ="),
    "traceparent": (
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ),
}
# In binary mode the SDK writes a bool as Python does (`True`): give it
# the CloudEvents string instead.
BINARY_EXTENSIONS = {k: ("true" if v is True else v, s) for k, (v, s) in EXTENSIONS.items()}
ODD = " café \"東京\" ☃ 100% + ~ "


class Failures(list):
    def add(self, case, what):
        self.append(f"{case}: {what}")


class Host:
    def __init__(self, base):
        url = urllib.parse.urlsplit(base)
        self.host, self.port = url.hostname, url.port

    def post(self, path, headers, body):
        """(status, JSON answer or None) of POST path."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        try:
            return response.status, json.loads(raw) if raw else None
        except ValueError:
            return response.status, {"error": raw.decode("utf-8", "replace")}

    def stream(self, pattern):
        """A queue of the `data` of each message of the CloudEvents stream,
        once the host has subscribed (it answers after subscribing)."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        query = urllib.parse.urlencode({"pattern": pattern, "format": "cloudevents"})
        connection.request("GET", f"/api/events/stream?{query}")
        response = connection.getresponse()
        if response.status != 200:
            raise RuntimeError(f"the stream answered {response.status}: {response.read()!r}")
        messages = queue.Queue()

        def read():
            data = []
            try:
                while True:
                    line = response.readline()
                    if not line:
                        return
                    line = line.decode("utf-8").rstrip("\r\n")
                    if line.startswith("data:"):
                        data.append(line[5:].removeprefix(" "))
                    elif not line and data:
                        messages.put("\n".join(data))
                        data = []
            except OSError:
                return

        threading.Thread(target=read, daemon=True).start()
        return messages, response.headers.get("content-type", "")


def structured(event, content_type=STRUCTURED, edit=None):
    """`event` in structured mode as the SDK writes it (`edit` changes
    the JSON first: a case the SDK would not make)."""
    message = ce_http.to_structured(event, FORMAT)
    body = message.body
    if edit:
        document = json.loads(body)
        edit(document)
        body = json.dumps(document).encode()
    return {"content-type": content_type}, body


def binary(event, **replace):
    """`event` in binary mode as the SDK writes it (percent-encoded), with
    `replace`d headers (`ce_x` for `ce-x`; None removes one)."""
    message = ce_http.to_binary(event, FORMAT)
    headers = dict(message.headers)
    for name, value in replace.items():
        name = name.replace("_", "-")
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return headers, message.body


def v1_binary(attributes, data):
    """The 1.x API's binary mode (it sends values as they are)."""
    headers, body = v1_conversion.to_binary(V1CloudEvent(attributes, data))
    return headers, body


def v1_structured(attributes, data):
    return v1_conversion.to_structured(V1CloudEvent(attributes, data))


def cases(trigger_id, trigger_topic):
    """(name, how it is sent, headers, body, expected): expected is
    `("refused", status, words)` or the emitted event's
    `{type, source, subject, extensions, absent, data}`."""
    made = []

    def accepted(name, how, request, topic, source, data, subject=None, extensions=None, absent=()):
        expected = {
            "type": topic,
            "source": source,
            "subject": subject,
            "extensions": extensions or {},
            "absent": set(absent) | ({"subject"} if subject is None else set()),
            "data": data,
        }
        made.append((name, how, *request, expected))

    def refused(name, how, request, status, *words):
        made.append((name, how, *request, ("refused", status, words)))

    def event(topic, source, data, event_id, **attributes):
        return CloudEvent({"type": topic, "source": source, "id": event_id, **attributes}, data)

    sent = {k: v for k, (v, _) in EXTENSIONS.items()}
    sent_binary = {k: v for k, (v, _) in BINARY_EXTENSIONS.items()}
    strings = {k: s for k, (_, s) in EXTENSIONS.items()}
    data = {"n": 1, "text": ODD, "list": [1, 2.5, None, True], "nested": {"a": {}}}

    # Structured mode, as the SDK writes it.
    accepted("structured", "core to_structured", structured(event("std.s.plain", "/std/s", data, "S-1")),
             "std.s.plain", "/std/s", data, extensions={"ceid": "S-1"})
    accepted("structured, media type in odd case", "core to_structured",
             structured(event("std.s.case", "/std/s", data, "S-2"),
                        "Application/CloudEvents+JSON; Charset=UTF-8"),
             "std.s.case", "/std/s", data, extensions={"ceid": "S-2"})
    accepted("structured, every extension type", "core to_structured",
             structured(event("std.s.ext", "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66",
                              data, "S-3", **sent)),
             "std.s.ext", "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66", data,
             extensions={"ceid": "S-3", **strings})
    accepted("structured, subject and dataschema", "core to_structured",
             structured(event("std.s.subject", "/std/s", data, "S-4", subject="o/r",
                              dataschema="https://example.com/schema.json", time=WHEN)),
             "std.s.subject", "/std/s", data, subject="o/r",
             extensions={"ceid": "S-4"}, absent={"dataschema"})
    accepted("structured, non-ASCII everywhere", "core to_structured",
             structured(event("std.s.unicode", "/café/東京", data, "Ü-☃", subject=ODD, extnote=ODD)),
             "std.s.unicode", "/café/東京", data, subject=ODD,
             extensions={"ceid": "Ü-☃", "extnote": ODD})
    for name, content_type in [("json", "application/json"), ("charset", "application/json; charset=utf-8"),
                               ("suffix", "application/vnd.example.thing+json"), ("text-json", "text/json")]:
        accepted(f"structured, datacontenttype {content_type}", "core to_structured",
                 structured(event(f"std.s.dct-{name}", "/std/s", data, f"S-5-{name}",
                                  datacontenttype=content_type)),
                 f"std.s.dct-{name}", "/std/s", data, extensions={"ceid": f"S-5-{name}"})
    for name, value in [("list", [1, "a", None]), ("string", ODD), ("number", 3.25), ("false", False)]:
        accepted(f"structured, {name} data", "core to_structured",
                 structured(event(f"std.s.data-{name}", "/std/s", value, f"S-6-{name}")),
                 f"std.s.data-{name}", "/std/s", value, extensions={"ceid": f"S-6-{name}"})
    accepted("structured, no data", "core to_structured",
             structured(event("std.s.nodata", "/std/s", None, "S-7")),
             "std.s.nodata", "/std/s", {}, extensions={"ceid": "S-7"})
    accepted("structured, 1.x API", "v1 to_structured",
             v1_structured({"type": "std.s.v1", "source": "/std/v1", "id": "S-8", "subject": "s",
                            "extv": "1"}, data),
             "std.s.v1", "/std/v1", data, subject="s", extensions={"ceid": "S-8", "extv": "1"})

    # Binary mode, as the SDK writes it: values percent-encoded.
    accepted("binary", "core to_binary", binary(event("std.b.plain", "/std/b", data, "B-1")),
             "std.b.plain", "/std/b", data, extensions={"ceid": "B-1"})
    accepted("binary, every extension type", "core to_binary",
             binary(event("std.b.ext", "/std/b", data, "B-2", **sent_binary)),
             "std.b.ext", "/std/b", data, extensions={"ceid": "B-2", **strings})
    accepted("binary, percent-encoded non-ASCII values", "core to_binary",
             binary(event("std.b.unicode", "/café bar/東京", data, "Ü ☃", subject=ODD, extnote=ODD)),
             "std.b.unicode", "/café bar/東京", data, subject=ODD,
             extensions={"ceid": "Ü ☃", "extnote": ODD})
    accepted("binary, `+` and `%2B` are not spaces", "core to_binary",
             binary(event("std.b.plus", "/a+b", data, "B-3", subject="a+b%2Bc")),
             "std.b.plus", "/a+b", data, subject="a+b%2Bc", extensions={"ceid": "B-3"})
    accepted("binary, subject and dataschema", "core to_binary",
             binary(event("std.b.subject", "/std/b", data, "B-4", subject="o/r",
                          dataschema="https://example.com/schema.json", time=WHEN)),
             "std.b.subject", "/std/b", data, subject="o/r",
             extensions={"ceid": "B-4"}, absent={"dataschema"})
    accepted("binary, Content-Type in odd case", "core to_binary",
             binary(event("std.b.case", "/std/b", data, "B-5"),
                    **{"content-type": "APPLICATION/JSON; Charset=UTF-8"}),
             "std.b.case", "/std/b", data, extensions={"ceid": "B-5"})
    accepted("binary, datacontenttype with a +json suffix", "core to_binary",
             binary(event("std.b.suffix", "/std/b", data, "B-6",
                          datacontenttype="application/vnd.example.thing+json")),
             "std.b.suffix", "/std/b", data, extensions={"ceid": "B-6"})
    accepted("binary, no data", "core to_binary", binary(event("std.b.nodata", "/std/b", None, "B-7")),
             "std.b.nodata", "/std/b", {}, extensions={"ceid": "B-7"})
    accepted("binary, 1.x API", "v1 to_binary",
             v1_binary({"type": "std.b.v1", "source": "/std/v1", "id": "B-8", "subject": "s"}, data),
             "std.b.v1", "/std/v1", data, subject="s", extensions={"ceid": "B-8"})

    # What the host refuses, naming why.
    refused("structured, data_base64", "core to_structured",
            structured(event("std.r.base64", "/std/r", b"\x00\x01binary", "R-1")), 422, "data_base64")
    refused("structured, datacontenttype text/plain", "core to_structured",
            structured(event("std.r.text", "/std/r", "hello", "R-2", datacontenttype="text/plain")),
            422, "datacontenttype", "text/plain")
    refused("binary, text/plain data", "core to_binary",
            binary(event("std.r.btext", "/std/r", "hello", "R-3", datacontenttype="text/plain")),
            415, "datacontenttype", "text/plain", "Content-Type")
    refused("binary, text/plain data that looks like JSON", "core to_binary",
            binary(event("std.r.btext42", "/std/r", "42", "R-4", datacontenttype="text/plain")),
            415, "datacontenttype", "text/plain")
    refused("binary, application/octet-stream data", "core to_binary",
            binary(event("std.r.bytes", "/std/r", b"\x00\xff", "R-5",
                         datacontenttype="application/octet-stream")),
            415, "datacontenttype", "application/octet-stream")
    refused("structured, empty subject (1.x API)", "v1 to_structured",
            v1_structured({"type": "std.r.subject", "source": "/std/r", "id": "R-6", "subject": ""}, data),
            422, "`subject`")
    refused("binary, empty subject (1.x API)", "v1 to_binary",
            v1_binary({"type": "std.r.bsubject", "source": "/std/r", "id": "R-7", "subject": ""}, data),
            422, "`subject`")
    refused("structured, empty dataschema (1.x API)", "v1 to_structured",
            v1_structured({"type": "std.r.schema", "source": "/std/r", "id": "R-8", "dataschema": ""}, data),
            422, "`dataschema`")
    refused("structured, attribute named with `_` (1.x API)", "v1 to_structured",
            v1_structured({"type": "std.r.name", "source": "/std/r", "id": "R-9", "my_ext": "x"}, data),
            422, "`my_ext`")
    refused("binary, attribute named with `_` (1.x API)", "v1 to_binary",
            v1_binary({"type": "std.r.bname", "source": "/std/r", "id": "R-10", "my_ext": "x"}, data),
            422, "`my_ext`")
    refused("structured, attribute named in upper case", "core to_structured",
            structured(event("std.r.upper", "/std/r", data, "R-11"),
                       edit=lambda d: d.update({"MyExt": "x"})),
            422, "`MyExt`")
    refused("structured, specversion 0.3", "core v0.3 to_structured",
            structured(CloudEventV03({"type": "std.r.v03", "source": "/std/r", "id": "R-12"}, data)),
            422, "0.3")
    refused("binary, specversion 0.3", "core v0.3 to_binary",
            binary(CloudEventV03({"type": "std.r.bv03", "source": "/std/r", "id": "R-13"}, data)),
            422, "0.3")
    refused("binary, a value that is not percent-encoded UTF-8", "core to_binary",
            binary(event("std.r.percent", "/std/r", data, "R-14"), ce_subject="caf%E9"),
            400, "ce-subject", "percent-encoded")
    refused("binary, a type that is not a topic", "core to_binary",
            binary(event("com.example thing", "/std/r", data, "R-15")), 422, "`type`")

    # wasmsched's own shape, headers named like context attributes.
    def own(topic, headers, value):
        body = json.dumps({"topic": topic, "data": value, "headers": headers}).encode()
        return {"content-type": "application/json"}, body

    named_like_attributes = {
        "time": "yesterday", "Time": "yesterday", "dataschema": "", "DataSchema": "x", "subject": "",
        "id": "x", "ID": "x", "type": "x", "source": "x", "specversion": "0.3",
        "datacontenttype": "text/plain", "data": "x", "Data": "x", "data_base64": "AA==",
        "ce-source": "", "ce-subject": "",
    }
    accepted("own shape, headers named like attributes", "POST {topic, data, headers}",
             own("std.o.attributes", named_like_attributes, data), "std.o.attributes", "wasmsched", data,
             extensions={"database64": "AA=="},
             absent={"dataschema", "ceid", "cesource", "cesubject", "data_base64"})
    accepted("own shape, odd header names and values", "POST {topic, data, headers}",
             own("std.o.names", {"X-Request_ID": "r-1", "wasmsched-catch-up": "true", "123": "n",
                                 "---": "dropped", "": "dropped", "Note": ODD}, data),
             "std.o.names", "wasmsched", data,
             extensions={"xrequestid": "r-1", "wasmschedcatchup": "true", "123": "n", "note": ODD})
    accepted("own shape, ce-source and ce-subject", "POST {topic, data, headers}",
             own("std.o.source", {"ce-source": "/from/header", "ce-subject": ODD}, None),
             "std.o.source", "/from/header", None, subject=ODD)
    made.append(("api trigger", "POST /api/triggers/{id}/trigger",
                 {"content-type": "application/json"}, json.dumps({"data": data}).encode(),
                 {"type": trigger_topic, "source": f"wasmsched/{trigger_id}", "subject": None,
                  "extensions": {}, "absent": {"subject", "wasmschedtrigger", "ceid"}, "data": data,
                  "path": f"/api/triggers/{trigger_id}/trigger", "status": 200}))
    return made


def parsed_every_way(raw, case, failures):
    """The emitted event `raw` parsed by the SDK: (core event, 1.x event),
    None where it refused."""
    core = v1 = None
    ways = {
        "core JSONFormat.read": lambda: FORMAT.read(None, raw),
        "core http.from_http": lambda: ce_http.from_http(
            ce_http.HTTPMessage({"content-type": STRUCTURED}, raw.encode()), FORMAT),
        "v1 from_json": lambda: v1_from_json(raw),
        "v1 from_dict": lambda: v1_from_dict(json.loads(raw)),
        "v1 from_http": lambda: v1_from_http({"content-type": STRUCTURED}, raw.encode()),
    }
    for way, parse in ways.items():
        try:
            result = parse()
        except Exception as e:  # the SDK refused what the host emitted
            failures.add(case, f"the SDK's {way} refuses what the host emitted: {e!r}: {raw}")
            continue
        if way == "core JSONFormat.read":
            core = result
        if way == "v1 from_json":
            v1 = result
    return core, v1


def check_emitted(case, raw, expected, failures):
    """The SDK's reading of the emitted `raw` if it is `expected`, else
    None (and what differs in `failures`)."""
    core, v1 = parsed_every_way(raw, case, failures)
    if core is None or v1 is None:
        return None
    wrong = []
    attributes = core.get_attributes()
    wanted = {"specversion": "1.0", "type": expected["type"], "source": expected["source"],
              "datacontenttype": "application/json"}
    if expected["subject"] is not None:
        wanted["subject"] = expected["subject"]
    wanted.update(expected["extensions"])
    for name, value in wanted.items():
        for api, got in (("core", attributes.get(name)), ("v1", v1.get(name))):
            if got != value:
                wrong.append(f"{api} `{name}` is {got!r}, sent {value!r}")
    for name in sorted(expected["absent"] & attributes.keys()):
        wrong.append(f"`{name}` should not be emitted")
    for api, data in (("core", core.get_data()), ("v1", v1.get_data())):
        if data != expected["data"] or type(data) is not type(expected["data"]):
            wrong.append(f"{api} data is {data!r}, sent {expected['data']!r}")
    when = core.get_time()
    if not isinstance(when, datetime.datetime) or when.tzinfo is None or when.year < 2025:
        wrong.append(f"`time` is not the event's own time: {when!r}")
    try:
        if uuid.UUID(core.get_id()).version != 7:
            wrong.append(f"`id` is not the event's UUIDv7: {core.get_id()}")
    except ValueError:
        wrong.append(f"`id` is not a UUID: {core.get_id()}")
    if wrong:
        failures.add(case, "; ".join(wrong) + f"; emitted {raw}")
        return None
    return core


def sdk_refuses_the_broken(raw, failures):
    """The SDK is no formality: it refuses an emitted event broken as the
    specification forbids. How many ways it refused."""
    breaks = {
        "without source": lambda d: d.pop("source"),
        "with an empty id": lambda d: d.update(id=""),
        "with an extension named in upper case": lambda d: d.update(MyExt="x"),
        "with a time that is not one": lambda d: d.update(time="yesterday"),
        "with specversion 2.0": lambda d: d.update(specversion="2.0"),
    }
    refused = 0
    for what, spoil in breaks.items():
        document = json.loads(raw)
        spoil(document)
        try:
            FORMAT.read(None, json.dumps(document))
        except Exception:
            refused += 1
            continue
        failures.add("the SDK itself", f"takes an event {what}: {document}")
    return refused


def collect(messages, wanted, seconds, failures):
    """The emitted events by `type`, until each of `wanted` has come."""
    emitted = {}
    deadline = time.monotonic() + seconds
    while not wanted <= emitted.keys():
        try:
            raw = messages.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        try:
            kind = json.loads(raw).get("type")
        except ValueError:
            failures.add("stream", f"a message that is not JSON: {raw!r}")
            continue
        if kind in emitted or kind not in wanted:
            failures.add("stream", f"an event no case published (or twice): {raw}")
            continue
        emitted[kind] = raw
    for kind in sorted(wanted - emitted.keys()):
        failures.add(kind, "accepted, never emitted on the stream")
    return emitted


def main():
    base, trigger_id, trigger_topic = sys.argv[1:4]
    host = Host(base)
    failures = Failures()
    messages, stream_type = host.stream("std.**")
    if not stream_type.startswith("text/event-stream"):
        failures.add("stream", f"Content-Type {stream_type}")
    summary = {"sdk": f"cloudevents {cloudevents.__version__}", "cases": 0, "accepted": 0,
               "refused": 0, "emitted_parsed": 0, "round_trips": 0, "republished": 0}
    expected_by_type = {}
    for name, how, headers, body, expected in cases(trigger_id, trigger_topic):
        summary["cases"] += 1
        path = expected.get("path", "/api/events") if isinstance(expected, dict) else "/api/events"
        status, answer = host.post(path, headers, body)
        error = (answer or {}).get("error", "") if isinstance(answer, dict) else ""
        if isinstance(expected, tuple):
            _, wanted_status, words = expected
            missing = [w for w in words if w not in error]
            if status != wanted_status or missing:
                failures.add(name, f"({how}) answered {status} {answer!r}; wanted {wanted_status} "
                                   f"naming {list(words)}")
            else:
                summary["refused"] += 1
            continue
        if status != expected.get("status", 202):
            failures.add(name, f"({how}) answered {status} {answer!r}")
            continue
        summary["accepted"] += 1
        expected_by_type[expected["type"]] = (name, expected)
    emitted = collect(messages, set(expected_by_type), 30, failures)
    if emitted:
        summary["sdk_refusals"] = sdk_refuses_the_broken(next(iter(emitted.values())), failures)

    # Each emitted event, checked; then sent back as the SDK writes it.
    again = {}
    for kind, raw in emitted.items():
        name, expected = expected_by_type[kind]
        summary["emitted_parsed"] += 1
        core = check_emitted(name, raw, expected, failures)
        if core is None:
            continue
        summary["round_trips"] += 1
        topic = "std.again." + kind.replace(".", "-")
        attributes = dict(core.get_attributes(), type=topic)
        headers, body = structured(CloudEvent(attributes, core.get_data()))
        status, answer = host.post("/api/events", headers, body)
        if status != 202:
            failures.add(name, f"sent back as the SDK writes it: {status} {answer!r}: {body!r}")
            continue
        republished = dict(expected, type=topic, data=expected["data"] if expected["data"] is not None else {})
        republished["extensions"] = dict(expected["extensions"], ceid=core.get_id())
        republished["absent"] = expected["absent"] - {"ceid"}
        again[topic] = (f"{name}, sent back", republished)
    for topic, raw in collect(messages, set(again), 30, failures).items():
        name, expected = again[topic]
        summary["emitted_parsed"] += 1
        if check_emitted(name, raw, expected, failures) is not None:
            summary["republished"] += 1
    summary["failures"] = failures
    print(json.dumps(summary, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
