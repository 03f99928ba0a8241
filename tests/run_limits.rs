//! What a task's container enforces, seen from inside it: cgroup limits, hardening, isolation
//! between tasks, and timeouts. Real engine, probe image.

mod common;

use std::path::Path;

use common::*;

#[test]
fn cgroup_limits_are_visible_inside_the_container() {
    let repo = make_repo();
    // Prints the limits for cgroup v1 and v2, whichever this engine has; absent files print
    // nothing.
    let script = r#"
show() { [ -r "$2" ] && echo "$1=$(cat "$2")"; true; }
show v1.cpu.quota /sys/fs/cgroup/cpu/cpu.cfs_quota_us
show v1.cpu.period /sys/fs/cgroup/cpu/cpu.cfs_period_us
show v1.memory /sys/fs/cgroup/memory/memory.limit_in_bytes
show v1.memsw /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes
show v1.pids /sys/fs/cgroup/pids/pids.max
show v2.cpu /sys/fs/cgroup/cpu.max
show v2.memory /sys/fs/cgroup/memory.max
show v2.swap /sys/fs/cgroup/memory.swap.max
show v2.pids /sys/fs/cgroup/pids.max
"#;
    let toml = format!(
        "[[task]]\nid = \"limits\"\ncpus = 1.5\nmemory = \"200m\"\npids = 300\ntimeout = \"1m\"\nprompt_text = '''{script}'''\n"
    );
    let run = run_tasks(repo.path(), &toml, &[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let report = run.report();
    let t = task(&report, "limits");
    assert_eq!(t["limits"]["nano_cpus"], 1_500_000_000_i64);
    assert_eq!(t["limits"]["memory_bytes"], 209_715_200);
    assert_eq!(t["limits"]["pids"], 300);

    let log = log_of(&report, "limits");
    let v = values(&log);
    eprintln!("cgroup values: {v:?}");
    let num = |k: &str| -> f64 {
        v[k].parse()
            .unwrap_or_else(|_| panic!("{k} = {:?} is not a number", v[k]))
    };
    if v.contains_key("v1.memory") {
        assert_eq!(num("v1.cpu.quota") / num("v1.cpu.period"), 1.5, "{v:?}");
        assert_eq!(v["v1.memory"], "209715200");
        assert_eq!(v["v1.pids"], "300");
        // memsw exists only when the kernel accounts swap; where it does, no swap on top.
        if let Some(memsw) = v.get("v1.memsw") {
            assert_eq!(memsw, "209715200", "memory + swap = memory: no swap");
        }
    } else if v.contains_key("v2.memory") {
        let (quota, period) = v["v2.cpu"].split_once(' ').expect("cpu.max is `quota period`");
        let ratio = quota.parse::<f64>().unwrap() / period.parse::<f64>().unwrap();
        assert_eq!(ratio, 1.5, "{v:?}");
        assert_eq!(v["v2.memory"], "209715200");
        assert_eq!(v["v2.pids"], "300");
        if let Some(swap) = v.get("v2.swap") {
            assert_eq!(swap, "0", "no swap");
        }
    } else {
        panic!("no cgroup limits readable in the container; log:\n{log}");
    }
}

#[test]
fn the_container_is_hardened() {
    let repo = make_repo();
    let script = r#"
echo "uid=$(id -u)"
echo "gid=$(id -g)"
echo "capeff=$(grep CapEff /proc/self/status | cut -f2)"
echo "capprm=$(grep CapPrm /proc/self/status | cut -f2)"
echo "nonewprivs=$(grep NoNewPrivs /proc/self/status | cut -f2)"
for s in /var/run/docker.sock /run/docker.sock; do
  if [ -e "$s" ]; then echo "socket $s=present"; else echo "socket $s=absent"; fi
done
if touch /etc/x 2>/dev/null; then echo "etc=writable"; else echo "etc=read-only"; fi
if touch /usr/bin/x 2>/dev/null; then echo "usr=writable"; else echo "usr=read-only"; fi
if touch /tmp/x 2>/dev/null; then echo "tmp=writable"; else echo "tmp=read-only"; fi
if touch "$HOME/x" 2>/dev/null; then echo "home=writable"; else echo "home=read-only"; fi
echo "home.path=$HOME"
if touch /workspace/x 2>/dev/null; then echo "workspace=writable"; rm -f /workspace/x; else echo "workspace=read-only"; fi
"#;
    let toml = format!("[[task]]\nid = \"hard\"\ntimeout = \"1m\"\nprompt_text = '''{script}'''\n");
    let run = run_tasks(repo.path(), &toml, &[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let report = run.report();
    let log = log_of(&report, "hard");
    let v = values(&log);
    eprintln!("hardening: {v:?}");
    let get = |k: &str| {
        v.get(k)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no {k} in the log:\n{log}"))
    };
    assert_ne!(get("uid"), "0", "tasks never run as root");
    assert_ne!(get("gid"), "0", "nor with group root");
    assert_eq!(get("capeff"), "0000000000000000", "no effective capabilities");
    assert_eq!(get("capprm"), "0000000000000000", "no permitted capabilities");
    assert_eq!(get("nonewprivs"), "1");
    assert_eq!(get("socket /var/run/docker.sock"), "absent");
    assert_eq!(get("socket /run/docker.sock"), "absent");
    assert_eq!(get("etc"), "read-only", "the root filesystem is read-only");
    assert_eq!(get("usr"), "read-only");
    assert_eq!(get("tmp"), "writable");
    assert_eq!(get("home"), "writable");
    assert_eq!(get("workspace"), "writable");
    assert!(!get("home.path").is_empty());
}

#[test]
fn a_task_cannot_see_another_tasks_files() {
    let repo = make_repo();
    let marker = format!(
        "sandpen-marker-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    // b writes its marker at once and stays up; a looks for it a little later, while b runs.
    let toml = format!(
        r#"
[defaults]
timeout = "1m"

[[task]]
id = "b"
prompt_text = "touch {marker}; mkdir -p sub; touch sub/{marker}; sleep 10"

[[task]]
id = "a"
prompt_text = '''
sleep 3
echo "found=$(find / -name '{marker}' 2>/dev/null | wc -l)"
find / -name '{marker}' 2>/dev/null | sed 's/^/path=/'
echo "workspace=$(ls -A /workspace | sort | tr '\n' ' ')"
touch /tmp/{marker}-own
echo "own=$(find / -name '{marker}-own' 2>/dev/null | wc -l)"
'''
"#
    );
    let run = run_tasks(repo.path(), &toml, &["-j", "2"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let report = run.report();
    let (a, b) = (task(&report, "a"), task(&report, "b"));

    // They really ran at the same time, and a searched after b had written its marker.
    let (a_start, a_end) = (epoch_s(field(a, "started_at")), epoch_s(field(a, "finished_at")));
    let (b_start, b_end) = (epoch_s(field(b, "started_at")), epoch_s(field(b, "finished_at")));
    eprintln!(
        "isolation: a [{:.2}, {:.2}], b [{:.2}, {:.2}] relative to a's start",
        0.0,
        a_end - a_start,
        b_start - a_start,
        b_end - a_start
    );
    assert!(
        b_start < a_start + 2.0,
        "b started before a's search (a sleeps 3 s first)"
    );
    assert!(b_end > a_end, "b was still running when a searched");
    let b_checkout = Path::new(field(b, "checkout"));
    assert!(b_checkout.join(&marker).exists(), "b wrote its marker");

    let log = log_of(&report, "a");
    let v = values(&log);
    assert_eq!(
        v.get("found").map(String::as_str),
        Some("0"),
        "a found b's marker:\n{log}"
    );
    assert_eq!(
        v.get("own").map(String::as_str),
        Some("1"),
        "the same search finds a's own file (so the search itself works):\n{log}"
    );
    let mut expected: Vec<String> = git(repo.path(), &["ls-tree", "--name-only", "HEAD"])
        .lines()
        .map(str::to_string)
        .chain([".git".to_string()])
        .collect();
    expected.sort();
    let seen: Vec<&str> = v["workspace"].split_whitespace().collect();
    assert_eq!(seen, expected, "/workspace holds a's checkout and nothing else");
}

#[test]
fn timeouts_stop_tasks_and_kill_those_that_ignore_sigterm() {
    let repo = make_repo();
    let run = run_tasks(
        repo.path(),
        r#"
[[task]]
id = "stubborn"
timeout = "3s"
prompt_text = "trap '' TERM; sleep 300"

[[task]]
id = "polite"
timeout = "2s"
prompt_text = "sleep 300"
"#,
        &["-j", "2"],
    );
    assert_eq!(run.code, 1, "{}", run.dump());
    let report = run.report();
    let stubborn = task(&report, "stubborn");
    let polite = task(&report, "polite");
    // The container's own run (start to exit), not the task's (checkout and collection too,
    // which a loaded machine stretches).
    let ran = |t: &serde_json::Value| epoch_s(field(t, "finished_at")) - epoch_s(field(t, "started_at"));
    let (ds, dp) = (ran(stubborn), ran(polite));
    eprintln!(
        "timeouts: stubborn {ds:.2}s (exit {}), polite {dp:.2}s (exit {}), process {:?}",
        stubborn["exit_code"], polite["exit_code"], run.elapsed
    );
    assert_eq!(field(stubborn, "status"), "timed_out", "{stubborn:#}");
    assert_eq!(field(polite, "status"), "timed_out", "{polite:#}");
    // The stubborn one outlives SIGTERM and is killed after the 10 s grace.
    assert!(ds >= 3.0 + 9.0, "killed only after the grace: {ds}s");
    assert!(ds <= 3.0 + 10.0 + 2.0, "killed once the grace is over: {ds}s");
    assert_eq!(stubborn["exit_code"], 137, "SIGKILL: {stubborn:#}");
    assert!(dp >= 2.0, "not before its timeout: {dp}s");
    assert!(dp < 2.0 + 3.0, "SIGTERM ends it quickly: {dp}s");
    let left = containers(&format!("label=sandpen.run={}", field(&report, "run_id")));
    assert!(left.is_empty(), "containers left behind: {left:?}");
}

#[test]
fn a_task_over_its_disk_limit_is_stopped_and_keeps_its_work() {
    let repo = make_repo();
    let started = std::time::Instant::now();
    let run = run_tasks(
        repo.path(),
        r#"
[[task]]
id = "filler"
timeout = "2m"
disk = "5m"
prompt_text = """
echo small > small.txt && git add small.txt && git commit -qm small
head -c 12000000 /dev/zero > big.bin
sleep 100
"""
"#,
        &[],
    );
    let report = run.report();
    let t = task(&report, "filler");
    eprintln!("disk: {:?}, {t:#}", started.elapsed());
    assert_eq!(field(t, "status"), "disk_exceeded", "{t:#}\n{}", run.dump());
    assert_eq!(t["disk_limit_bytes"], 5 << 20, "{t:#}");
    assert!(t["peak_disk_bytes"].as_u64().unwrap() > 5 << 20, "{t:#}");
    assert!(
        t["duration_s"].as_f64().unwrap() < 30.0,
        "stopped soon after passing the limit, not at its sleep's end: {t:#}"
    );
    let branch = field(t, "branch");
    assert_eq!(
        git(repo.path(), &["show", &format!("{branch}:small.txt")]),
        "small\n"
    );
    assert_eq!(run.code, 1, "{}", run.dump());
}
