"""schemathesis hooks for tests/schemathesis.rs (named in schemathesis.toml).

The schemas of topics spell out every letter and digit of Unicode (what the
host takes) as one character class, and Hypothesis turns a class into a
strategy one character at a time: seconds, again for every operation and
phase. `_strategy` below builds each large class once and keeps it (a
strategy is a description, used again as it is); what it draws is the same.

And two filters on the cases schemathesis makes: the one rule of a trigger
table JSON Schema cannot state (`debounce.max_wait` is at least
`debounce.period`; the host refuses the others with 422, naming the keys),
and CloudEvents whose `type` or `specversion` is a fraction (see there).
"""

import re

import schemathesis
from hypothesis.strategies._internal import regex as _regex

_built = {}
_build = _regex._strategy


def _strategy(codes, context, is_unicode, *, alphabet):
    large_class = (
        isinstance(codes, tuple) and codes[0] == _regex.sre.IN and len(codes[1]) > 64
    )
    if not large_class:
        return _build(codes, context, is_unicode, alphabet=alphabet)
    key = (repr(codes[1]), int(context.flags), is_unicode, repr(alphabet))
    if key not in _built:
        _built[key] = _build(codes, context, is_unicode, alphabet=alphabet)
    return _built[key]


_regex._strategy = _strategy

# A duration as the host writes it (src/units.rs): a number and a unit, or
# a number of milliseconds.
_SECONDS = {"": 1e-3, "ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0,
            "d": 86400.0, "us": 1e-6, "\u00b5s": 1e-6, "ns": 1e-9}
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]*)\s*([a-z\u00b5]*)\s*$")


def _seconds(value):
    """The duration `value` stands for, in seconds; `None` if unreadable."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value / 1000
    if not isinstance(value, str):
        return None
    match = _DURATION.match(value)
    if match is None or match.group(2) not in _SECONDS:
        return None
    try:
        return float(match.group(1)) * _SECONDS[match.group(2)]
    except ValueError:
        return None


@schemathesis.hook("filter_case").apply_to(operation_id="add_trigger")
def debounce_within_max_wait(context, case):
    body = case.body
    debounce = body.get("debounce") if isinstance(body, dict) else None
    if not isinstance(debounce, dict):
        return True
    period, max_wait = _seconds(debounce.get("period")), _seconds(debounce.get("max_wait"))
    return period is None or max_wait is None or max_wait >= period


@schemathesis.hook("filter_case").apply_to(operation_id="publish_event")
def no_float_for_a_cloudevent_string(context, case):
    """A structured CloudEvent whose `type` or `specversion` is a fraction.

    The host reads an attribute that is not a string as its JSON text, so
    `type: 1.5` is the topic `1.5` but `type: 1e300` (`1e+300`) no topic,
    and `specversion: 1.0` is `1.0`: which one depends on how a number is
    printed, which a schema cannot say. CloudEvents has these attributes as
    strings; that the host takes other JSON for them is reported.
    """
    body = case.body
    if case.media_type != "application/cloudevents+json" or not isinstance(body, dict):
        return True
    return not any(isinstance(body.get(name), float) for name in ("type", "specversion"))
