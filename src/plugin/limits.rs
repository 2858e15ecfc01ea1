//! Per-plugin budgets ([`Limits`]: time and memory per call) and the
//! store limiter that enforces the memory budget.
//!
//! In manifests: `timeout = "250ms"` (or a number of milliseconds) and
//! `memory_bytes = "128MiB"` (or a number of bytes).

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// Time and memory a plugin may use per call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock time for one call (instantiation included); default 100 ms.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// Linear memory of one instance, all its memories together; default 64 MiB.
    #[serde(alias = "memory", deserialize_with = "bytes")]
    pub memory_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(100),
            memory_bytes: 64 << 20,
        }
    }
}

impl Limits {
    /// Checks the limits against what the engine can offer.
    pub(crate) fn validate(&self, max_memory_bytes: u64) -> Result<(), String> {
        if self.timeout.is_zero() {
            return Err("timeout must be more than 0".into());
        }
        if self.memory_bytes < 64 << 10 {
            return Err(format!(
                "memory_bytes must be at least one wasm page (64 KiB), got {}",
                self.memory_bytes
            ));
        }
        if self.memory_bytes > max_memory_bytes {
            return Err(format!(
                "memory_bytes {} is more than this runtime allows ({})",
                super::error::human_bytes(self.memory_bytes),
                super::error::human_bytes(max_memory_bytes)
            ));
        }
        Ok(())
    }
}

/// Enforces [`Limits::memory_bytes`] over all memories of a store, and
/// remembers a refusal so the call's failure is reported as
/// "out of memory" whatever the guest did next (trap, abort, or error).
pub(crate) struct MemoryLimiter {
    limit: usize,
    used: usize,
    /// The last growth granted, undone if the grow then failed.
    last_grant: usize,
    refused: bool,
}

/// The error a refused memory growth traps with.
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {limit} bytes reached (wanted {wanted} bytes)")]
pub(crate) struct MemoryCapReached {
    limit: usize,
    wanted: usize,
}

impl MemoryLimiter {
    pub(crate) fn new(limit: u64) -> Self {
        Self {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            used: 0,
            last_grant: 0,
            refused: false,
        }
    }

    /// Whether a growth was refused during this store's life.
    pub(crate) fn refused(&self) -> bool {
        self.refused
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let grow = desired.saturating_sub(current);
        let wanted = self.used.saturating_add(grow);
        if wanted > self.limit || maximum.is_some_and(|max| desired > max) {
            self.refused = true;
            return Err(MemoryCapReached {
                limit: self.limit,
                wanted,
            }
            .into());
        }
        self.used = wanted;
        self.last_grant = grow;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        // The OS or the pooling allocator said no: give back the grant and
        // let the guest see a failed `memory.grow`.
        self.used = self.used.saturating_sub(self.last_grant);
        self.last_grant = 0;
        self.refused = true;
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(maximum.is_none_or(|max| desired <= max))
    }
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Duration;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a duration such as \"250ms\" or \"2s\", or a number of milliseconds")
        }
        fn visit_u64<E: de::Error>(self, ms: u64) -> Result<Duration, E> {
            Ok(Duration::from_millis(ms))
        }
        fn visit_i64<E: de::Error>(self, ms: i64) -> Result<Duration, E> {
            u64::try_from(ms)
                .map(Duration::from_millis)
                .map_err(|_| E::custom("timeout must not be negative"))
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
            parse_duration(text).map_err(E::custom)
        }
    }
    deserializer.deserialize_any(V)
}

fn bytes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a size such as \"64MiB\", or a number of bytes")
        }
        fn visit_u64<E: de::Error>(self, n: u64) -> Result<u64, E> {
            Ok(n)
        }
        fn visit_i64<E: de::Error>(self, n: i64) -> Result<u64, E> {
            u64::try_from(n).map_err(|_| E::custom("memory_bytes must not be negative"))
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<u64, E> {
            parse_bytes(text).map_err(E::custom)
        }
    }
    deserializer.deserialize_any(V)
}

/// `"250ms"`, `"2s"`, `"1.5s"`, `"1m"`; a bare number is milliseconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = split_unit(text);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}; use e.g. \"250ms\" or \"2s\""))?;
    let seconds = match unit {
        "" | "ms" => value / 1000.0,
        "s" => value,
        "m" | "min" => value * 60.0,
        "us" | "µs" => value / 1_000_000.0,
        _ => return Err(format!("unknown unit in duration {text:?}; use ms, s or m")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("invalid duration {text:?}"))
}

/// `"64MiB"`, `"512 KiB"`, `"1GiB"`, `"100MB"`; a bare number is bytes.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let (number, unit) = split_unit(text);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid size {text:?}; use e.g. \"64MiB\""))?;
    let scale: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kib" | "k" => 1024.0,
        "mib" | "m" => 1024.0 * 1024.0,
        "gib" | "g" => 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        _ => {
            return Err(format!(
                "unknown unit in size {text:?}; use KiB, MiB or GiB"
            ));
        }
    };
    let bytes = value * scale;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("invalid size {text:?}"));
    }
    Ok(bytes as u64)
}

fn split_unit(text: &str) -> (&str, &str) {
    let text = text.trim();
    let at = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    (text[..at].trim(), text[at..].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(
            parse_duration("1.5 s").unwrap(),
            Duration::from_millis(1500)
        );
        assert!(parse_duration("fast").is_err());
        assert_eq!(parse_bytes("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("512 KiB").unwrap(), 512 << 10);
        assert_eq!(parse_bytes("1000").unwrap(), 1000);
        assert!(parse_bytes("lots").is_err());
    }

    #[test]
    fn deserializes_from_toml() {
        let limits: Limits =
            toml::from_str("timeout = \"250ms\"\nmemory_bytes = \"128MiB\"").unwrap();
        assert_eq!(limits.timeout, Duration::from_millis(250));
        assert_eq!(limits.memory_bytes, 128 << 20);
        let limits: Limits = toml::from_str("timeout = 50").unwrap();
        assert_eq!(limits.timeout, Duration::from_millis(50));
        assert_eq!(limits.memory_bytes, Limits::default().memory_bytes);
        assert!(toml::from_str::<Limits>("time = 5").is_err());
    }

    #[test]
    fn limiter_caps_the_total_and_remembers() {
        use wasmtime::ResourceLimiter;
        let mut limiter = MemoryLimiter::new(1 << 20);
        assert!(limiter.memory_growing(0, 512 << 10, None).unwrap());
        assert!(limiter.memory_growing(0, 256 << 10, None).unwrap());
        assert!(!limiter.refused());
        let error = limiter
            .memory_growing(512 << 10, 1 << 20, None)
            .unwrap_err();
        assert!(error.is::<MemoryCapReached>());
        assert!(limiter.refused());
    }
}
