// `js_enrich`: a JavaScript factory that turns any firing into one event.
//
// The event's data is `{"lang": "js", "trigger", "kind", "label", "payload",
// "source_topic"}`: `trigger` is the trigger id, `kind` the trigger kind
// (`cron`, `api` or `event`), `label` the `label` config value (default
// `"none"`), `payload` the API request body parsed as JSON (`null` when there
// is none) and `source_topic` the topic of the source event (`null` when
// there is none). The event goes to the trigger's own topic. A payload that
// is not valid JSON is an error.
//
// World: `factory-plugin` (wit/plugin.wit). Build: plugins/build-js.sh
// To return `err(message)`, throw the message as a *string*: throwing an
// Error object (or any uncaught exception, e.g. a TypeError) is a trap.

import { config, log } from 'wasmsched:plugin/host@0.2.0';

const isNone = (v) => v === undefined || v === null;

export const factory = {
  makeEvents(firing) {
    // WIT enum values arrive as their names: 'cron', 'api' or 'event'.
    const kind = firing.kind;
    let payload = null;
    if (!isNone(firing.payload)) {
      try {
        payload = JSON.parse(firing.payload);
      } catch (e) {
        throw `payload is not valid JSON: ${e.message}`;
      }
    }
    const label = config('label');
    const data = {
      lang: 'js',
      trigger: firing.triggerId,
      kind,
      label: isNone(label) ? 'none' : label,
      payload,
      source_topic: isNone(firing.source) ? null : firing.source.topic,
    };
    log('info', `js_enrich: trigger ${firing.triggerId} fired (${kind}) at ${firing.instant}`);
    // topic: undefined = none, i.e. the trigger's own topic.
    return [{ topic: undefined, data: JSON.stringify(data), headers: [] }];
  },
};
