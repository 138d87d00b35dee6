//! Test-only failpoints: named places where a test makes the process fail on purpose (a
//! panic, an abort) to prove what happens then. Off unless the environment variable
//! `TERN_FAILPOINTS` lists them, comma-separated, as `name` or `name=argument`.
//!
//! - `flow-panic=<flow>`: the flow's replication task panics as it starts.
//! - `abort-before-offset-map=<topic>`: `tern run` aborts after the target acknowledged a
//!   record set of the topic, before the set's offset map entries are written.
//! - `abort-before-commit=<topic>`: `tern run` aborts in exactly-once delivery after a
//!   transaction's records and position were written to the target, before its commit.
//! - `stall-produce=<topic>`: the at-least-once producers of the topic's partitions take
//!   nothing, as if the target took nothing of them (what the rest of the flow does then is the
//!   test).
//! - `abort-after-failback-copy=<topic>`: `tern failback` aborts after the source acknowledged
//!   its first batch copied back into the topic, before that progress is saved.

/// The argument of failpoint `name` if it is set (`Some("")` for a bare name).
pub fn arg(name: &str) -> Option<String> {
    let list = std::env::var("TERN_FAILPOINTS").ok()?;
    list.split(',').map(str::trim).find_map(|item| match item.split_once('=') {
        Some((n, a)) if n == name => Some(a.to_string()),
        None if item == name => Some(String::new()),
        _ => None,
    })
}

/// Whether failpoint `name` is set with argument `value` (or with none).
pub fn hit(name: &str, value: &str) -> bool {
    arg(name).is_some_and(|a| a.is_empty() || a == value)
}
