"""`py_enrich`: a Python factory that turns any firing into one event.

The event's data is `{"lang": "python", "trigger", "kind", "label",
"payload", "source_topic"}`: `trigger` is the trigger id, `kind` the trigger
kind (`cron`, `api` or `event`), `label` the `label` config value (default
`"none"`), `payload` the API request body parsed as JSON (`null` when there
is none) and `source_topic` the topic of the source event (`null` when there
is none). The event goes to the trigger's own topic. A payload that is not
valid JSON is an error.

World: `factory-plugin` (wit/plugin.wit). Build: plugins/build-python.sh
To return `err(message)`, raise `componentize_py_types.Err(message)`; any
other exception is a trap.
"""

import json
from typing import List

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host
from wit_world.imports.types import Firing, NewEvent, TriggerKind

_KIND_NAMES = {
    TriggerKind.CRON: "cron",
    TriggerKind.API: "api",
    TriggerKind.EVENT: "event",
}


def _reject_constant(name: str) -> float:
    # json.loads accepts NaN/Infinity/-Infinity by default; JSON does not.
    raise ValueError(f"invalid JSON literal {name}")


class Factory(exports.Factory):
    def make_events(self, firing: Firing) -> List[NewEvent]:
        kind = _KIND_NAMES[firing.kind]
        payload = None
        if firing.payload is not None:
            try:
                payload = json.loads(firing.payload, parse_constant=_reject_constant)
            except ValueError as e:
                raise Err(f"payload is not valid JSON: {e}")
        label = host.config("label")
        data = {
            "lang": "python",
            "trigger": firing.trigger_id,
            "kind": kind,
            "label": "none" if label is None else label,
            "payload": payload,
            "source_topic": None if firing.source is None else firing.source.topic,
        }
        host.log(
            host.Level.INFO,
            f"py_enrich: trigger {firing.trigger_id} fired ({kind}) at {firing.instant}",
        )
        # Compact, UTF-8 as is: the same text shape as the Rust and JS plugins.
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        # topic=None: publish on the trigger's own topic.
        return [NewEvent(topic=None, data=text, headers=[])]
