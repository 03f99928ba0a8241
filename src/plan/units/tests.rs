use super::*;

const MIB: i64 = 1024 * 1024;

#[test]
fn memory_table() {
    let ok: &[(&str, i64)] = &[
        ("512m", 536_870_912),
        ("512M", 536_870_912),
        ("512mb", 536_870_912),
        ("512MiB", 536_870_912),
        ("512 m", 536_870_912),
        ("1g", 1024 * MIB),
        ("4g", 4096 * MIB),
        ("4GB", 4096 * MIB),
        ("1.5g", 1_610_612_736),
        ("6m", 6 * MIB),
        ("6144k", 6 * MIB),
        ("6291456", 6 * MIB),
        ("6291456b", 6 * MIB),
        ("1t", 1024 * 1024 * MIB),
        (" 2g ", 2048 * MIB),
    ];
    for (input, want) in ok {
        assert_eq!(parse_memory(input), Ok(*want), "{input}");
    }
    let bad: &[(&str, &str)] = &[
        ("5m", "minimum"),
        ("100", "minimum"),
        ("6291455", "minimum"),
        ("0", "greater than zero"),
        ("0g", "greater than zero"),
        ("-1g", "positive"),
        ("abc", "not a memory size"),
        ("", "empty"),
        ("1x", "not a memory size"),
        ("g", "not a memory size"),
        ("1.g", "not a memory size"),
        (".5g", "not a memory size"),
        ("1.2.3g", "not a memory size"),
        ("1gg", "not a memory size"),
        ("99999999999999999999", "too large"),
        ("9999999999p", "too large"),
    ];
    for (input, want) in bad {
        let err = parse_memory(input).expect_err(input);
        assert!(err.contains(want), "{input}: {err}");
    }
}

#[test]
fn size_table() {
    for (input, want) in [
        ("512k", 512 * 1024),
        ("2m", 2 * MIB as u64),
        ("4MiB", 4 * MIB as u64),
        ("1MiB", MIB as u64),
        ("100", 100),
        ("1", 1),
    ] {
        assert_eq!(parse_size(input), Ok(want), "{input}");
    }
    for (input, want) in [
        ("0", "greater than zero"),
        ("-1k", "positive"),
        ("lots", "is not a size"),
        ("", "empty"),
        ("9999999999p", "too large"),
    ] {
        let err = parse_size(input).expect_err(input);
        assert!(err.contains(want), "{input}: {err}");
    }
}

#[test]
fn cpus_table() {
    let ok: &[(&str, i64)] = &[
        ("1.5", 1_500_000_000),
        ("2", 2_000_000_000),
        ("0.5", 500_000_000),
        (".5", 500_000_000),
        ("0.01", 10_000_000),
        ("0.3333333333", 333_333_333),
        (" 4 ", 4_000_000_000),
    ];
    for (input, want) in ok {
        assert_eq!(parse_cpus(input), Ok(*want), "{input}");
    }
    let bad: &[(&str, &str)] = &[
        ("0", "greater than zero"),
        ("0.0", "greater than zero"),
        ("-1", "positive"),
        ("NaN", "not a number"),
        ("inf", "not a number"),
        ("1e3", "not a number"),
        ("abc", "not a number"),
        ("1.2.3", "not a number"),
        (".", "not a number"),
        ("", "empty"),
        ("0.001", "minimum"),
        ("99999999999999999999", "maximum of 1024"),
        ("1025", "maximum of 1024"),
    ];
    for (input, want) in bad {
        let err = parse_cpus(input).expect_err(input);
        assert!(err.contains(want), "{input}: {err}");
    }
}

#[test]
fn pids_and_timeout_tables() {
    assert_eq!(parse_pids("1024"), Ok(1024));
    for (input, want) in [
        ("0", "greater than zero"),
        ("-1", "positive"),
        ("1.5", "whole number"),
        ("x", "whole number"),
        ("", "whole number"),
        ("99999999999999999999", "maximum of 4194304"),
        ("4194305", "maximum of 4194304"),
    ] {
        let err = parse_pids(input).expect_err(input);
        assert!(err.contains(want), "{input}: {err}");
    }
    assert_eq!(parse_timeout("45m"), Ok(Duration::from_secs(45 * 60)));
    assert_eq!(parse_timeout("1h 30m"), Ok(Duration::from_secs(90 * 60)));
    assert_eq!(parse_timeout("90s"), Ok(Duration::from_secs(90)));
    for (input, want) in [
        ("0s", "greater than zero"),
        ("0", "greater than zero"),
        ("soon", "not a duration"),
        ("", "not a duration"),
        ("-5s", "cannot be negative"),
        ("7d 1s", "maximum timeout of 7 days"),
        ("99999999999999d", "maximum timeout of 7 days"),
    ] {
        let err = parse_timeout(input).expect_err(input);
        assert!(err.contains(want), "{input}: {err}");
    }
}

#[test]
fn maximums_are_accepted_and_no_more() {
    assert_eq!(parse_timeout("7d"), Ok(MAX_TIMEOUT));
    assert_eq!(parse_memory("1t"), Ok(1 << 40));
    assert!(
        parse_memory("1025g")
            .unwrap_err()
            .contains("maximum memory limit of 1.00 TiB")
    );
    assert_eq!(parse_disk("16t"), Ok(16 << 40));
    assert!(parse_disk("17t").unwrap_err().contains("\"16t\" or less"));
    assert!(disk_value(&Value::Integer(1 << 50)).unwrap_err().contains("16t"));
    assert_eq!(parse_prompt_size("64m"), Ok(MAX_PROMPT_BYTES));
    assert!(parse_prompt_size("65m").unwrap_err().contains("\"64m\" or less"));
    assert_eq!(parse_cost("1000"), Ok(1000.0));
    assert!(
        parse_cost("1000.01")
            .unwrap_err()
            .contains("maximum budget of 1000 USD")
    );
    assert_eq!(parse_turns("10000"), Ok(MAX_TURNS));
    for (input, want) in [
        ("10001", "maximum of 10000 turns"),
        ("0", "at least 1"),
        ("-3", "cannot be negative"),
        ("x", "not a whole number"),
    ] {
        let err = parse_turns(input).expect_err(input);
        assert!(err.contains(want), "{input}: {err}");
    }
    assert_eq!(parse_jobs("16"), Ok(16));
    assert!(parse_jobs("-1").unwrap_err().contains("cannot be negative"));
    assert!(parse_jobs("0").unwrap_err().contains("at least 1"));
}

#[test]
fn toml_values() {
    assert_eq!(cpus_value(&Value::Integer(2)), Ok(2_000_000_000));
    assert_eq!(cpus_value(&Value::Float(1.5)), Ok(1_500_000_000));
    assert!(cpus_value(&Value::Float(f64::NAN)).is_err());
    assert!(cpus_value(&Value::Integer(-2)).is_err());
    assert!(cpus_value(&Value::Boolean(true)).is_err());
    assert_eq!(memory_value(&Value::Integer(6 * MIB)), Ok(6 * MIB));
    assert!(memory_value(&Value::Integer(100)).unwrap_err().contains("6 MiB"));
    assert!(memory_value(&Value::Float(1.5)).is_err());
    assert_eq!(pids_value(&Value::Integer(7)), Ok(7));
    assert!(pids_value(&Value::Integer(0)).is_err());
    assert!(pids_value(&Value::Float(1.0)).is_err());
    assert!(
        timeout_value(&Value::Integer(90))
            .unwrap_err()
            .contains("\"90s\"")
    );
}

#[test]
fn env_keys() {
    assert!(check_env_key("FEATURE_FLAG").is_ok());
    assert!(check_env_key("_x1").is_ok());
    for bad in ["", "1A", "A-B", "A B", "Ä"] {
        assert!(check_env_key(bad).unwrap_err().contains("[A-Za-z_]"), "{bad}");
    }
    for reserved in [
        "SANDPEN_X",
        "ANTHROPIC_API_KEY",
        "IS_SANDBOX",
        "ORCHESTRATOR_TASK_ID",
    ] {
        assert!(check_env_key(reserved).unwrap_err().contains("set by sandpen"));
    }
}
