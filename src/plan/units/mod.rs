//! Resource values with Docker's meanings (`docker run --cpus/--memory/--pids-limit`) and
//! timeouts. Every parser returns the reason as a `String` that already says how to fix it,
//! so callers only add where the value came from (a file and line, or a flag).

use std::time::Duration;

use toml::Value;

const NANO: f64 = 1e9;
/// Docker refuses a memory limit below 6 MiB (`linuxMinMemory`).
pub const MIN_MEMORY_BYTES: i64 = 6 * 1024 * 1024;
/// The kernel's CFS quota cannot go below 1 ms per 100 ms, so Docker refuses under 0.01 CPU.
const MIN_NANO_CPUS: i64 = 10_000_000;

// The largest values accepted (README's task-file section lists them): beyond them a value is a
// typo, and an absurd one would reach the engine, `timeout` or a timer that cannot hold it.
/// A week: longer is not one task but a service.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
const MAX_NANO_CPUS: i64 = 1024 * 1_000_000_000;
const MAX_MEMORY_BYTES: i64 = 1 << 40;
/// The kernel's own ceiling on process ids (`PID_MAX_LIMIT`).
const MAX_PIDS: i64 = 1 << 22;
const MAX_DISK_BYTES: u64 = 16 << 40;
pub const MAX_PROMPT_BYTES: u64 = 64 << 20;
const MAX_COST_USD: f64 = 1000.0;
/// The CLI's `--max-turns`.
pub const MAX_TURNS: u32 = 10_000;

const CPUS_HINT: &str = "use a positive number of CPUs such as 1.5 or 2";
const MEMORY_HINT: &str =
    "use a number with an optional unit b, k, m or g (k = 1024), such as \"512m\" or \"4g\"";
const SIZE_HINT: &str =
    "use a number with an optional unit b, k, m or g (k = 1024), such as \"512k\" or \"2m\"";
const PIDS_HINT: &str = "use a positive whole number of processes such as 1024";
const TIMEOUT_HINT: &str = "use a duration such as \"45m\", \"1h 30m\" or \"90s\"";

/// `"1.5"` -> 1_500_000_000 nano CPUs (Docker's `NanoCpus`).
pub fn parse_cpus(s: &str) -> Result<i64, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err(format!("the value is empty; {CPUS_HINT}"));
    }
    if t.starts_with('-') {
        return Err(format!("CPUs must be positive; {CPUS_HINT}"));
    }
    // Only plain decimals: f64's parser would also take "inf", "nan" and "1e3".
    let digits = t.chars().filter(char::is_ascii_digit).count();
    let dots = t.matches('.').count();
    if digits == 0 || dots > 1 || digits + dots != t.len() {
        return Err(format!("`{t}` is not a number; {CPUS_HINT}"));
    }
    let value: f64 = t
        .parse()
        .map_err(|_| format!("`{t}` is not a number; {CPUS_HINT}"))?;
    nano_cpus_from_f64(value)
}

fn nano_cpus_from_f64(value: f64) -> Result<i64, String> {
    if !value.is_finite() {
        return Err(format!("CPUs must be a finite number; {CPUS_HINT}"));
    }
    if value <= 0.0 {
        return Err(format!("CPUs must be greater than zero; {CPUS_HINT}"));
    }
    let nano = (value * NANO).round();
    if nano > MAX_NANO_CPUS as f64 {
        return Err(format!(
            "{value} CPUs is more than sandpen's maximum of {}; use {} or fewer",
            MAX_NANO_CPUS / 1_000_000_000,
            MAX_NANO_CPUS / 1_000_000_000
        ));
    }
    let nano = nano as i64;
    if nano < MIN_NANO_CPUS {
        return Err(format!(
            "{value} CPUs is below Docker's minimum of 0.01; use 0.01 or more"
        ));
    }
    Ok(nano)
}

/// Docker's `RAMInBytes`: `512m` -> 536870912. Units are binary (k = 1024) and
/// case-insensitive; `kb`, `ki` and `kib` mean the same as `k` (likewise m, g, t, p).
/// A bare number is bytes.
pub fn parse_memory(s: &str) -> Result<i64, String> {
    check_memory(parse_bytes(s, ("memory", "memory size"), MEMORY_HINT)?)
}

/// A size in bytes with the memory flag's syntax (`512k`, `2m`, `4MiB`) but without Docker's
/// memory minimum: any size above zero.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bytes = parse_bytes(s, ("the size", "size"), SIZE_HINT)?;
    if bytes <= 0 {
        return Err(format!("the size must be greater than zero; {SIZE_HINT}"));
    }
    Ok(bytes as u64)
}

/// A task's disk limit: a size, at most `MAX_DISK_BYTES`.
pub fn parse_disk(s: &str) -> Result<u64, String> {
    at_most(parse_size(s)?, (MAX_DISK_BYTES, "16t"), "a disk limit")
}

/// The largest prompt accepted: a size, at most `MAX_PROMPT_BYTES`.
pub fn parse_prompt_size(s: &str) -> Result<u64, String> {
    at_most(parse_size(s)?, (MAX_PROMPT_BYTES, "64m"), "a prompt size")
}

/// `bytes`, unless over `max` (the maximum, and how it is written).
fn at_most(bytes: u64, (max, written): (u64, &str), what: &str) -> Result<u64, String> {
    if bytes > max {
        return Err(format!(
            "{} is more than sandpen's maximum for {what} of {}; use \"{written}\" or less",
            bytesize(bytes),
            bytesize(max)
        ));
    }
    Ok(bytes)
}

/// `16 TiB`, `64 MiB`: sizes as the messages say them.
fn bytesize(b: u64) -> String {
    indicatif::HumanBytes(b).to_string()
}

/// A count of bytes, positive or zero. `what` (the subject, the noun) and `hint` make the
/// messages.
fn parse_bytes(s: &str, (subject, noun): (&str, &str), hint: &str) -> Result<i64, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err(format!("the value is empty; {hint}"));
    }
    if t.starts_with('-') {
        return Err(format!("{subject} must be positive; {hint}"));
    }
    let not_a_size = || format!("`{t}` is not a {noun}; {hint}");
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let multiplier = unit_multiplier(unit.strip_prefix(' ').unwrap_or(unit)).ok_or_else(not_a_size)?;
    let bytes = match number.split_once('.') {
        None if !number.is_empty() => number.parse::<i64>().ok().and_then(|n| n.checked_mul(multiplier)),
        Some((whole, frac))
            if !whole.is_empty() && !frac.is_empty() && frac.chars().all(|c| c.is_ascii_digit()) =>
        {
            // Docker truncates fractional sizes (`int64(size * unit)`): 1.5g is exact anyway.
            let value: f64 = number.parse().map_err(|_| not_a_size())?;
            let bytes = value * multiplier as f64;
            (bytes < i64::MAX as f64).then_some(bytes as i64)
        }
        _ => return Err(not_a_size()),
    };
    bytes.ok_or_else(|| format!("`{t}` is too large; {hint}"))
}

fn unit_multiplier(unit: &str) -> Option<i64> {
    let unit = unit.to_ascii_lowercase();
    if unit.is_empty() || unit == "b" {
        return Some(1);
    }
    let mut chars = unit.chars();
    let power = match chars.next()? {
        'k' => 1,
        'm' => 2,
        'g' => 3,
        't' => 4,
        'p' => 5,
        _ => return None,
    };
    matches!(chars.as_str(), "" | "b" | "i" | "ib").then(|| 1024_i64.pow(power))
}

fn check_memory(bytes: i64) -> Result<i64, String> {
    if bytes <= 0 {
        return Err(format!("memory must be greater than zero; {MEMORY_HINT}"));
    }
    if bytes > MAX_MEMORY_BYTES {
        return Err(format!(
            "{} is more than sandpen's maximum memory limit of {}; use \"1t\" or less",
            bytesize(bytes as u64),
            bytesize(MAX_MEMORY_BYTES as u64)
        ));
    }
    if bytes < MIN_MEMORY_BYTES {
        return Err(format!(
            "{bytes} bytes is below Docker's minimum memory limit of 6 MiB; \
             use at least \"6m\" (k, m and g are units: a bare number is bytes)"
        ));
    }
    Ok(bytes)
}

/// A positive process limit (Docker's `--pids-limit`; sandpen never runs unlimited).
pub fn parse_pids(s: &str) -> Result<i64, String> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(format!("the process limit must be positive; {PIDS_HINT}"));
    }
    if t.is_empty() || !t.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("`{t}` is not a whole number; {PIDS_HINT}"));
    }
    let n: i64 = t.parse().unwrap_or(i64::MAX);
    check_pids(n)
}

fn check_pids(n: i64) -> Result<i64, String> {
    if n <= 0 {
        return Err(format!(
            "the process limit must be greater than zero; {PIDS_HINT}"
        ));
    }
    if n > MAX_PIDS {
        return Err(format!(
            "more than the kernel's maximum of {MAX_PIDS} processes; use {MAX_PIDS} or fewer"
        ));
    }
    Ok(n)
}

/// humantime syntax: `45m`, `1h 30m`, `90s`. Zero would kill every task at once.
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(format!("a timeout cannot be negative; {TIMEOUT_HINT}"));
    }
    let d =
        humantime::parse_duration(t).map_err(|e| format!("`{t}` is not a duration ({e}); {TIMEOUT_HINT}"))?;
    if d.is_zero() {
        return Err(format!("the timeout must be greater than zero; {TIMEOUT_HINT}"));
    }
    if d > MAX_TIMEOUT {
        return Err("more than sandpen's maximum timeout of 7 days; use \"7d\" or less".into());
    }
    Ok(d)
}

// TOML values: numbers may be written bare, everything also as a string.

pub(super) fn cpus_value(v: &Value) -> Result<i64, String> {
    match v {
        Value::String(s) => parse_cpus(s),
        Value::Integer(i) => nano_cpus_from_f64(*i as f64),
        Value::Float(f) => nano_cpus_from_f64(*f),
        other => Err(format!(
            "expected a number, got a {}; {CPUS_HINT}",
            other.type_str()
        )),
    }
}

pub(super) fn memory_value(v: &Value) -> Result<i64, String> {
    match v {
        Value::String(s) => parse_memory(s),
        Value::Integer(i) => check_memory(*i),
        Value::Float(_) => Err(format!(
            "a bare number is a count of bytes and must be whole; {MEMORY_HINT}"
        )),
        other => Err(format!(
            "expected a string, got a {}; {MEMORY_HINT}",
            other.type_str()
        )),
    }
}

pub(super) fn disk_value(v: &Value) -> Result<u64, String> {
    match v {
        Value::String(s) => parse_disk(s),
        Value::Integer(i) if *i > 0 => at_most(*i as u64, (MAX_DISK_BYTES, "16t"), "a disk limit"),
        other => Err(format!(
            "expected a size such as \"10g\" or \"500m\", got {other}"
        )),
    }
}

/// A budget in USD: a number above 0 (`"$2.50"` and `"2.5"` read as 2.5).
pub fn parse_cost(s: &str) -> Result<f64, String> {
    let t = s.trim().trim_start_matches('$');
    let v: f64 = t
        .parse()
        .map_err(|_| format!("expected an amount in USD such as 2.50, got {s:?}"))?;
    check_cost(v)
}

fn check_cost(v: f64) -> Result<f64, String> {
    if !(v.is_finite() && v > 0.0) {
        return Err(format!(
            "a budget must be more than 0 USD, got {v}; use an amount such as 2.50"
        ));
    }
    if v > MAX_COST_USD {
        return Err(format!(
            "{v} USD is more than sandpen's maximum budget of {MAX_COST_USD} USD per task; use {MAX_COST_USD} or less"
        ));
    }
    Ok(v)
}

/// The CLI's `--max-turns`: a whole number from 1 to `MAX_TURNS`.
pub fn parse_turns(s: &str) -> Result<u32, String> {
    let n = whole(
        s,
        MAX_TURNS as u64,
        "turns",
        "use a whole number of turns such as 50",
    )?;
    Ok(n as u32)
}

/// `--jobs`: how many containers at once, 1 or more.
pub fn parse_jobs(s: &str) -> Result<usize, String> {
    let n = whole(
        s,
        u32::MAX as u64,
        "containers at once",
        "use 1 or more, such as 4",
    )?;
    Ok(n as usize)
}

/// A whole number from 1 to `max` of `noun`; `hint` says how to write one.
fn whole(s: &str, max: u64, noun: &str, hint: &str) -> Result<u64, String> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(format!("the number of {noun} cannot be negative; {hint}"));
    }
    if t.is_empty() || !t.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("`{t}` is not a whole number; {hint}"));
    }
    match t.parse::<u64>().unwrap_or(u64::MAX) {
        0 => Err(format!("the number of {noun} must be at least 1; {hint}")),
        n if n > max => Err(format!(
            "more than sandpen's maximum of {max} {noun}; use {max} or fewer"
        )),
        n => Ok(n),
    }
}

pub(super) fn cost_value(v: &Value) -> Result<f64, String> {
    match v {
        Value::Float(f) => check_cost(*f),
        Value::Integer(i) => check_cost(*i as f64),
        Value::String(s) => parse_cost(s),
        other => Err(format!("expected an amount in USD such as 2.50, got {other}")),
    }
}

pub(super) fn pids_value(v: &Value) -> Result<i64, String> {
    match v {
        Value::String(s) => parse_pids(s),
        Value::Integer(i) => check_pids(*i),
        other => Err(format!(
            "expected a whole number, got a {}; {PIDS_HINT}",
            other.type_str()
        )),
    }
}

pub(super) fn timeout_value(v: &Value) -> Result<Duration, String> {
    match v {
        Value::String(s) => parse_timeout(s),
        // A bare number has no unit, and guessing seconds vs minutes is how jobs die early.
        Value::Integer(_) | Value::Float(_) => Err(format!(
            "a bare number has no unit; write it as a string, e.g. \"{v}s\" or \"{v}m\""
        )),
        other => Err(format!(
            "expected a string, got a {}; {TIMEOUT_HINT}",
            other.type_str()
        )),
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`, and not one of the names sandpen sets itself.
pub(super) fn check_env_key(key: &str) -> Result<(), String> {
    let mut chars = key.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "`{key}` is not a valid variable name; names must match [A-Za-z_][A-Za-z0-9_]* \
             (letters, digits and '_', not starting with a digit)"
        ));
    }
    use crate::agent::env;
    if env::is_reserved(key) {
        return Err(format!(
            "`{key}` is set by sandpen itself in every task container and cannot be overridden; \
             remove it from env (reserved: SANDPEN_*, {})",
            env::reserved().join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;

/// An OCI runtime's name as an engine's `runtimes` holds it (`runsc`, `kata-runtime`,
/// `io.containerd.runc.v2`): whether the engine has it is checked against the engine later.
pub fn parse_runtime(s: &str) -> Result<String, String> {
    let name = s.trim();
    let valid = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    match valid {
        true => Ok(name.to_string()),
        false => Err(format!(
            "expected the name of one of the engine's runtimes such as runsc (letters, digits, \
             `.`, `-`, `_`), got {s:?}; `sandpen doctor` lists them"
        )),
    }
}

pub(super) fn runtime_value(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => parse_runtime(s),
        other => Err(format!(
            "expected a runtime's name as a string such as \"runsc\", got a {}",
            other.type_str()
        )),
    }
}
