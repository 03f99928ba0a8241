//! Figure 4: Log throughput: one task writing to stdout, both sides timed as whole processes:
//! `sandpen run` against `docker run -d` plus `docker logs -f > file` of the same container.

use std::process::{Command, Stdio};
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::ctx::{Ctx, Measured, run_ok};
use crate::row::Row;
use crate::stats::Sample;
use crate::target::{Bound, Target};

pub const FIGURE: &str = "4. log throughput, one task writing to stdout (MiB/s)";
const LINE: &str = "sandpen log throughput benchmark line: 0123456789abcdefghijklmn\n";

pub fn measure(ctx: &Ctx, notes: &mut Vec<String>) -> Measured<Vec<Row>> {
    let (mib, rounds) = if ctx.quick { (16u64, 1) } else { (256u64, 3) };
    let bytes = mib << 20;
    let generator = format!("yes '{}' | head -c {bytes}", LINE.trim_end());
    let expected = expected_hash(bytes as usize);
    let tasks = ctx.task_file(1, &generator, "512m", 1.0);
    let (mut ours, mut theirs) = (vec![], vec![]);
    let (mut exact, mut docker_exact) = (true, true);
    for _ in 0..rounds {
        let (wall, report, _) = ctx.sandpen_run(&tasks, 1, &[])?;
        ours.push(mib as f64 / wall);
        let log = std::fs::read(report["tasks"][0]["log"].as_str().unwrap_or_default())
            .map_err(|e| format!("reading sandpen's log: {e}"))?;
        exact &= payload_hash(&log).as_deref() == Some(&expected);

        // The same container, its log kept whole (no rotation), read with `docker logs -f`.
        let file = ctx.work.path().join(format!("docker-{}.log", ctx.next()));
        let start = Instant::now();
        let id = run_ok(&mut ctx.docker_run(&generator, &["-d", "--log-opt", "max-size=2g"]))?;
        let id = id.trim();
        let f = std::fs::File::create(&file).map_err(|e| e.to_string())?;
        let status = Command::new("docker").args(["logs", "-f", id]).stdout(f).status();
        let secs = start.elapsed().as_secs_f64();
        let _ = Command::new("docker")
            .args(["rm", "-f", id])
            .stdout(Stdio::null())
            .status();
        if !status.is_ok_and(|s| s.success()) {
            return Err("docker logs -f failed".into());
        }
        theirs.push(mib as f64 / secs);
        docker_exact &= payload_hash(&std::fs::read(&file).unwrap_or_default()).as_deref() == Some(&expected);
    }
    let (ours, theirs) = (Sample::new(ours), Sample::new(theirs));
    notes.push(format!(
        "Log throughput: sandpen's log was {}; the docker CLI's copy was {} ({mib} MiB per round, \
         sha256 {} checked against the generator).",
        if exact {
            "byte-exact in every round"
        } else {
            "NOT byte-exact"
        },
        if docker_exact {
            "byte-exact too"
        } else {
            "NOT byte-exact"
        },
        &expected[..16]
    ));
    let ratio = ours.median() / theirs.median();
    let target = Target::of(Bound::AtLeast(0.9, "x"), if exact { ratio } else { f64::NAN });
    Ok(vec![Row::new(
        FIGURE,
        format!(
            "{} ({mib} MiB, {})",
            ours.show(1),
            if exact { "byte-exact" } else { "NOT EXACT" }
        ),
        format!("docker run -d + docker logs -f > file: {}", theirs.show(1)),
        Some(ratio),
        target,
    )])
}

fn expected_hash(mut left: usize) -> String {
    let mut h = Sha256::new();
    let line = LINE.as_bytes();
    while left > 0 {
        let take = left.min(line.len());
        h.update(&line[..take]);
        left -= take;
    }
    hex::encode(h.finalize())
}

/// The sha256 of what the task printed: between the probe's init line and its result line.
fn payload_hash(log: &[u8]) -> Option<String> {
    let start = log.iter().position(|&b| b == b'\n')? + 1;
    let marker = b"\n{\"type\":\"result\"";
    let end = log.windows(marker.len()).rposition(|w| w == marker)?;
    // The probe always prints a newline of its own before its result line: the marker's.
    Some(hex::encode(Sha256::digest(&log[start..end])))
}
