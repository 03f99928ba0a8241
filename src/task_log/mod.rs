//! A task's log files as sandpen reads them back, in bounded memory: lines with a maximum
//! length (`lines.rs`, `capped_log`'s reading side), a log's last lines (`tail.rs`), and the
//! order its stdout and stderr arrived in (`streams.rs`, noted by the runner as it writes).
//! Below both the runner and `runs` (ps, logs), so neither imports the other for them.

pub mod lines;
pub mod streams;
pub mod tail;
