//! What can go wrong loading a plugin ([`PluginError`]) or calling one
//! ([`CallError`]). Every message is one line and names the plugin.

use std::path::PathBuf;
use std::time::Duration;

/// Why a plugin could not be loaded or bound to a trigger.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The file could not be read.
    #[error("cannot read plugin file {}: {source}", path.display())]
    Read {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A core module, not a component.
    #[error(
        "plugin `{name}` is a core WebAssembly module, not a component; build for \
         wasm32-wasip2 or run `wasm-tools component new`"
    )]
    NotAComponent {
        /// The plugin's name (its file stem).
        name: String,
    },
    /// Not valid WebAssembly, or it did not compile.
    #[error("plugin `{name}` is not a valid WebAssembly component: {message}")]
    Compile {
        /// The plugin's name (its file stem).
        name: String,
        /// What went wrong, in one line.
        message: String,
    },
    /// It imports an interface the host does not grant.
    #[error(
        "plugin `{name}` imports `{import}`, which wasmsched does not grant \
         (no files, sockets or network)"
    )]
    ImportNotGranted {
        /// The plugin's name (its file stem).
        name: String,
        /// The interface it imports.
        import: String,
    },
    /// It imports an interface its manifest does not grant.
    #[error(
        "plugin `{name}` imports `{import}`, which needs a grant: add `{key}` to the \
         `[plugin]` table of plugins/{name}.toml"
    )]
    NeedsGrant {
        /// The plugin's name (its file stem).
        name: String,
        /// The interface it imports.
        import: String,
        /// The manifest key that grants it.
        key: &'static str,
    },
    /// A secret granted in the manifest could not be read.
    #[error("plugin `{name}`: secret `{secret}` ({source_name}): {message}")]
    Secret {
        /// The plugin's name (its file stem).
        name: String,
        /// The secret's name.
        secret: String,
        /// Where it is read from (`env NAME` or `file PATH`), never the value.
        source_name: String,
        /// What went wrong.
        message: String,
    },
    /// It exports neither a factory nor a filter.
    #[error(
        "plugin `{name}` exports neither `wasmsched:plugin/factory` nor \
         `wasmsched:plugin/filter` of wasmsched:plugin@0.1.x or 0.2.x (it exports: {})",
        list_or_nothing(found)
    )]
    MissingExports {
        /// The plugin's name (its file stem).
        name: String,
        /// What was found instead.
        found: Vec<String>,
    },
    /// It was built for another version of the contract.
    #[error(
        "plugin `{name}` was built for `{found}`, but this wasmsched speaks \
         wasmsched:plugin@0.1.x and 0.2.x; rebuild it against wit/plugin.wit"
    )]
    IncompatibleVersion {
        /// The plugin's name (its file stem).
        name: String,
        /// What was found instead.
        found: String,
    },
    /// Its exports do not have the contract's types.
    #[error("plugin `{name}` does not fit the wasmsched:plugin contract: {message}")]
    Contract {
        /// The plugin's name (its file stem).
        name: String,
        /// What went wrong, in one line.
        message: String,
    },
    /// Its limits are out of range.
    #[error("plugin `{name}` has invalid limits: {message}")]
    InvalidLimits {
        /// The plugin's name (its file stem).
        name: String,
        /// What went wrong, in one line.
        message: String,
    },
    /// A factory was asked of a plugin without one.
    #[error("plugin `{name}` exports no `wasmsched:plugin/factory`, so it cannot make events")]
    NoFactory {
        /// The plugin's name (its file stem).
        name: String,
    },
    /// A filter was asked of a plugin without one.
    #[error("plugin `{name}` exports no `wasmsched:plugin/filter`, so it cannot filter events")]
    NoFilter {
        /// The plugin's name (its file stem).
        name: String,
    },
    /// No plugin of this name is loaded.
    #[error("plugin `{name}` is not loaded")]
    NotLoaded {
        /// The plugin's name (its file stem).
        name: String,
    },
    /// The engine could not start (the reason).
    #[error("the WebAssembly engine could not start: {0}")]
    Engine(String),
    /// The plugin failed while being instantiated at load time (its start
    /// code trapped, ran out of time or memory).
    #[error(transparent)]
    Call(#[from] CallError),
}

/// Why one call into a plugin failed. The plugin instance is discarded
/// either way; the next call gets a fresh one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The plugin returned `err(message)`.
    #[error("plugin `{plugin}` failed: {message}")]
    Failed {
        /// The plugin's name.
        plugin: String,
        /// What went wrong, in one line.
        message: String,
    },
    /// The plugin trapped (a panic, `unreachable`, a bad memory access, ...).
    #[error("plugin `{plugin}` trapped: {message}")]
    Trap {
        /// The plugin's name.
        plugin: String,
        /// What went wrong, in one line.
        message: String,
    },
    /// The call ran past its time limit.
    #[error("plugin `{plugin}` ran out of time (limit {limit:?})")]
    Timeout {
        /// The plugin's name.
        plugin: String,
        /// The limit it ran into.
        limit: Duration,
    },
    /// The call took longer than its wall-clock limit, waits included
    /// (e.g. on a server that never answers).
    #[error("plugin `{plugin}` ran past its wall-clock limit ({limit:?}, waits included)")]
    WallTimeout {
        /// The plugin's name.
        plugin: String,
        /// The limit it ran into (`wall_timeout`).
        limit: Duration,
    },
    /// The call needed more memory than its limit.
    #[error("plugin `{plugin}` ran out of memory (limit {})", human_bytes(*limit_bytes))]
    MemoryExhausted {
        /// The plugin's name.
        plugin: String,
        /// The memory limit, in bytes.
        limit_bytes: u64,
    },
    /// The plugin returned something the host cannot use: event data that is
    /// not JSON, or an invalid topic.
    #[error("plugin `{plugin}` returned bad data: {message}")]
    BadData {
        /// The plugin's name.
        plugin: String,
        /// What went wrong, in one line.
        message: String,
    },
}

impl CallError {
    /// The plugin the call went to.
    pub fn plugin(&self) -> &str {
        match self {
            CallError::Failed { plugin, .. }
            | CallError::Trap { plugin, .. }
            | CallError::Timeout { plugin, .. }
            | CallError::WallTimeout { plugin, .. }
            | CallError::MemoryExhausted { plugin, .. }
            | CallError::BadData { plugin, .. } => plugin,
        }
    }
}

fn list_or_nothing(names: &[String]) -> String {
    if names.is_empty() {
        "nothing".to_owned()
    } else {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `67108864` -> `64 MiB`; exact byte counts otherwise.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (size, unit) in UNITS {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{} {unit}", bytes / size);
        }
    }
    format!("{bytes} bytes")
}

/// A wasmtime error as one line: its chain of messages without the wasm
/// backtrace (which is multi-line and for debugging only), never `{:?}`
/// (which prints host backtraces when RUST_BACKTRACE is set).
pub(crate) fn one_line(error: &wasmtime::Error) -> String {
    if let Some(trap) = error.downcast_ref::<wasmtime::Trap>() {
        return flatten(&trap.to_string());
    }
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if text.contains("wasm backtrace") {
            continue;
        }
        let text = flatten(&text);
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    if parts.is_empty() {
        flatten(&error.root_cause().to_string())
    } else {
        parts.join(": ")
    }
}

fn flatten(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(64 << 20), "64 MiB");
        assert_eq!(human_bytes(1 << 30), "1 GiB");
        assert_eq!(human_bytes(1000), "1000 bytes");
    }

    #[test]
    fn one_line_drops_newlines_and_backtraces() {
        let error = wasmtime::Error::msg("inner\nline two").context("outer");
        assert_eq!(one_line(&error), "outer: inner line two");
    }
}
