// `{{name}}`: a wasmsched plugin that turns every firing of its triggers
// into one event: `{"hello": <greeting>, "trigger": <trigger id>, "kind":
// "cron"|"api"|"event", "at": <instant>}`, published on the trigger's topic.
// `greeting` is the trigger's `greeting` config (`{{name}}.toml`), default
// `"world"`.
//
// The contract is `wit/plugin.wit`; this plugin implements the
// `factory-plugin` world (`export const factory`). To filter events too, add
// `export const filter = { accept(event) { return true; } }` and build the
// `plugin` world (set `world` in build.sh). Field names are camelCase
// (`firing.triggerId`), enums are strings ('cron'), an absent option is
// undefined. To return `err(message)` (logged, nothing published), throw the
// message as a *string*; throwing an Error object is a trap.
//
// The plugin is sandboxed: console.log goes nowhere, Date.now() returns the
// build time and Math.random() repeats itself. Log with `log('info', ...)`.

import { config, log } from 'wasmsched:plugin/host@0.2.0';

export const factory = {
  makeEvents(firing) {
    const greeting = config('greeting');
    const kind = firing.kind;
    log('info', `{{name}}: trigger ${firing.triggerId} fired (${kind}) at ${firing.instant}`);
    const data = {
      hello: greeting === undefined || greeting === null ? 'world' : greeting,
      trigger: firing.triggerId,
      kind,
      at: firing.instant,
    };
    // topic: undefined = the trigger's own topic.
    return [{ topic: undefined, data: JSON.stringify(data), headers: [] }];
  },
};
