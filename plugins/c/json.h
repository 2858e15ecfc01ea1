// json.h: the little JSON the C example plugins need, in one header.
//
// * buf_t: a growing byte buffer (malloc'ed: hand its bytes to the host as
//   a string, which frees them after the call).
// * json_put_string: a string as JSON text, quoted and escaped.
// * json_check / json_find_member: validate a JSON document (RFC 8259,
//   nesting depth at most JSON_MAX_DEPTH) and find a member of its
//   top-level object.
// * json_put_compact: a valid document without its insignificant whitespace.
//
// Strings from the host are (pointer, length) pairs, not NUL-terminated, so
// everything here takes a pointer and a length.
#ifndef WASMSCHED_EXAMPLE_JSON_H
#define WASMSCHED_EXAMPLE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------- buffer

typedef struct {
    char *ptr;
    size_t len, cap;
} buf_t;

static inline void buf_reserve(buf_t *b, size_t more) {
    if (b->len + more <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + more) cap *= 2;
    char *ptr = realloc(b->ptr, cap);
    if (!ptr) abort();
    b->ptr = ptr;
    b->cap = cap;
}

static inline void buf_put(buf_t *b, const void *bytes, size_t n) {
    if (n == 0) return;
    buf_reserve(b, n);
    memcpy(b->ptr + b->len, bytes, n);
    b->len += n;
}

static inline void buf_puts(buf_t *b, const char *s) { buf_put(b, s, strlen(s)); }

// `n` in decimal.
static inline void buf_put_size(buf_t *b, size_t n) {
    char digits[24];
    size_t i = sizeof digits;
    do digits[--i] = (char)('0' + n % 10); while ((n /= 10) > 0);
    buf_put(b, digits + i, sizeof digits - i);
}

// `s` as a JSON string: quoted, with `"`, `\` and control characters
// escaped; other bytes (UTF-8) as they are.
static inline void json_put_string(buf_t *b, const uint8_t *s, size_t n) {
    buf_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        switch (c) {
        case '"': buf_puts(b, "\\\""); break;
        case '\\': buf_puts(b, "\\\\"); break;
        case '\n': buf_puts(b, "\\n"); break;
        case '\r': buf_puts(b, "\\r"); break;
        case '\t': buf_puts(b, "\\t"); break;
        case '\b': buf_puts(b, "\\b"); break;
        case '\f': buf_puts(b, "\\f"); break;
        default:
            if (c < 0x20) {
                char escape[] = {'\\', 'u', '0', '0', "0123456789abcdef"[c >> 4],
                                 "0123456789abcdef"[c & 15]};
                buf_put(b, escape, sizeof escape);
            } else {
                buf_put(b, &c, 1);
            }
        }
    }
    buf_put(b, "\"", 1);
}

// ---------------------------------------------------------------- parsing

#define JSON_MAX_DEPTH 128

typedef enum {
    JSON_NULL,
    JSON_BOOL,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT,
} json_type_t;

typedef struct {
    const uint8_t *s;
    size_t len, pos;
    const char *error;  // set on the first error; pos is where it is
} json_parser_t;

// The error as "what at line L column C" (column in bytes, from 1), into `b`.
static inline void json_put_error(buf_t *b, const json_parser_t *p) {
    size_t line = 1, column = 1;
    for (size_t i = 0; i < p->pos && i < p->len; i++) {
        if (p->s[i] == '\n') line++, column = 1;
        else column++;
    }
    buf_puts(b, p->error);
    buf_puts(b, " at line ");
    buf_put_size(b, line);
    buf_puts(b, " column ");
    buf_put_size(b, column);
}

static inline bool json_fail(json_parser_t *p, const char *error) {
    if (!p->error) p->error = error;
    return false;
}

static inline void json_skip_ws(json_parser_t *p) {
    while (p->pos < p->len) {
        uint8_t c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static inline bool json_literal(json_parser_t *p, const char *word) {
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
        return json_fail(p, "expected value");
    p->pos += n;
    return true;
}

static inline bool json_digits(json_parser_t *p) {
    size_t start = p->pos;
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
    return p->pos > start || json_fail(p, "expected digit");
}

static inline bool json_number(json_parser_t *p) {
    if (p->s[p->pos] == '-') p->pos++;
    if (p->pos < p->len && p->s[p->pos] == '0') p->pos++;
    else if (!json_digits(p)) return false;
    if (p->pos < p->len && p->s[p->pos] == '.') {
        p->pos++;
        if (!json_digits(p)) return false;
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-')) p->pos++;
        if (!json_digits(p)) return false;
    }
    return true;
}

static inline int json_hex4(const uint8_t *s) {
    int value = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t c = s[i];
        int digit = c >= '0' && c <= '9'   ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                           : -1;
        if (digit < 0) return -1;
        value = value * 16 + digit;
    }
    return value;
}

static inline void json_put_utf8(buf_t *b, uint32_t cp) {
    uint8_t out[4];
    size_t n;
    if (cp < 0x80) out[0] = (uint8_t)cp, n = 1;
    else if (cp < 0x800) out[0] = 0xC0 | (cp >> 6), out[1] = 0x80 | (cp & 0x3F), n = 2;
    else if (cp < 0x10000)
        out[0] = 0xE0 | (cp >> 12), out[1] = 0x80 | ((cp >> 6) & 0x3F),
        out[2] = 0x80 | (cp & 0x3F), n = 3;
    else
        out[0] = 0xF0 | (cp >> 18), out[1] = 0x80 | ((cp >> 12) & 0x3F),
        out[2] = 0x80 | ((cp >> 6) & 0x3F), out[3] = 0x80 | (cp & 0x3F), n = 4;
    buf_put(b, out, n);
}

// A string at pos (which holds `"`); its decoded bytes go to `out` unless
// it is NULL.
static inline bool json_string(json_parser_t *p, buf_t *out) {
    p->pos++;  // the opening quote
    for (;;) {
        if (p->pos >= p->len) return json_fail(p, "EOF while parsing a string");
        uint8_t c = p->s[p->pos];
        if (c == '"') {
            p->pos++;
            return true;
        }
        if (c < 0x20) return json_fail(p, "control character in string");
        if (c != '\\') {
            if (out) buf_put(out, &c, 1);
            p->pos++;
            continue;
        }
        if (p->pos + 1 >= p->len) return json_fail(p, "EOF while parsing a string");
        uint8_t e = p->s[p->pos + 1];
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            static const char decoded[] = "\"\\/\b\f\n\r\t";
            if (out) buf_put(out, &decoded[simple - "\"\\/bfnrt"], 1);
            p->pos += 2;
            continue;
        }
        if (e != 'u') return json_fail(p, "invalid escape");
        int cp = p->len - p->pos >= 6 ? json_hex4(p->s + p->pos + 2) : -1;
        if (cp < 0) return json_fail(p, "invalid \\u escape");
        p->pos += 6;
        // A surrogate pair: \uD83D\uDE00.
        if (cp >= 0xD800 && cp < 0xDC00 && p->len - p->pos >= 6 && p->s[p->pos] == '\\' &&
            p->s[p->pos + 1] == 'u') {
            int low = json_hex4(p->s + p->pos + 2);
            if (low >= 0xDC00 && low < 0xE000) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                p->pos += 6;
            }
        }
        if (out) json_put_utf8(out, (uint32_t)cp);
    }
}

static inline bool json_value(json_parser_t *p, int depth, json_type_t *type);

// The members of an object or the items of an array, after the opening
// bracket. With `key` set, the value of the last member of this object
// named `key` is reported through *found, *start, *end and *type.
static inline bool json_container(json_parser_t *p, int depth, bool object, const char *key,
                           bool *found, size_t *start, size_t *end, json_type_t *found_type) {
    uint8_t close = object ? '}' : ']';
    buf_t name = {0};
    bool ok = false;
    json_skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        return true;
    }
    for (;;) {
        bool matches = false;
        if (object) {
            json_skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != '"') {
                json_fail(p, "expected a string key");
                break;
            }
            name.len = 0;
            if (!json_string(p, key ? &name : NULL)) break;
            matches = key && name.len == strlen(key) && memcmp(name.ptr, key, name.len) == 0;
            json_skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') {
                json_fail(p, "expected `:`");
                break;
            }
            p->pos++;
        }
        json_type_t type;
        json_skip_ws(p);
        size_t value_start = p->pos;
        if (!json_value(p, depth + 1, &type)) break;
        if (matches) *found = true, *start = value_start, *end = p->pos, *found_type = type;
        json_skip_ws(p);
        if (p->pos >= p->len) {
            json_fail(p, object ? "EOF while parsing an object" : "EOF while parsing a list");
            break;
        }
        uint8_t c = p->s[p->pos++];
        if (c == close) {
            ok = true;
            break;
        }
        if (c != ',') {
            p->pos--;
            json_fail(p, object ? "expected `,` or `}`" : "expected `,` or `]`");
            break;
        }
    }
    free(name.ptr);
    return ok;
}

static inline bool json_value(json_parser_t *p, int depth, json_type_t *type) {
    json_skip_ws(p);
    if (p->pos >= p->len) return json_fail(p, "EOF while parsing a value");
    if (depth > JSON_MAX_DEPTH) return json_fail(p, "nested too deeply");
    uint8_t c = p->s[p->pos];
    switch (c) {
    case '{':
    case '[':
        *type = c == '{' ? JSON_OBJECT : JSON_ARRAY;
        p->pos++;
        return json_container(p, depth, c == '{', NULL, NULL, NULL, NULL, NULL);
    case '"': *type = JSON_STRING; return json_string(p, NULL);
    case 't': *type = JSON_BOOL; return json_literal(p, "true");
    case 'f': *type = JSON_BOOL; return json_literal(p, "false");
    case 'n': *type = JSON_NULL; return json_literal(p, "null");
    default:
        *type = JSON_NUMBER;
        if (c == '-' || (c >= '0' && c <= '9')) return json_number(p);
        return json_fail(p, "expected value");
    }
}

static inline bool json_end(json_parser_t *p) {
    json_skip_ws(p);
    return p->pos == p->len || json_fail(p, "trailing characters");
}

// Whether `s` is one valid JSON document; on false, p->error says why.
static inline bool json_check(json_parser_t *p, const uint8_t *s, size_t len) {
    *p = (json_parser_t){.s = s, .len = len};
    json_type_t type;
    return json_value(p, 0, &type) && json_end(p);
}

// Validates the document `s` and, if it is an object, finds its member
// `key` (the last one, if the name is repeated): *found tells, and
// s[*start..*end] is its value, of type *type.
static inline bool json_find_member(json_parser_t *p, const uint8_t *s, size_t len, const char *key,
                             bool *found, size_t *start, size_t *end, json_type_t *type) {
    *p = (json_parser_t){.s = s, .len = len};
    *found = false;
    json_skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == '{') {
        p->pos++;
        return json_container(p, 0, true, key, found, start, end, type) && json_end(p);
    }
    json_type_t top;
    return json_value(p, 0, &top) && json_end(p);
}

// The valid JSON document `s` without whitespace outside its strings.
static inline void json_put_compact(buf_t *b, const uint8_t *s, size_t len) {
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = s[i];
        if (in_string) {
            if (c == '\\') {
                buf_put(b, s + i, 2);  // the escape and the escaped character
                i++;
                continue;
            }
            if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            continue;
        }
        buf_put(b, &c, 1);
    }
}

#endif
