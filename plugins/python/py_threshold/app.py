"""`py_threshold`: the Python twin of the Rust `large_dataset` filter.

Accepts an event whose JSON data has a number `rows_count` greater than the
trigger's `threshold` config (default 1000). Events without a numeric
`rows_count` are skipped (logged at debug level). A `threshold` that is not a
number, or event data that is not JSON, is an error.

World: `filter-plugin` (wit/plugin.wit). Build: plugins/build-python.sh
To return `err(message)`, raise `componentize_py_types.Err(message)`; any
other exception is a trap.
"""

import json
import math
import re

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host
from wit_world.imports.types import Event

DEFAULT_THRESHOLD = 1000.0

# The number syntax Rust's `f64::from_str` accepts (minus inf/nan, which the
# Rust plugin rejects as not finite anyway). Python's float() is laxer: it
# also takes `1_000` and non-ASCII digits.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _reject_constant(name: str) -> float:
    # json.loads accepts NaN/Infinity/-Infinity by default; JSON does not.
    raise ValueError(f"invalid JSON literal {name}")


def threshold() -> float:
    """The `threshold` config value, or the default when it is absent."""
    raw = host.config("threshold")
    if raw is None:
        return DEFAULT_THRESHOLD
    text = raw.strip()
    if _NUMBER.fullmatch(text):
        value = float(text)
        if math.isfinite(value):
            return value
    raise Err(f"config `threshold` must be a number, got {json.dumps(raw)}")


class Filter(exports.Filter):
    def accept(self, event: Event) -> bool:
        limit = threshold()
        try:
            data = json.loads(event.data, parse_constant=_reject_constant)
        except ValueError as e:
            raise Err(f"event {event.id}: data is not valid JSON: {e}")
        rows = data.get("rows_count") if isinstance(data, dict) else None
        # bool is a subclass of int in Python; JSON true/false is not a number.
        if isinstance(rows, bool) or not isinstance(rows, (int, float)):
            host.log(
                host.Level.DEBUG,
                f"event {event.id}: skipped, no numeric `rows_count` in data",
            )
            return False
        return rows > limit
