//! The gateway's two files on the host, `egress.jsonl` (its reports) and `gateway.log` (its
//! own messages), capped and written off the async workers.

use std::path::Path;

use super::GatewayError;
use crate::blocking_writer::BlockingWriter;
use crate::capped_log::{CappedLog, Marker};

/// What `egress.jsonl` and `gateway.log` keep per run: tasks make their lines, so a task
/// could otherwise fill the host's disk through them (`CappedLog`: head, marker, tail).
const AUDIT_LIMIT: u64 = 256 << 20;
const GATEWAY_LOG_LIMIT: u64 = 64 << 20;
/// How many lines may wait for the writer of those two files before the gateway's reader waits.
const LOG_QUEUE: usize = 256;

/// A line for the gateway's files: a report for `egress.jsonl`, or its own messages.
pub enum GatewayLine {
    Audit(Vec<u8>),
    Log(bytes::Bytes),
}

/// Opens both files and their writer. As before, a failed write loses that line only (the
/// audit's cap already keeps a marker of what it dropped); each file is finished (head,
/// marker, tail) once every line sent is written.
pub fn open(audit: &Path, log: &Path) -> Result<BlockingWriter<GatewayLine>, GatewayError> {
    let open = |p: &Path, limit, marker| {
        CappedLog::create(p, limit, marker)
            .map_err(|e| GatewayError::Start(format!("opening {}: {e}", p.display())))
    };
    let audit = open(audit, AUDIT_LIMIT, Marker::JsonLine)?;
    let log = open(log, GATEWAY_LOG_LIMIT, Marker::Text("a fixed cap per run"))?;
    Ok(BlockingWriter::spawn(
        (audit, log),
        LOG_QUEUE,
        |(audit, log): &mut (CappedLog, CappedLog), line| {
            let _ = match line {
                GatewayLine::Audit(l) => audit.write_all(&l),
                GatewayLine::Log(b) => log.write_all(&b),
            };
            Ok(())
        },
        |(audit, log)| {
            let _ = (audit.finish(), log.finish());
            Ok(())
        },
    ))
}
