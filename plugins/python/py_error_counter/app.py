"""`py_error_counter`: counts errors per service between firings, in the
key-value store its manifest grants (`[plugin.kv]` in py_error_counter.toml).

For each event it is fired with whose `level` is the `level` config value
(default `ERROR`; case-insensitive), e.g. on `logs.**`, it adds one to the
counter `errors/<service>` (`service` from the event's data,
`"unknown"` without one) and publishes `{"service", "count", "services"}` on
the trigger's topic: the service's count so far, and how many services have
a counter. The counters live in the host's state store, so they survive
restarts and, on JetStream, are shared by every replica. A write over the
quota (max_keys, max_bytes) fails the firing with the store's message.

World: `factory-plugin` (wit/plugin.wit, wasmsched:plugin@0.2.0).
Build: plugins/build-python.sh py_error_counter
"""

import json
from typing import List

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host, kv
from wit_world.imports.types import Firing, NewEvent

PREFIX = "errors/"


def _kv_error(error: object) -> str:
    # kv.Error is a variant: Error_Denied, Error_QuotaExceeded(value), ...
    name = type(error).__name__.removeprefix("Error_")
    value = getattr(error, "value", None)
    return name if value is None else f"{name}: {value}"


class Factory(exports.Factory):
    def make_events(self, firing: Firing) -> List[NewEvent]:
        data = {}
        if firing.source is not None:
            try:
                data = json.loads(firing.source.data)
            except ValueError:
                data = {}
        if not isinstance(data, dict):
            data = {}
        wanted = (host.config("level") or "ERROR").upper()
        if str(data.get("level", "")).upper() != wanted:
            return []
        service = data.get("service")
        if not isinstance(service, str) or not service:
            service = "unknown"
        key = PREFIX + service
        try:
            count = int(kv.get(key) or "0") + 1
            kv.set(key, str(count))
            services = len(kv.list_keys(PREFIX))
        except Err as e:
            raise Err(f"key-value store: {_kv_error(e.value)}")
        host.log(host.Level.INFO, f"py_error_counter: {service} has {count} errors")
        text = json.dumps(
            {"service": service, "count": count, "services": services},
            separators=(",", ":"),
        )
        return [NewEvent(topic=None, data=text, headers=[])]
