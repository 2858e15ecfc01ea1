// `c_enrich`: a C factory that turns any firing into one event.
//
// The event's data is `{"lang": "c", "trigger", "kind", "label", "payload",
// "source_topic"}`: `trigger` is the trigger id, `kind` the trigger kind
// (`cron`, `api` or `event`), `label` the `label` config value (default
// `"none"`), `payload` the API request body as JSON (`null` when there is
// none) and `source_topic` the topic of the source event (`null` when there
// is none). The event goes to the trigger's own topic. A payload that is not
// valid JSON is an error.
//
// World: `factory-plugin` (wit/plugin.wit), through the wit-bindgen bindings
// in plugins/c/bindings. Build: plugins/build-c.sh
// An export owns its arguments (free them) and returns err(message) by
// returning false with *err set to a malloc'ed string; what it returns is
// freed by the bindings after the call.
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "factory_plugin.h"
#include "json.h"

static const char *kind_name(wasmsched_plugin_types_trigger_kind_t kind) {
    switch (kind) {
    case WASMSCHED_PLUGIN_TYPES_TRIGGER_KIND_CRON: return "cron";
    case WASMSCHED_PLUGIN_TYPES_TRIGGER_KIND_API: return "api";
    default: return "event";
    }
}

bool exports_wasmsched_plugin_factory_make_events(
    exports_wasmsched_plugin_factory_firing_t *firing,
    exports_wasmsched_plugin_factory_list_new_event_t *ret, factory_plugin_string_t *err) {
    const char *kind = kind_name(firing->kind);
    buf_t data = {0};
    buf_puts(&data, "{\"lang\":\"c\",\"trigger\":");
    json_put_string(&data, firing->trigger_id.ptr, firing->trigger_id.len);
    buf_puts(&data, ",\"kind\":\"");
    buf_puts(&data, kind);
    buf_puts(&data, "\",\"label\":");

    factory_plugin_string_t key, label;
    factory_plugin_string_set(&key, "label");
    if (wasmsched_plugin_host_config(&key, &label)) {
        json_put_string(&data, label.ptr, label.len);
        factory_plugin_string_free(&label);  // strings from the host are ours to free
    } else {
        buf_puts(&data, "\"none\"");
    }

    buf_puts(&data, ",\"payload\":");
    if (firing->payload.is_some) {
        const factory_plugin_string_t *payload = &firing->payload.val;
        json_parser_t parser;
        if (!json_check(&parser, payload->ptr, payload->len)) {
            buf_t message = {0};
            buf_puts(&message, "payload is not valid JSON: ");
            json_put_error(&message, &parser);
            err->ptr = (uint8_t *)message.ptr;
            err->len = message.len;
            free(data.ptr);
            exports_wasmsched_plugin_factory_firing_free(firing);
            return false;
        }
        json_put_compact(&data, payload->ptr, payload->len);
    } else {
        buf_puts(&data, "null");
    }

    buf_puts(&data, ",\"source_topic\":");
    if (firing->source.is_some) {
        const factory_plugin_string_t *topic = &firing->source.val.topic;
        json_put_string(&data, topic->ptr, topic->len);
    } else {
        buf_puts(&data, "null");
    }
    buf_puts(&data, "}");

    buf_t line = {0};
    buf_puts(&line, "c_enrich: trigger ");
    buf_put(&line, firing->trigger_id.ptr, firing->trigger_id.len);
    buf_puts(&line, " fired (");
    buf_puts(&line, kind);
    buf_puts(&line, ") at ");
    buf_put(&line, firing->instant.ptr, firing->instant.len);
    factory_plugin_string_t text = {(uint8_t *)line.ptr, line.len};
    wasmsched_plugin_host_log(WASMSCHED_PLUGIN_HOST_LEVEL_INFO, &text);
    free(line.ptr);

    // One event; topic none: publish on the trigger's own topic.
    exports_wasmsched_plugin_factory_new_event_t *event = calloc(1, sizeof *event);
    if (!event) abort();
    event->topic.is_some = false;
    event->data.ptr = (uint8_t *)data.ptr;
    event->data.len = data.len;
    ret->ptr = event;
    ret->len = 1;
    exports_wasmsched_plugin_factory_firing_free(firing);  // an export owns its arguments
    return true;
}
