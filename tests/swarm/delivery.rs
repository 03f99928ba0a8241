//! Issue 28 on a real two-node Swarm (`common/swarm.rs`): a task's delivery costs about its
//! working tree, not its repository's history, while git in the task still sees that history;
//! and a sandpen SIGKILLed mid-run loses no work: `sandpen gc` takes what the tasks offer and
//! brings it back as branches, leaving nothing on any node. Runs when CI asks
//! (`SANDPEN_TEST_SWARM=1`, as root).

use crate::common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::swarm::{self, Swarm};
use common::{git, output, runs_dir, sandpen, stderr, stdout, wait_for};

/// `bytes` of random (incompressible) data at `path`.
fn random_file(path: &Path, bytes: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut from = std::fs::File::open("/dev/urandom").unwrap().take(bytes);
    let mut to = std::fs::File::create(path).unwrap();
    std::io::copy(&mut from, &mut to).unwrap();
}

fn du(path: &Path) -> u64 {
    walk(path, &|_| true)
}

fn walk(path: &Path, keep: &dyn Fn(&Path) -> bool) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(path).unwrap().flatten() {
        let p = e.path();
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.is_dir() && keep(&p) {
            total += walk(&p, keep);
        } else if m.is_file() {
            total += m.len();
        }
    }
    total
}

/// The figures of the exchange's `delivered` lines of `task`, ANSI colours taken out.
fn delivered(log: &str, task: &str) -> Vec<u64> {
    let mut plain = String::new();
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| *c == 'm');
        } else {
            plain.push(c);
        }
    }
    plain
        .lines()
        .filter(|l| l.contains(" delivered task=") && l.contains(&format!("-{task} bytes=")))
        .filter_map(|l| l.split("bytes=").nth(1)?.split_whitespace().next()?.parse().ok())
        .collect()
}

#[test]
fn deliveries_cost_the_tree_and_gc_brings_a_dead_sandpens_work_back() {
    if !swarm::wanted() {
        eprintln!("skipped: set SANDPEN_TEST_SWARM=1 (as root, with docker-registry installed)");
        return;
    }
    let cluster = Swarm::start(1, 3);
    let manager = cluster.manager().to_string();
    let probe = cluster.probe(&["build"]);

    // 200 MB of history in old commits (since removed), a tree of 2 MB.
    let repo = common::make_repo();
    let dir = repo.path();
    for i in 0..4 {
        random_file(&dir.join(format!("old/big{i}")), 50 << 20);
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-qm", &format!("big {i}")]);
    }
    git(dir, &["rm", "-rq", "old"]);
    for i in 0..16 {
        random_file(&dir.join(format!("src/f{i}.bin")), 128 << 10);
    }
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", "the tree"]);
    std::fs::write(dir.join("README"), "changed lately\n").unwrap();
    git(dir, &["commit", "-qam", "lately"]);
    let tree = walk(dir, &|p| !p.ends_with(".git"));
    let history = du(&dir.join(".git/objects"));
    assert!(history > 200 << 20, "{history}");

    let swarm_run = |tasks: &common::TaskFile| {
        let mut cmd = sandpen();
        common::with_test_credentials(&mut cmd);
        cmd.env("DOCKER_HOST", &manager)
            .env("SANDPEN_LOG", "warn,sandpen::swarm::exchange=info")
            .current_dir(dir)
            .args(["run", "--backend", "swarm", "--network", "bridge"])
            .args([
                "--registry",
                &cluster.registry,
                "--advertise-addr",
                &cluster.host_addr,
            ])
            .args(["--image", &probe, "--repo"])
            .arg(dir)
            .arg("--report")
            .arg(&tasks.report)
            .arg(&tasks.path);
        cmd
    };

    // 1. What a task is sent, and what git in it still sees.
    let tasks = common::task_file(
        "[[task]]\nid = \"looks\"\nprompt_text = '''\nset -e\n\
         git log --format=%s > log.txt\n\
         git diff --no-renames --name-status HEAD~2 HEAD~1 | cut -c1 | sort | uniq -c | tr -s ' ' > diff.txt\n\
         git show HEAD > show.txt\n\
         if git cat-file -e HEAD~2:old/big0 2>/dev/null; then echo here; else echo absent; fi > old.txt\n\
         git status --porcelain > status.txt\n\
         git add -A && git commit -qm looked\n'''\n",
    );
    let started = Instant::now();
    let out = output(&mut swarm_run(&tasks));
    let dump = common::dump(out.status.code().unwrap_or(-1), started.elapsed(), &out);
    assert_eq!(out.status.code(), Some(0), "{dump}");
    let sent = delivered(&stderr(&out), "looks");
    assert_eq!(sent.len(), 1, "one delivery, counted: {dump}");
    eprintln!(
        "delivered {} bytes to the task; its tree {tree} bytes, the history {history} bytes",
        sent[0]
    );
    assert!(sent[0] < 3 * tree, "{} bytes for a tree of {tree}", sent[0]);
    let report = common::read_report(&tasks.report).unwrap_or_else(|e| panic!("{e}: {dump}"));
    let run = report["run_id"].as_str().unwrap().to_string();
    let tokens = runs_dir(dir).join(&run).join("_sandpen/swarm-tokens");
    assert!(!tokens.exists(), "a run that ended keeps no token");
    let show = |task: &str, file: &str| git(dir, &["show", &format!("sandpen/{task}/{run}:{file}")]);
    assert_eq!(
        show("looks", "log.txt"),
        "lately\nthe tree\nbig 3\nbig 2\nbig 1\nbig 0\ninitial commit\n",
        "the whole history's commits"
    );
    assert_eq!(show("looks", "diff.txt"), " 16 A\n 4 D\n", "the history's trees");
    assert_eq!(show("looks", "old.txt"), "absent\n", "the old blobs stay home");
    assert!(
        show("looks", "show.txt").contains("+changed lately"),
        "recent small blobs came"
    );
    let status = show("looks", "status.txt");
    assert!(
        status.lines().all(|l| l.starts_with("?? ")),
        "the tree as checked out: {status}"
    );
    assert!(status.contains("?? log.txt"), "{status}");

    // 2. sandpen dies mid-run: one task ends after that (its work waits on its node), one is
    // still running when gc comes (gc's stop makes it collect).
    let tasks = common::task_file(
        "[[task]]\nid = \"short\"\nprompt_text = '''\necho s > s.txt && git add s.txt && git commit -qm short\n\
         echo committed\nsleep 10\necho after > after.txt\n'''\n\
         [[task]]\nid = \"long\"\nprompt_text = '''\necho l > l.txt && git add l.txt && git commit -qm long\n\
         echo committed\nsleep 300\n'''\n",
    );
    let before: Vec<_> = std::fs::read_dir(runs_dir(dir))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    let err = std::fs::File::create(tasks.dir.path().join("stderr")).unwrap();
    let mut child = swarm_run(&tasks)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .unwrap();
    let run_dir = wait_for(Duration::from_secs(240), || {
        let d = std::fs::read_dir(runs_dir(dir))
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| !before.contains(p))?;
        let said = |t: &str| {
            std::fs::read_to_string(d.join(format!("{t}.log"))).is_ok_and(|l| l.contains("committed"))
        };
        (said("short") && said("long")).then_some(d)
    })
    .unwrap_or_else(|| {
        let _ = child.kill();
        panic!(
            "both tasks never committed: {}",
            std::fs::read_to_string(tasks.dir.path().join("stderr")).unwrap_or_default()
        )
    });
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let tokens = run_dir.join("_sandpen/swarm-tokens");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&tokens).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the tokens are the owner's alone");
    // The short task ends meanwhile (it sleeps 10 s after its commit: long enough for the other
    // task's node to pull the image and say so too), and its entry step finds nobody to send
    // its work to.
    let run = run_dir.file_name().unwrap().to_str().unwrap().to_string();
    let short_logs = || {
        let logs = output(Command::new("docker").env("DOCKER_HOST", &manager).args([
            "service",
            "logs",
            "--raw",
            &format!("sandpen-{run}-short"),
        ]));
        format!("{}{}", stdout(&logs), stderr(&logs))
    };
    let offered = wait_for(Duration::from_secs(60), || {
        let logs = short_logs();
        logs.contains("offering the work again").then_some(logs)
    });
    let logs =
        offered.unwrap_or_else(|| panic!("the short task never offered its work again: {}", short_logs()));
    assert_eq!(
        cluster.services().len(),
        2,
        "the tasks wait: {:?}",
        cluster.services()
    );
    let kept = std::fs::read_to_string(&tokens).unwrap();
    for line in kept.lines() {
        let token = line.split(' ').next().unwrap().rsplit('/').next().unwrap();
        assert!(
            token.len() >= 32 && !logs.contains(token),
            "no token in a log: {line}"
        );
    }

    let gc = output(sandpen().arg("gc").env("DOCKER_HOST", &manager).current_dir(dir));
    assert!(gc.status.success(), "{}\n{}", stdout(&gc), stderr(&gc));
    let said = stdout(&gc);
    for (task, file, text) in [
        ("short", "s.txt", "s\n"),
        ("short", "after.txt", "after\n"),
        ("long", "l.txt", "l\n"),
    ] {
        assert!(
            said.contains(&format!("task {task}: branch sandpen/{task}/{run}")),
            "{said}"
        );
        assert_eq!(
            git(dir, &["show", &format!("sandpen/{task}/{run}:{file}")]),
            text,
            "{said}"
        );
    }
    assert!(!tokens.exists(), "the tokens go once the run is finished");
    let report = common::read_report(&run_dir.join("report.json")).unwrap();
    assert_eq!(report["complete"], true, "{report:#}");

    // Nothing left on any node: services, containers, volumes, secrets.
    cluster.assert_clean("after gc");
    for node in &cluster.nodes {
        let ls = |what: &str| {
            let o = output(
                Command::new("docker")
                    .env("DOCKER_HOST", &node.host)
                    .args([what, "ls", "-q"]),
            );
            stdout(&o).trim().to_string()
        };
        let volumes = wait_for(Duration::from_secs(30), || ls("volume").is_empty().then_some(()));
        assert!(
            volumes.is_some(),
            "volumes left on {}: {}",
            node.hostname,
            ls("volume")
        );
        if node.host == manager {
            assert_eq!(ls("secret"), "", "secrets left");
        }
    }
}
