//! A simulation for docs/scaling.md: spreading cron triggers over replicas
//! by rendezvous (highest-random-weight) hashing, and how many move when a
//! replica joins or leaves. No wasmsched code runs here; it measures the
//! design proposed there.
//!
//! Run: `cargo run --release --example rebalance`

use sha2::{Digest, Sha256};

/// The replica trigger `id` belongs to among `replicas`: the one with the
/// highest hash of (replica, id). Every replica computes the same answer
/// from the membership alone.
fn owner<'a>(id: &str, replicas: &'a [String]) -> &'a str {
    replicas
        .iter()
        .max_by_key(|replica| {
            let digest = Sha256::digest(format!("{replica}/{id}").as_bytes());
            u64::from_be_bytes(digest[..8].try_into().unwrap())
        })
        .unwrap()
}

fn main() {
    let triggers: Vec<String> = (0..100_000).map(|n| format!("trigger-{n}")).collect();
    println!("100 000 triggers, rendezvous hashing");
    println!("{:<22} {:>14} {:>16}", "change", "moved", "max / mean load");
    for n in [2usize, 3, 5, 8] {
        let before: Vec<String> = (0..n).map(|r| format!("replica-{r}")).collect();
        let mut after = before.clone();
        after.push(format!("replica-{n}"));
        for (label, from, to) in [
            (format!("{n} -> {} (one joins)", n + 1), &before, &after),
            (format!("{} -> {n} (one leaves)", n + 1), &after, &before),
        ] {
            let moved = triggers
                .iter()
                .filter(|id| owner(id, from) != owner(id, to))
                .count();
            let mut load = std::collections::BTreeMap::<&str, usize>::new();
            for id in &triggers {
                *load.entry(owner(id, to)).or_default() += 1;
            }
            let max = *load.values().max().unwrap() as f64;
            let mean = triggers.len() as f64 / to.len() as f64;
            println!(
                "{label:<22} {:>7} ({:>4.1}%) {:>16.3}",
                moved,
                100.0 * moved as f64 / triggers.len() as f64,
                max / mean
            );
        }
    }
}
