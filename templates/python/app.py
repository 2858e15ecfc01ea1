"""`{{name}}`: a wasmsched plugin that turns every firing of its triggers
into one event: `{"hello": <greeting>, "trigger": <trigger id>, "kind":
"cron"|"api"|"event", "at": <instant>}`, published on the trigger's topic.
`greeting` is the trigger's `greeting` config (`{{name}}.toml`), default
`"world"`.

The contract is `wit/plugin.wit`; this plugin implements the
`factory-plugin` world (class `Factory`). To filter events too, add a class
`Filter(exports.Filter)` with `accept(self, event) -> bool` and build the
`plugin` world (set `world` in build.sh). To return `err(message)` (logged,
nothing published), raise `componentize_py_types.Err(message)`; any other
exception traps the call.

Import every module at the top of the file: componentize-py runs the
module-level code at build time and snapshots it, and the standard library
is not available at run time. The plugin is sandboxed: print(), time.time(),
open() and os.urandom() trap; log with host.log.
"""

import json
from typing import List

from wit_world import exports
from wit_world.imports import host
from wit_world.imports.types import Firing, NewEvent, TriggerKind

_KIND_NAMES = {
    TriggerKind.CRON: "cron",
    TriggerKind.API: "api",
    TriggerKind.EVENT: "event",
}


class Factory(exports.Factory):
    def make_events(self, firing: Firing) -> List[NewEvent]:
        greeting = host.config("greeting")
        kind = _KIND_NAMES[firing.kind]
        host.log(
            host.Level.INFO,
            f"{{name}}: trigger {firing.trigger_id} fired ({kind}) at {firing.instant}",
        )
        data = {
            "hello": "world" if greeting is None else greeting,
            "trigger": firing.trigger_id,
            "kind": kind,
            "at": firing.instant,
        }
        # topic=None: publish on the trigger's own topic.
        return [NewEvent(topic=None, data=json.dumps(data), headers=[])]
