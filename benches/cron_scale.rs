//! Memory and start time of many cron triggers on one scheduler: 100 000
//! triggers on one schedule (`0 * * * *`, not due), registered then
//! started; resident memory from `/proc/self/statm`.
//!
//! Run: `cargo bench --bench cron_scale [-- N]`. (Against a peer such as
//! tokio-cron-scheduler: still to do, see issue "Schedules beyond cron".)

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

/// Counts live heap bytes and allocations (what RSS cannot separate from
/// the allocator's own keeping).
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static LIVE_BLOCKS: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        LIVE_BLOCKS.fetch_sub(1, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> (f64, isize) {
    (
        LIVE_BYTES.load(Ordering::Relaxed) as f64 / 1048576.0,
        LIVE_BLOCKS.load(Ordering::Relaxed),
    )
}
use wasmsched::{MemoryBroker, Scheduler, Topic};

fn rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: f64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096.0 / 1048576.0
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`: the count is the first number given.
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let scheduler = Scheduler::new(Arc::new(MemoryBroker::new()));
    let base = rss_mib();
    let start = Instant::now();
    for i in 0..n {
        let spec = wasmsched::TriggerSpec::cron("0 * * * *");
        let trigger = wasmsched::create_trigger(&spec, None, None).unwrap();
        scheduler
            .register(format!("t{i}"), trigger, Topic::new("x").unwrap())
            .await
            .unwrap();
    }
    let registered = rss_mib();
    let (bytes, blocks) = live();
    println!("registered: live heap {bytes:.1} MiB in {blocks} blocks");
    scheduler.start().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    println!(
        "{n} triggers: registered {:.1} MiB (+{:.1}), started {:.1} MiB, {:.2?}; {:.1} KiB per trigger",
        registered,
        registered - base,
        rss_mib(),
        start.elapsed(),
        (rss_mib() - base) * 1024.0 / n as f64
    );
    unsafe extern "C" {
        fn malloc_trim(pad: usize) -> i32;
    }
    unsafe { malloc_trim(0) };
    let (bytes, blocks) = live();
    println!(
        "after malloc_trim: {:.1} MiB resident; live heap {bytes:.1} MiB in {blocks} blocks",
        rss_mib()
    );
}
