"""`py_digest`: turns a batch of log events into one digest event.

For a batched firing (an event trigger with `batch = {...}`), it publishes
one event on the trigger's topic: `{"count", "by_service", "by_level",
"first", "last"}`: how many events the batch holds, how many per
`data.service` and per `data.level`, and the times of its first and last
event. A firing of one event (a trigger without `batch`) is a batch of one.

World: `factory-plugin` (wit/plugin.wit, wasmsched:plugin@0.2.0: batches
reach a factory as `firing.batch`). Build: plugins/build-python.sh py_digest
"""

import json
from collections import Counter
from typing import List

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host
from wit_world.imports.types import Firing, NewEvent


class Factory(exports.Factory):
    def make_events(self, firing: Firing) -> List[NewEvent]:
        events = firing.batch
        if events is None:
            events = [] if firing.source is None else [firing.source]
        if not events:
            raise Err("py_digest expects an event trigger")
        services: Counter = Counter()
        levels: Counter = Counter()
        for event in events:
            try:
                data = json.loads(event.data)
            except ValueError:
                data = {}
            if not isinstance(data, dict):
                data = {}
            services[str(data.get("service", "unknown"))] += 1
            levels[str(data.get("level", "unknown")).upper()] += 1
        digest = {
            "count": len(events),
            "by_service": dict(sorted(services.items())),
            "by_level": dict(sorted(levels.items())),
            "first": events[0].time,
            "last": events[-1].time,
        }
        host.log(host.Level.INFO, f"py_digest: {len(events)} events from {firing.trigger_id}")
        text = json.dumps(digest, separators=(",", ":"))
        return [NewEvent(topic=None, data=text, headers=[])]
