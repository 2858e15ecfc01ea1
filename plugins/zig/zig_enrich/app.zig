//! `zig_enrich`: a Zig factory that turns any firing into one event.
//!
//! The event's data is `{"lang": "zig", "trigger", "kind", "label",
//! "payload", "source_topic"}`: `trigger` is the trigger id, `kind` the
//! trigger kind (`cron`, `api` or `event`), `label` the `label` config value
//! (default `"none"`), `payload` the API request body as JSON (`null` when
//! there is none) and `source_topic` the topic of the source event (`null`
//! when there is none). The event goes to the trigger's own topic. A payload
//! that is not valid JSON is an error.
//!
//! World: `factory-plugin` (wit/plugin.wit). Build: plugins/build-zig.sh,
//! which compiles this file with the C bindings of plugins/c/bindings and
//! imports their header, translated by `zig translate-c`, as module `wit`.
//! The bindings call `exports_wasmsched_plugin_factory_make_events`, defined
//! here. An export owns its arguments (free them) and returns err(message)
//! by returning false with `err` set to a malloc'ed string; what it returns
//! is freed by the bindings after the call.

const std = @import("std");
const wit = @import("wit");

/// A panic traps: the host discards the instance and counts a trap. (In
/// ReleaseSafe or Debug builds the default handler prints a stack trace to
/// stderr, which makes the module import most of WASI.)
pub const panic = std.debug.no_panic;

/// The bytes of a string from the host (its pointer is not valid when empty).
fn bytes(s: wit.factory_plugin_string_t) []const u8 {
    return if (s.len == 0) "" else s.ptr[0..s.len];
}

/// A copy of `text` in malloc'ed memory, as a string the host receives (the
/// bindings free it after the call).
fn hostString(text: []const u8) wit.factory_plugin_string_t {
    const ptr: [*]u8 = @ptrCast(std.c.malloc(@max(text.len, 1)) orelse @trap());
    @memcpy(ptr[0..text.len], text);
    return .{ .ptr = ptr, .len = text.len };
}

fn log(level: wit.wasmsched_plugin_host_level_t, message: []const u8) void {
    var s: wit.factory_plugin_string_t = .{ .ptr = @constCast(message.ptr), .len = message.len };
    wit.wasmsched_plugin_host_log(level, &s);
}

/// The host's `config(key)`, copied into `arena`; null when the key is absent.
fn config(arena: std.mem.Allocator, key: []const u8) !?[]const u8 {
    var k: wit.factory_plugin_string_t = .{ .ptr = @constCast(key.ptr), .len = key.len };
    var value: wit.factory_plugin_string_t = undefined;
    if (!wit.wasmsched_plugin_host_config(&k, &value)) return null;
    defer wit.factory_plugin_string_free(&value); // strings from the host are ours to free
    return try arena.dupe(u8, bytes(value));
}

fn kindName(kind: wit.wasmsched_plugin_types_trigger_kind_t) []const u8 {
    return switch (kind) {
        wit.WASMSCHED_PLUGIN_TYPES_TRIGGER_KIND_CRON => "cron",
        wit.WASMSCHED_PLUGIN_TYPES_TRIGGER_KIND_API => "api",
        else => "event",
    };
}

/// The event's data; fields in this order, optionals as `null`.
const Data = struct {
    lang: []const u8 = "zig",
    trigger: []const u8,
    kind: []const u8,
    label: []const u8,
    payload: ?std.json.Value,
    source_topic: ?[]const u8,
};

/// What `make-events` answers: ok(the data of the one event) or err(message).
const Answer = union(enum) { ok: []const u8, err: []const u8 };

fn make(arena: std.mem.Allocator, firing: *const wit.wasmsched_plugin_types_firing_t) !Answer {
    const kind = kindName(firing.kind);
    var payload: ?std.json.Value = null;
    if (firing.payload.is_some) {
        var scanner = std.json.Scanner.initCompleteInput(arena, bytes(firing.payload.val));
        var diagnostics: std.json.Diagnostics = .{};
        scanner.enableDiagnostics(&diagnostics);
        // Numbers kept as their text, so they come out as they came in.
        payload = std.json.parseFromTokenSourceLeaky(std.json.Value, arena, &scanner, .{
            .parse_numbers = false,
            .duplicate_field_behavior = .use_last,
        }) catch |e| return .{ .err = try std.fmt.allocPrint(
            arena,
            "payload is not valid JSON: {s} at line {d} column {d}",
            .{ @errorName(e), diagnostics.getLine(), diagnostics.getColumn() },
        ) };
    }
    const trigger = bytes(firing.trigger_id);
    const data: Data = .{
        .trigger = trigger,
        .kind = kind,
        .label = try config(arena, "label") orelse "none",
        .payload = payload,
        .source_topic = if (firing.source.is_some) bytes(firing.source.val.topic) else null,
    };
    log(wit.WASMSCHED_PLUGIN_HOST_LEVEL_INFO, try std.fmt.allocPrint(
        arena,
        "zig_enrich: trigger {s} fired ({s}) at {s}",
        .{ trigger, kind, bytes(firing.instant) },
    ));
    // Compact, UTF-8 as is: the same text shape as the other plugins.
    return .{ .ok = try std.json.Stringify.valueAlloc(arena, data, .{}) };
}

export fn exports_wasmsched_plugin_factory_make_events(
    firing: *wit.exports_wasmsched_plugin_factory_firing_t,
    ret: *wit.exports_wasmsched_plugin_factory_list_new_event_t,
    err: *wit.factory_plugin_string_t,
) bool {
    defer wit.exports_wasmsched_plugin_factory_firing_free(firing); // an export owns its arguments
    var arena_state = std.heap.ArenaAllocator.init(std.heap.c_allocator);
    defer arena_state.deinit();
    const answer = make(arena_state.allocator(), firing) catch @trap(); // out of memory
    switch (answer) {
        .ok => |data| {
            // One event; topic none: publish on the trigger's own topic.
            const event: *wit.exports_wasmsched_plugin_factory_new_event_t =
                @ptrCast(@alignCast(std.c.malloc(@sizeOf(wit.exports_wasmsched_plugin_factory_new_event_t)) orelse @trap()));
            event.* = .{
                .topic = .{ .is_some = false },
                .data = hostString(data),
                .headers = .{ .ptr = null, .len = 0 },
            };
            ret.* = .{ .ptr = event, .len = 1 };
            return true;
        },
        .err => |message| {
            err.* = hostString(message);
            return false;
        },
    }
}
