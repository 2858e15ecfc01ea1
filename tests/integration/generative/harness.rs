//! Running properties: a panic hook that records every panic (thread,
//! file:line, message) so that a failure names where the code under test
//! panicked, even on a server thread; a runner that keeps shrinking short
//! and prints the minimal input cut to a readable length.

use std::cell::Cell;
use std::fmt::Debug;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, Once};
use std::thread::ThreadId;

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

use super::edges::short;

/// One panic seen by the hook.
#[derive(Debug, Clone)]
pub struct Panic {
    pub thread: ThreadId,
    pub thread_name: String,
    /// Was it the property's own thread (a panic of the code it calls)?
    pub in_case: bool,
    pub text: String,
}

static PANICS: Mutex<Vec<Panic>> = Mutex::new(Vec::new());
static HOOK: Once = Once::new();

thread_local! {
    static CASE_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Installs the recording hook (once; the default hook still prints).
pub fn install() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let at = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let current = std::thread::current();
            let in_case = CASE_THREAD.with(Cell::get);
            // Where in the crate, when the panic is in a dependency or std.
            let caller = match at.starts_with("src/") {
                true => String::new(),
                false => crate_frame(),
            };
            let panic = Panic {
                thread: current.id(),
                thread_name: current.name().unwrap_or("?").to_owned(),
                in_case,
                text: format!("panicked at {at}{caller}: {}", short(&message, 300)),
            };
            PANICS.lock().unwrap_or_else(|p| p.into_inner()).push(panic);
            // A panic `no_panic` catches is reported by the failure.
            if !in_case {
                previous(info);
            }
        }));
    });
}

/// ` (from src/FILE:LINE)`: the innermost frame of the crate's own
/// `src/` in a backtrace of here, or nothing.
fn crate_frame() -> String {
    let trace = std::backtrace::Backtrace::force_capture().to_string();
    trace
        .lines()
        .filter_map(|line| line.trim().strip_prefix("at "))
        .find(|at| {
            (at.starts_with("src/") || at.contains("/src/"))
                && !at.contains("/rustc/")
                && !at.contains(".cargo")
        })
        .map(|at| {
            at.rsplit_once("src/")
                .map_or(at, |(_, rest)| rest)
                .to_owned()
        })
        .map_or_else(String::new, |at| format!(" (from src/{at})"))
}

/// Where the panic log is now.
pub fn mark() -> usize {
    PANICS.lock().unwrap_or_else(|p| p.into_inner()).len()
}

/// Panics since `mark` on threads named `name`.
pub fn panics_since(mark: usize, name: &str) -> Vec<String> {
    let panics = PANICS.lock().unwrap_or_else(|p| p.into_inner());
    panics[mark.min(panics.len())..]
        .iter()
        .filter(|p| !p.in_case && p.thread_name == name)
        .map(|p| format!("[{}] {}", p.thread_name, p.text))
        .collect()
}

/// Runs `f`, turning a panic into a failure that says where it happened.
pub fn no_panic<R>(what: &str, f: impl FnOnce() -> R) -> Result<R, TestCaseError> {
    let start = mark();
    let before = CASE_THREAD.with(|c| c.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    CASE_THREAD.with(|c| c.set(before));
    result.map_err(|_| {
        let me = std::thread::current().id();
        let panics = PANICS.lock().unwrap_or_else(|p| p.into_inner());
        let text = panics[start.min(panics.len())..]
            .iter()
            .rev()
            .find(|p| p.thread == me)
            .map_or_else(|| "panicked".to_owned(), |p| p.text.clone());
        TestCaseError::fail(format!("{what}: {text}"))
    })
}

/// Runs `test` on `cases` values of `strategy`; on failure panics with the
/// minimal input (cut short) and the reason.
pub fn check<S>(
    name: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: Debug,
{
    install();
    let scale: u32 = std::env::var("GEN_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let config = Config {
        cases: cases * scale,
        failure_persistence: None,
        max_shrink_iters: 300,
        max_shrink_time: 20_000,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    match runner.run(&strategy, |value| {
        CASE_THREAD.with(|c| c.set(true));
        let result = test(value);
        CASE_THREAD.with(|c| c.set(false));
        result
    }) {
        Ok(()) => {}
        Err(TestError::Fail(reason, value)) => panic!(
            "{name}: property failed\n  minimal input: {}\n  reason: {}",
            short(&format!("{value:?}"), 1500),
            short(&reason.to_string(), 1500),
        ),
        Err(TestError::Abort(reason)) => panic!("{name}: aborted: {reason}"),
    }
}
