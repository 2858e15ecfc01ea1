//! `zig_threshold`: the Zig twin of the Rust `large_dataset` filter.
//!
//! Accepts an event whose JSON data has a number `rows_count` greater than
//! the trigger's `threshold` config (default 1000). Events without a numeric
//! `rows_count` are skipped (logged at debug level). A `threshold` that is not
//! a number, or event data that is not JSON, is an error.
//!
//! World: `filter-plugin` (wit/plugin.wit). Build: plugins/build-zig.sh,
//! which compiles this file with the C bindings of plugins/c/bindings and
//! imports their header, translated by `zig translate-c`, as module `wit`.
//! The bindings call `exports_wasmsched_plugin_filter_accept`, defined here.
//! An export owns its arguments (free them) and returns err(message) by
//! returning false with `err` set to a malloc'ed string, which the bindings
//! free after the call.

const std = @import("std");
const wit = @import("wit");

/// A panic traps: the host discards the instance and counts a trap. (In
/// ReleaseSafe or Debug builds the default handler prints a stack trace to
/// stderr, which makes the module import most of WASI.)
pub const panic = std.debug.no_panic;

const default_threshold: f64 = 1000;

/// The bytes of a string from the host (its pointer is not valid when empty).
fn bytes(s: wit.filter_plugin_string_t) []const u8 {
    return if (s.len == 0) "" else s.ptr[0..s.len];
}

/// A copy of `text` in malloc'ed memory, as a string the host receives (the
/// bindings free it after the call).
fn hostString(text: []const u8) wit.filter_plugin_string_t {
    const ptr: [*]u8 = @ptrCast(std.c.malloc(@max(text.len, 1)) orelse @trap());
    @memcpy(ptr[0..text.len], text);
    return .{ .ptr = ptr, .len = text.len };
}

fn log(level: wit.wasmsched_plugin_host_level_t, message: []const u8) void {
    var s: wit.filter_plugin_string_t = .{ .ptr = @constCast(message.ptr), .len = message.len };
    wit.wasmsched_plugin_host_log(level, &s);
}

/// The host's `config(key)`, copied into `arena`; null when the key is absent.
fn config(arena: std.mem.Allocator, key: []const u8) !?[]const u8 {
    var k: wit.filter_plugin_string_t = .{ .ptr = @constCast(key.ptr), .len = key.len };
    var value: wit.filter_plugin_string_t = undefined;
    if (!wit.wasmsched_plugin_host_config(&k, &value)) return null;
    defer wit.filter_plugin_string_free(&value); // strings from the host are ours to free
    return try arena.dupe(u8, bytes(value));
}

/// The number syntax Rust's `f64::from_str` accepts (minus inf/nan, which the
/// Rust plugin rejects as not finite anyway):
/// [+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?
fn isNumber(s: []const u8) bool {
    var i: usize = 0;
    var digits: usize = 0;
    if (i < s.len and (s[i] == '+' or s[i] == '-')) i += 1;
    while (i < s.len and std.ascii.isDigit(s[i])) : (i += 1) digits += 1;
    if (i < s.len and s[i] == '.') {
        i += 1;
        while (i < s.len and std.ascii.isDigit(s[i])) : (i += 1) digits += 1;
    }
    if (digits == 0) return false;
    if (i < s.len and (s[i] == 'e' or s[i] == 'E')) {
        i += 1;
        if (i < s.len and (s[i] == '+' or s[i] == '-')) i += 1;
        const start = i;
        while (i < s.len and std.ascii.isDigit(s[i])) i += 1;
        if (i == start) return false;
    }
    return i == s.len;
}

/// What `accept` answers: ok(bool) or err(message).
const Answer = union(enum) { ok: bool, err: []const u8 };

fn decide(arena: std.mem.Allocator, event: *const wit.wasmsched_plugin_types_event_t) !Answer {
    var limit = default_threshold;
    if (try config(arena, "threshold")) |raw| {
        const text = std.mem.trim(u8, raw, " \t\n\r\x0b\x0c");
        const value = if (isNumber(text)) std.fmt.parseFloat(f64, text) catch std.math.nan(f64) else std.math.nan(f64);
        if (!std.math.isFinite(value)) {
            const quoted = try std.json.Stringify.valueAlloc(arena, raw, .{});
            return .{ .err = try std.fmt.allocPrint(arena, "config `threshold` must be a number, got {s}", .{quoted}) };
        }
        limit = value;
    }

    const id = bytes(event.id);
    var scanner = std.json.Scanner.initCompleteInput(arena, bytes(event.data));
    var diagnostics: std.json.Diagnostics = .{};
    scanner.enableDiagnostics(&diagnostics);
    // Numbers kept as their text: parsed below only when needed.
    const data = std.json.parseFromTokenSourceLeaky(std.json.Value, arena, &scanner, .{
        .parse_numbers = false,
        .duplicate_field_behavior = .use_last,
    }) catch |e| return .{ .err = try std.fmt.allocPrint(
        arena,
        "event {s}: data is not valid JSON: {s} at line {d} column {d}",
        .{ id, @errorName(e), diagnostics.getLine(), diagnostics.getColumn() },
    ) };

    const rows: ?std.json.Value = if (data == .object) data.object.get("rows_count") else null;
    if (rows == null or rows.? != .number_string) {
        log(wit.WASMSCHED_PLUGIN_HOST_LEVEL_DEBUG, try std.fmt.allocPrint(
            arena,
            "event {s}: skipped, no numeric `rows_count` in data",
            .{id},
        ));
        return .{ .ok = false };
    }
    const count = try std.fmt.parseFloat(f64, rows.?.number_string);
    return .{ .ok = count > limit };
}

export fn exports_wasmsched_plugin_filter_accept(
    event: *wit.exports_wasmsched_plugin_filter_event_t,
    ret: *bool,
    err: *wit.filter_plugin_string_t,
) bool {
    defer wit.wasmsched_plugin_types_event_free(event); // an export owns its arguments
    var arena_state = std.heap.ArenaAllocator.init(std.heap.c_allocator);
    defer arena_state.deinit();
    const answer = decide(arena_state.allocator(), event) catch @trap(); // out of memory
    switch (answer) {
        .ok => |accepted| {
            ret.* = accepted;
            return true;
        },
        .err => |message| {
            err.* = hostString(message);
            return false;
        },
    }
}
