//! The scheduler's logic against a fake engine (real git for the checkouts).

use std::path::Path;
use std::time::Duration;

use super::fake::{Behaviour, FakeEngine};
use super::{Event, EventSender, RunConfig, Stop, TaskStatus, execute};
use crate::engine::spec::{Limits, Owner};
use crate::plan::{Plan, TaskSpec};
use crate::workspace::Repo;

fn git(dir: &Path, args: &[&str]) {
    crate::test_git::git(dir, args);
}

fn task(id: &str, deps: &[&str], timeout_s: u64) -> TaskSpec {
    TaskSpec {
        runtime: None,
        id: id.into(),
        prompt: "p".into(),
        source: "t.toml".into(),
        limits: Limits {
            nano_cpus: 1_000_000_000,
            memory_bytes: 64 << 20,
            pids: 64,
        },
        memory_request_bytes: 64 << 20,
        timeout: Duration::from_secs(timeout_s),
        depends_on: deps.iter().map(|d| d.to_string()).collect(),
        env: Default::default(),
        disk_bytes: None,
        log_limit_bytes: 1 << 30,
        salvage: Default::default(),
        allow_hosts: Vec::new(),
        max_cost: None,
    }
}

async fn run(engine: FakeEngine, tasks: Vec<TaskSpec>, jobs: usize, fail_fast: bool) -> super::RunReport {
    let (tx, _rx) = EventSender::channel();
    run_with(engine, tasks, jobs, fail_fast, tx, Stop::default()).await
}

async fn run_with(
    engine: FakeEngine,
    tasks: Vec<TaskSpec>,
    jobs: usize,
    fail_fast: bool,
    tx: EventSender,
    stop: Stop,
) -> super::RunReport {
    run_on(engine, 0, tasks, jobs, fail_fast, tx, stop).await
}

/// A run on an engine of `engine_memory` bytes (0: unknown).
async fn run_on(
    engine: FakeEngine,
    engine_memory: u64,
    tasks: Vec<TaskSpec>,
    jobs: usize,
    fail_fast: bool,
    tx: EventSender,
    stop: Stop,
) -> super::RunReport {
    let (_dir, mut cfg) = config(jobs).await;
    cfg.engine_memory = engine_memory;
    cfg.fail_fast = fail_fast;
    execute(engine, Plan { tasks }, cfg, tx, stop).await
}

/// A run's configuration in a fresh repository (kept while the directory lives).
async fn config(jobs: usize) -> (tempfile::TempDir, RunConfig) {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q"]);
    git(dir.path(), &["commit", "-q", "--allow-empty", "-m", "init"]);
    let repo = Repo::discover(Some(dir.path())).await.unwrap();
    let base = repo.resolve("HEAD").await.unwrap();
    let run_dir = repo.run_dir("r1").await.unwrap();
    let cfg = RunConfig {
        run_id: "r1".into(),
        owner: Owner {
            run_id: "r1".into(),
            process: "h:1".into(),
            process_start: "1".into(),
            run_dir: run_dir.root.clone(),
        },
        repo,
        layout: run_dir.clone(),
        base,
        deps_from: Default::default(),
        image: "fake".into(),
        network: super::TaskNetwork::None,
        max_turns: 5,
        jobs,
        engine_memory: 0,
        limits_enforced: true,
        fail_fast: false,
        retries: 0,
        retry_on: Vec::new(),
        keep_containers: false,
        grace: Duration::from_secs(1),
        credentials: vec![],
        gateway: None,
        earlier: Default::default(),
        warm: None,
    };
    (dir, cfg)
}

fn status(r: &super::RunReport, id: &str) -> TaskStatus {
    r.tasks.iter().find(|t| t.id == id).unwrap().status
}

#[tokio::test]
async fn never_more_containers_than_jobs() {
    let b = Behaviour { secs: 0.2, code: 0 };
    let engine = FakeEngine::new([("a", b), ("b", b), ("c", b), ("d", b), ("e", b)]);
    let tasks = ["a", "b", "c", "d", "e"].map(|id| task(id, &[], 60)).to_vec();
    let r = run(engine.clone(), tasks, 2, false).await;
    assert!(
        r.all_succeeded(),
        "{:?}",
        r.tasks.iter().map(|t| (&t.id, t.status)).collect::<Vec<_>>()
    );
    assert_eq!(engine.max_running(), 2);
}

#[tokio::test]
async fn a_failed_dependency_skips_its_dependents_transitively() {
    let engine = FakeEngine::new([("a", Behaviour { secs: 0.0, code: 1 })]);
    let tasks = vec![
        task("a", &[], 60),
        task("b", &["a"], 60),
        task("c", &["b"], 60),
        task("d", &[], 60),
    ];
    let r = run(engine, tasks, 4, false).await;
    assert_eq!(status(&r, "a"), TaskStatus::Failed);
    assert_eq!(status(&r, "b"), TaskStatus::Skipped);
    assert_eq!(status(&r, "c"), TaskStatus::Skipped);
    assert_eq!(status(&r, "d"), TaskStatus::Succeeded);
}

#[tokio::test]
async fn fail_fast_cancels_running_and_queued_tasks() {
    let engine = FakeEngine::new([
        ("bad", Behaviour { secs: 0.0, code: 2 }),
        ("slow", Behaviour { secs: 30.0, code: 0 }),
        ("queued", Behaviour { secs: 30.0, code: 0 }),
    ]);
    let tasks = vec![
        task("bad", &[], 60),
        task("slow", &[], 60),
        task("queued", &[], 60),
    ];
    let started = std::time::Instant::now();
    let r = run(engine.clone(), tasks, 2, true).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(status(&r, "bad"), TaskStatus::Failed);
    assert_eq!(status(&r, "slow"), TaskStatus::Cancelled);
    assert_eq!(status(&r, "queued"), TaskStatus::Cancelled);
    // "slow" is stopped if its container had started, or never started if it was still
    // getting its checkout; "queued" never gets a container.
    let stopped = engine.stopped_tasks();
    assert!(stopped.is_empty() || stopped == ["slow"], "{stopped:?}");
    assert!(!engine.created_tasks().contains(&"queued".to_string()));
}

#[tokio::test]
async fn a_task_past_its_timeout_is_stopped_and_timed_out() {
    let engine = FakeEngine::new([("t", Behaviour { secs: 30.0, code: 0 })]);
    let r = run(engine.clone(), vec![task("t", &[], 1)], 1, false).await;
    assert_eq!(status(&r, "t"), TaskStatus::TimedOut);
    assert_eq!(engine.stopped_tasks(), ["t"]);
}

#[tokio::test]
async fn a_cli_that_did_not_load_the_workflow_manager_is_stopped() {
    let init = r#"{"type":"system","subtype":"init","agents":["general-purpose"]}"#;
    let engine = FakeEngine::new([("t", Behaviour { secs: 30.0, code: 0 })]).with_init("t", init);
    let started = std::time::Instant::now();
    let r = run(engine.clone(), vec![task("t", &[], 60)], 1, false).await;
    let t = r.tasks.iter().find(|t| t.id == "t").unwrap();
    assert_eq!(t.status, TaskStatus::Failed);
    let msg = t.message.as_deref().unwrap();
    assert!(
        msg.contains("governance violation") && msg.contains("general-purpose"),
        "{msg}"
    );
    assert_eq!(engine.stopped_tasks(), ["t"]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopped, not waited out"
    );
}

#[tokio::test]
async fn under_fail_fast_the_dependents_of_a_cancelled_task_are_cancelled() {
    let engine = FakeEngine::new([
        ("bad", Behaviour { secs: 0.2, code: 2 }),
        ("slow", Behaviour { secs: 30.0, code: 0 }),
    ]);
    let tasks = vec![
        task("bad", &[], 60),
        task("slow", &[], 60),
        task("after-slow", &["slow"], 60),
    ];
    let r = run(engine, tasks, 2, true).await;
    assert_eq!(status(&r, "bad"), TaskStatus::Failed);
    assert_eq!(status(&r, "slow"), TaskStatus::Cancelled);
    assert_eq!(status(&r, "after-slow"), TaskStatus::Cancelled);
}

#[tokio::test]
async fn a_task_cancelled_while_its_checkout_is_made_gets_no_container() {
    let engine = FakeEngine::new([("t", Behaviour { secs: 5.0, code: 0 })]);
    let stop = Stop::default();
    let (tx, mut rx) = EventSender::channel();
    let cancel = stop.graceful.clone();
    // Ctrl-C the moment the checkout starts (a clone takes milliseconds; this takes none).
    let display = tokio::spawn(async move {
        while let Some(e) = rx.recv().await {
            if matches!(e, Event::TaskPreparing { .. }) {
                cancel.cancel();
            }
        }
    });
    // The repository is kept while the checkout is looked at.
    let (_dir, cfg) = config(1).await;
    let plan = Plan {
        tasks: vec![task("t", &[], 60)],
    };
    let r = execute(engine.clone(), plan, cfg, tx, stop).await;
    display.abort();
    assert_eq!(status(&r, "t"), TaskStatus::Cancelled);
    assert!(engine.created_tasks().is_empty(), "{:?}", engine.created_tasks());
    let t = &r.tasks[0];
    assert!(t.container_id.is_none(), "{t:?}");
    // Its checkout, handed to the task's user when sandpen runs as root, came back.
    use std::os::unix::fs::MetadataExt;
    let owner = |p: &Path| std::fs::metadata(p).map(|m| (m.uid(), m.gid())).unwrap();
    let checkout = Path::new(&t.checkout);
    let root = checkout.ancestors().nth(5).unwrap();
    assert!(root.join(".git").is_dir(), "{}", root.display());
    for p in [checkout.to_path_buf(), checkout.join(".git/HEAD")] {
        assert_eq!(owner(&p), owner(root), "{}", p.display());
    }
}

#[tokio::test]
async fn a_task_cancelled_before_its_far_container_runs_is_cancelled_not_an_error() {
    let (engine, pulling) = FakeEngine::new([("t", Behaviour { secs: 5.0, code: 0 })]).far_and_pulling();
    let stop = Stop::default();
    let (tx, mut rx) = EventSender::channel();
    let display = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let cancel = stop.graceful.clone();
    tokio::spawn(async move {
        pulling.notified().await;
        cancel.cancel();
    });
    let r = run_with(engine.clone(), vec![task("t", &[], 60)], 1, false, tx, stop).await;
    display.abort();
    assert_eq!(engine.created_tasks(), ["t"], "its container was made");
    let t = &r.tasks[0];
    // Nothing ran, so nothing could come back: that is not a failed collection.
    assert_eq!(t.status, TaskStatus::Cancelled, "{t:?}");
    assert!(t.started_at.is_none(), "{t:?}");
}

const GIB: u64 = 1 << 30;

fn task_with_memory(id: &str, bytes: u64) -> TaskSpec {
    let mut t = task(id, &[], 60);
    t.limits.memory_bytes = bytes as i64;
    t.memory_request_bytes = bytes as i64;
    t
}

/// Runs `tasks` on an engine of `engine_memory` bytes; the report and every event.
async fn run_collecting(
    engine: FakeEngine,
    engine_memory: u64,
    tasks: Vec<TaskSpec>,
    jobs: usize,
) -> (super::RunReport, Vec<Event>) {
    let (tx, mut rx) = EventSender::channel();
    let display = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(e) = rx.recv().await {
            let last = matches!(e, Event::RunFinished { .. });
            seen.push(e);
            if last {
                break;
            }
        }
        seen
    });
    let r = run_on(engine, engine_memory, tasks, jobs, false, tx, Stop::default()).await;
    (r, display.await.unwrap())
}

fn epoch(t: &Option<String>) -> f64 {
    let t = t.as_deref().expect("a timestamp");
    humantime::parse_rfc3339(t)
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test]
async fn running_tasks_memory_limits_never_exceed_the_engines_memory() {
    let b = Behaviour { secs: 0.3, code: 0 };
    let engine = FakeEngine::new([("m1", b), ("m2", b), ("m3", b)]);
    let tasks = ["m1", "m2", "m3"]
        .map(|id| task_with_memory(id, 10 * GIB))
        .to_vec();
    let (r, events) = run_collecting(engine.clone(), 23 * GIB, tasks, 3).await;
    assert!(r.all_succeeded(), "{:?}", r.tasks);
    assert_eq!(
        engine.max_running(),
        2,
        "-j 3, but only two 10 GiB limits fit in 23 GiB"
    );
    assert!(engine.max_reserved_memory() <= 23 * GIB);
    let waits: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::WaitingForMemory {
                task,
                needs_bytes,
                free_bytes,
                total_bytes,
            } => Some((task.as_str(), *needs_bytes, *free_bytes, *total_bytes)),
            _ => None,
        })
        .collect();
    assert_eq!(
        waits,
        [("m3", 10 * GIB, 3 * GIB, 23 * GIB)],
        "said once, by the scheduler"
    );
    // The wait is part of its queueing: queued when m1 and m2 started, began once one ended.
    let m3 = r.tasks.iter().find(|t| t.id == "m3").unwrap();
    let first_end = r.tasks[..2]
        .iter()
        .map(|t| epoch(&t.ended_at))
        .fold(f64::MAX, f64::min);
    assert!(epoch(&m3.began_at) >= first_end, "{:?}", r.tasks);
    assert!(epoch(&m3.queued_at) < first_end, "{:?}", r.tasks);
}

#[tokio::test]
async fn a_task_waiting_for_memory_is_not_overtaken_by_a_smaller_one() {
    let engine = FakeEngine::new([
        ("first", Behaviour { secs: 0.5, code: 0 }),
        ("big", Behaviour { secs: 0.1, code: 0 }),
        ("small", Behaviour { secs: 0.1, code: 0 }),
    ]);
    let tasks = vec![
        task_with_memory("first", 6 * GIB),
        task_with_memory("big", 6 * GIB),
        task_with_memory("small", GIB),
    ];
    let (r, _) = run_collecting(engine.clone(), 8 * GIB, tasks, 4).await;
    assert!(r.all_succeeded(), "{:?}", r.tasks);
    let at = |id: &str| r.tasks.iter().find(|t| t.id == id).unwrap();
    let first_end = epoch(&at("first").ended_at);
    // small fits beside first (7 GiB of 8), but big came before it and waits.
    assert!(epoch(&at("big").began_at) >= first_end, "{:?}", r.tasks);
    assert!(epoch(&at("small").began_at) >= first_end, "{:?}", r.tasks);
    assert!(engine.max_reserved_memory() <= 8 * GIB);
}

#[tokio::test]
async fn a_task_larger_than_the_engine_runs_alone_instead_of_waiting_forever() {
    let b = Behaviour { secs: 0.1, code: 0 };
    let engine = FakeEngine::new([("huge", b), ("other", b)]);
    let tasks = vec![task_with_memory("huge", 16 * GIB), task_with_memory("other", GIB)];
    let (r, _) = run_collecting(engine.clone(), 8 * GIB, tasks, 2).await;
    assert!(r.all_succeeded(), "{:?}", r.tasks);
    assert_eq!(engine.max_running(), 1);
}

#[tokio::test]
async fn an_error_attempt_is_retried_as_a_new_attempt_and_a_failure_is_not() {
    let ok = Behaviour { secs: 0.05, code: 0 };
    let bad = Behaviour { secs: 0.05, code: 1 };
    let engine = FakeEngine::new([("a", ok), ("f", bad)]).fail_create_once("a");
    let (_dir, mut cfg) = config(2).await;
    cfg.retries = 2;
    let layout = cfg.layout.clone();
    let (tx, mut rx) = EventSender::channel();
    let said = tokio::spawn(async move {
        let mut said = Vec::new();
        while let Some(e) = rx.recv().await {
            if let Event::TaskRetrying {
                task, attempt, of, ..
            } = e
            {
                said.push((task, attempt, of));
            }
        }
        said
    });
    let tasks = vec![task("a", &[], 60), task("f", &[], 60)];
    let r = execute(engine.clone(), Plan { tasks }, cfg, tx, Stop::default()).await;
    let a = r.tasks.iter().find(|t| t.id == "a").unwrap();
    assert_eq!(a.status, TaskStatus::Succeeded, "{a:?}");
    let tries: Vec<_> = a.attempts.iter().map(|t| (t.number, t.status)).collect();
    assert_eq!(tries, [(1, TaskStatus::Error), (2, TaskStatus::Succeeded)]);
    assert!(
        a.attempts[0]
            .message
            .as_deref()
            .unwrap_or("")
            .contains("failed a create")
    );
    // The first attempt's checkout is kept under its number; the last is the task's own.
    assert!(layout.checkout("a.1").is_dir() && layout.checkout("a").is_dir());
    // `failed` is the agent's: never retried.
    let f = r.tasks.iter().find(|t| t.id == "f").unwrap();
    assert_eq!((f.status, f.attempts.len()), (TaskStatus::Failed, 1));
    assert_eq!(said.await.unwrap(), [("a".to_string(), 2, 3)]);
}

#[tokio::test]
async fn without_retries_an_error_attempt_ends_the_task() {
    let engine = FakeEngine::new([("a", Behaviour { secs: 0.05, code: 0 })]).fail_create_once("a");
    let r = run(engine, vec![task("a", &[], 60)], 1, false).await;
    assert_eq!(status(&r, "a"), TaskStatus::Error);
    assert_eq!(r.tasks[0].attempts.len(), 1);
}

// The warm environment and the retries' resume, apart: this file stays under 500 lines.
mod warm_and_retry;
