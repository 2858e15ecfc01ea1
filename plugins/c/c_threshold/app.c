// `c_threshold`: the C twin of the Rust `large_dataset` filter.
//
// Accepts an event whose JSON data has a number `rows_count` greater than the
// trigger's `threshold` config (default 1000). Events without a numeric
// `rows_count` are skipped (logged at debug level). A `threshold` that is not
// a number, or event data that is not JSON, is an error.
//
// World: `filter-plugin` (wit/plugin.wit), through the wit-bindgen bindings
// in plugins/c/bindings. Build: plugins/build-c.sh
// An export owns its arguments (free them) and returns err(message) by
// returning false with *err set to a malloc'ed string, which the bindings
// free after the call.
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "filter_plugin.h"
#include "json.h"

#define DEFAULT_THRESHOLD 1000.0

static void host_log(wasmsched_plugin_host_level_t level, buf_t *message) {
    filter_plugin_string_t text = {(uint8_t *)message->ptr, message->len};
    wasmsched_plugin_host_log(level, &text);
}

// Moves the text of `b` into the string `*s` the host receives.
static void take(filter_plugin_string_t *s, buf_t *b) {
    s->ptr = (uint8_t *)b->ptr;
    s->len = b->len;
}

static bool is_space(uint8_t c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

// The number syntax Rust's `f64::from_str` accepts (minus inf/nan, which the
// Rust plugin rejects as not finite anyway):
// [+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?
static bool is_number(const uint8_t *s, size_t n) {
    size_t i = 0, digits = 0;
    if (i < n && (s[i] == '+' || s[i] == '-')) i++;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++, digits++;
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++, digits++;
    }
    if (digits == 0) return false;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        size_t exponent = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++, exponent++;
        if (exponent == 0) return false;
    }
    return i == n;
}

// s[0..n] as a double; the caller checked its syntax.
static double to_double(const uint8_t *s, size_t n) {
    char *text = malloc(n + 1);
    if (!text) abort();
    memcpy(text, s, n);
    text[n] = '\0';
    double value = strtod(text, NULL);
    free(text);
    return value;
}

// The `threshold` config value, or the default when it is absent. On a
// malformed value, false with the message in *err.
static bool threshold(double *limit, filter_plugin_string_t *err) {
    filter_plugin_string_t key, raw;
    filter_plugin_string_set(&key, "threshold");
    if (!wasmsched_plugin_host_config(&key, &raw)) {
        *limit = DEFAULT_THRESHOLD;
        return true;
    }
    size_t start = 0, end = raw.len;
    while (start < end && is_space(raw.ptr[start])) start++;
    while (end > start && is_space(raw.ptr[end - 1])) end--;
    bool ok = false;
    if (is_number(raw.ptr + start, end - start)) {
        *limit = to_double(raw.ptr + start, end - start);
        ok = isfinite(*limit);
    }
    if (!ok) {
        buf_t message = {0};
        buf_puts(&message, "config `threshold` must be a number, got ");
        json_put_string(&message, raw.ptr, raw.len);
        take(err, &message);
    }
    filter_plugin_string_free(&raw);  // strings from the host are ours to free
    return ok;
}

bool exports_wasmsched_plugin_filter_accept(exports_wasmsched_plugin_filter_event_t *event,
                                            bool *ret, filter_plugin_string_t *err) {
    const wasmsched_plugin_types_event_t *e = event;
    double limit;
    bool ok = threshold(&limit, err);
    if (ok) {
        json_parser_t parser;
        bool found;
        size_t start, end;
        json_type_t type;
        if (!json_find_member(&parser, e->data.ptr, e->data.len, "rows_count", &found, &start,
                              &end, &type)) {
            buf_t message = {0};
            buf_puts(&message, "event ");
            buf_put(&message, e->id.ptr, e->id.len);
            buf_puts(&message, ": data is not valid JSON: ");
            json_put_error(&message, &parser);
            take(err, &message);
            ok = false;
        } else if (!found || type != JSON_NUMBER) {
            buf_t message = {0};
            buf_puts(&message, "event ");
            buf_put(&message, e->id.ptr, e->id.len);
            buf_puts(&message, ": skipped, no numeric `rows_count` in data");
            host_log(WASMSCHED_PLUGIN_HOST_LEVEL_DEBUG, &message);
            free(message.ptr);
            *ret = false;
        } else {
            *ret = to_double(e->data.ptr + start, end - start) > limit;
        }
    }
    wasmsched_plugin_types_event_free(event);  // an export owns its arguments
    return ok;
}
