// `js_threshold`: the JavaScript twin of the Rust `large_dataset` filter.
//
// Accepts an event whose JSON data has a number `rows_count` greater than
// the trigger's `threshold` config (default 1000). Events without a numeric
// `rows_count` are skipped (logged at debug level). A `threshold` that is not
// a number, or event data that is not JSON, is an error.
//
// World: `filter-plugin` (wit/plugin.wit). Build: plugins/build-js.sh
// To return `err(message)`, throw the message as a *string*: throwing an
// Error object (or any uncaught exception, e.g. a TypeError) is a trap.

import { config, log } from 'wasmsched:plugin/host@0.2.0';

const DEFAULT_THRESHOLD = 1000;

// The number syntax Rust's `f64::from_str` accepts (minus inf/nan, which the
// Rust plugin rejects as not finite anyway). JS's Number() is laxer: it
// takes "" (as 0), "0x10" and "Infinity".
const NUMBER = /^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;

/** The `threshold` config value, or the default when it is absent. */
function threshold() {
  const raw = config('threshold');
  if (raw === undefined || raw === null) return DEFAULT_THRESHOLD;
  const text = raw.trim();
  if (NUMBER.test(text)) {
    const value = Number(text);
    if (Number.isFinite(value)) return value;
  }
  throw `config \`threshold\` must be a number, got ${JSON.stringify(raw)}`;
}

export const filter = {
  accept(event) {
    const limit = threshold();
    let data;
    try {
      data = JSON.parse(event.data);
    } catch (e) {
      throw `event ${event.id}: data is not valid JSON: ${e.message}`;
    }
    const rows =
      data !== null && typeof data === 'object' && !Array.isArray(data)
        ? data.rows_count
        : undefined;
    if (typeof rows !== 'number') {
      log('debug', `event ${event.id}: skipped, no numeric \`rows_count\` in data`);
      return false;
    }
    return rows > limit;
  },
};
