//! Per-plugin budgets ([`Limits`]: time and memory per call), the store
//! limiter that enforces the memory budget, and the clock that measures a
//! call's running time ([`RunClock`]).
//!
//! In `[plugins.limits]` and a manifest's `[plugin]` table:
//! `timeout = "250ms"` (or a number of milliseconds), `wall_timeout = "30s"`
//! and `memory_bytes = "128MiB"` (or a number of bytes).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde::Deserialize;

use wasmsched_core::units::{deserialize_bytes as bytes, deserialize_duration as duration};

/// Time and memory a plugin may use per call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Running time for one call (instantiation included); default 100 ms.
    /// Time a call spends suspended, waiting for a worker while other
    /// tasks run, does not count.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// Wall-clock time for one call, waits included (an outbound HTTP
    /// request, the key-value store, a turn behind other calls); default
    /// 30 s, at least `timeout`.
    #[serde(deserialize_with = "duration")]
    pub wall_timeout: Duration,
    /// Linear memory of one instance, all its memories together; default 64 MiB.
    #[serde(alias = "memory", deserialize_with = "bytes")]
    pub memory_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(100),
            wall_timeout: Duration::from_secs(30),
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
        if self.wall_timeout < self.timeout {
            return Err(format!(
                "wall_timeout ({:?}) must be at least timeout ({:?})",
                self.wall_timeout, self.timeout
            ));
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

/// A call's running time: the time spent inside polls of the call's
/// future (the guest running, or host code it calls synchronously). Time
/// suspended does not count: waiting for a worker while other tasks run,
/// or on an asynchronous host call (an HTTP response, the state store).
#[derive(Clone, Default)]
pub(crate) struct RunClock(Arc<Mutex<ClockState>>);

#[derive(Default)]
struct ClockState {
    used: Duration,
    /// When the poll under way began.
    since: Option<Instant>,
}

impl RunClock {
    /// Running time so far, the poll under way included.
    pub(crate) fn running(&self) -> Duration {
        let clock = self.0.lock().unwrap_or_else(|p| p.into_inner());
        clock.used + clock.since.map_or(Duration::ZERO, |s| s.elapsed())
    }

    fn start(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).since = Some(Instant::now());
    }

    fn stop(&self) {
        let mut clock = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(since) = clock.since.take() {
            clock.used += since.elapsed();
        }
    }

    /// `future`, with the time spent in its polls counted on this clock.
    pub(crate) fn meter<F: Future>(&self, future: F) -> Metered<F> {
        Metered {
            clock: self.clone(),
            inner: Box::pin(future),
        }
    }
}

/// A future whose polls are timed (see [`RunClock::meter`]).
pub(crate) struct Metered<F> {
    clock: RunClock,
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for Metered<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.clock.start();
        let polled = self.inner.as_mut().poll(cx);
        self.clock.stop();
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deserializes_from_toml() {
        let limits: Limits =
            toml::from_str("timeout = \"250ms\"\nmemory_bytes = \"128MiB\"").unwrap();
        assert_eq!(limits.timeout, Duration::from_millis(250));
        assert_eq!(limits.memory_bytes, 128 << 20);
        let limits: Limits = toml::from_str("timeout = 50").unwrap();
        assert_eq!(limits.timeout, Duration::from_millis(50));
        assert_eq!(limits.wall_timeout, Duration::from_secs(30));
        assert_eq!(limits.memory_bytes, Limits::default().memory_bytes);
        assert!(toml::from_str::<Limits>("time = 5").is_err());
    }

    #[test]
    fn wall_timeout_is_at_least_the_running_time() {
        let limits: Limits = toml::from_str("timeout = \"2s\"\nwall_timeout = \"1s\"").unwrap();
        let error = limits.validate(1 << 30).unwrap_err();
        assert!(error.contains("wall_timeout"), "{error}");
    }

    #[tokio::test]
    async fn the_clock_counts_polls_not_waits() {
        let clock = RunClock::default();
        clock
            .meter(async {
                tokio::time::sleep(Duration::from_millis(500)).await;
                std::thread::sleep(Duration::from_millis(20));
            })
            .await;
        let running = clock.running();
        assert!(running >= Duration::from_millis(20), "{running:?}");
        // The 500 ms asleep are not counted.
        assert!(running < Duration::from_millis(400), "{running:?}");
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
