#!/usr/bin/env python3
"""A tiny OTLP/HTTP trace receiver that prints the spans it gets, for trying
wasmsched's traces without a collector (see "Traces" in the README).

Usage: python3 examples/otlp-receiver.py [PORT]     (default 4318)
Then:  OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 wasmsched run

It accepts POST /v1/traces with protobuf bodies (what wasmsched sends),
decodes the few fields it prints by hand (the standard library has no
protobuf), and prints one line per span: trace id, span id, parent span id
(`-` for a root) and name. Python 3.8+, no dependencies.
"""

import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


def fields(buf):
    """Yields (field number, wire type, value) of a protobuf message."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            length, i = varint(buf, i)
            value, i = buf[i:i + length], i + length
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def varint(buf, i):
    shift = result = 0
    while True:
        byte = buf[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, i
        shift += 7


def service_name(resource):
    # Resource{1: KeyValue{1: key, 2: AnyValue{1: string_value}}}
    for number, _, attribute in fields(resource):
        if number != 1:
            continue
        parts = dict((n, v) for n, _, v in fields(attribute))
        if parts.get(1) == b"service.name":
            value = dict((n, v) for n, _, v in fields(parts.get(2, b"")))
            return value.get(1, b"").decode()
    return "?"


def spans(request):
    # ExportTraceServiceRequest{1: ResourceSpans{1: Resource, 2: ScopeSpans{2: Span}}}
    for number, _, resource_spans in fields(request):
        if number != 1:
            continue
        service = "?"
        for n, _, part in fields(resource_spans):
            if n == 1:
                service = service_name(part)
            elif n == 2:
                for m, _, span in fields(part):
                    if m == 2:
                        # Span{1: trace_id, 2: span_id, 4: parent_span_id, 5: name}
                        s = dict((k, v) for k, _, v in fields(span))
                        yield service, s.get(1, b"").hex(), s.get(2, b"").hex(), \
                            s.get(4, b"").hex() or "-", s.get(5, b"").decode()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.path == "/v1/traces":
            for service, trace, span, parent, name in spans(body):
                print(f"{service} trace {trace} span {span} parent {parent:16} {name}", flush=True)
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 4318
    print(f"receiving OTLP/HTTP traces on http://127.0.0.1:{port}/v1/traces", flush=True)
    HTTPServer(("127.0.0.1", port), Handler).serve_forever()
