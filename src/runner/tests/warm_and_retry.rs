//! The scheduler with a warm environment to prepare, and a retry's resume of its session.

use super::*;

/// A preparation that says `state` at once, counting its calls.
struct FakePrep(crate::warm::EnvState, std::sync::atomic::AtomicUsize);

impl crate::warm::Prepare for FakePrep {
    fn prepare<'a>(
        &'a self,
        _: Option<&'a crate::gateway::GatewayHandle>,
    ) -> futures_util::future::BoxFuture<'a, crate::warm::Environment> {
        self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(std::future::ready(crate::warm::Environment {
            volume: "sandpen-env-0123".into(),
            from: "uv.lock".into(),
            state: self.0,
            started_at: String::new(),
            duration_s: 0.1,
            bytes_fetched: 0,
            output: None,
            image: None,
        }))
    }
}

#[tokio::test]
async fn the_environment_is_prepared_once_and_a_failed_one_fails_its_tasks_without_containers() {
    use crate::warm::{EnvState, Warm};
    for state in [EnvState::Prepared, EnvState::Failed] {
        let b = Behaviour { secs: 0.0, code: 0 };
        let engine = FakeEngine::new([("a", b), ("b", b)]);
        let prep = std::sync::Arc::new(FakePrep(state, 0.into()));
        let (_dir, mut cfg) = config(2).await;
        cfg.warm = Some(Warm::new(prep.clone()));
        let (tx, _rx) = EventSender::channel();
        let tasks = vec![task("a", &[], 60), task("b", &["a"], 60)];
        let r = execute(engine.clone(), Plan { tasks }, cfg, tx, Stop::default()).await;
        assert_eq!(
            prep.1.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "once per run"
        );
        assert_eq!(r.environment.as_ref().map(|e| e.state), Some(state));
        for id in ["a", "b"] {
            let t = r.tasks.iter().find(|t| t.id == id).unwrap();
            match state {
                EnvState::Failed => {
                    assert_eq!(t.status, TaskStatus::Failed);
                    assert!(t.message.as_deref().unwrap().contains("could not be prepared"));
                    assert_eq!(t.environment, None);
                }
                _ => {
                    assert_eq!(t.status, TaskStatus::Succeeded);
                    assert_eq!(t.environment.as_deref(), Some("sandpen-env-0123"));
                }
            }
        }
        if state == EnvState::Failed {
            assert!(engine.created_tasks().is_empty(), "no container made");
        }
    }
}

/// A preparation whose volume opens at once and that ends as `state` after `delay`.
struct BesidePrep(crate::warm::EnvState, Duration);

impl crate::warm::Prepare for BesidePrep {
    fn open(&self) -> futures_util::future::BoxFuture<'_, Option<String>> {
        Box::pin(std::future::ready(Some("sandpen-env-0123".to_string())))
    }

    fn prepare<'a>(
        &'a self,
        g: Option<&'a crate::gateway::GatewayHandle>,
    ) -> futures_util::future::BoxFuture<'a, crate::warm::Environment> {
        Box::pin(async move {
            tokio::time::sleep(self.1).await;
            FakePrep(self.0, 0.into()).prepare(g).await
        })
    }
}

#[tokio::test]
async fn tasks_start_beside_the_preparation_and_a_failed_one_stops_them_as_failed() {
    use crate::warm::{EnvState, Warm};
    for state in [EnvState::Prepared, EnvState::Failed] {
        // Prepared: the tasks end before the preparation is said done, and still name the
        // environment they started from. Failed: they run until stopped.
        let secs = if state == EnvState::Failed { 5.0 } else { 0.05 };
        let b = Behaviour { secs, code: 0 };
        let engine = FakeEngine::new([("a", b), ("b", b), ("c", b)]);
        let (_dir, mut cfg) = config(2).await;
        let prep = BesidePrep(state, Duration::from_millis(500));
        cfg.warm = Some(Warm::new(std::sync::Arc::new(prep)));
        let (tx, mut rx) = EventSender::channel();
        let seen = tokio::spawn(async move {
            let mut order = Vec::new();
            while let Some(e) = rx.recv().await {
                match e {
                    Event::TaskStarted { task, .. } => order.push(task),
                    Event::Environment { .. } => order.push("environment".into()),
                    _ => {}
                }
            }
            order
        });
        // c depends on a: it starts after the environment's end, or never when that failed.
        let tasks = vec![task("a", &[], 60), task("b", &[], 60), task("c", &["a"], 60)];
        let r = execute(engine.clone(), Plan { tasks }, cfg, tx, Stop::default()).await;
        let order = seen.await.unwrap();
        let env_at = order.iter().position(|e| e == "environment").unwrap();
        let before: std::collections::BTreeSet<_> = order[..env_at].iter().cloned().collect();
        assert!(before.contains("a") && before.contains("b"), "{order:?}");
        let ended = |id: &str| r.tasks.iter().find(|t| t.id == id).unwrap().clone();
        match state {
            EnvState::Failed => {
                for id in ["a", "b"] {
                    let t = ended(id);
                    assert_eq!(t.status, TaskStatus::Failed, "{t:?}");
                    assert!(t.message.as_deref().unwrap().contains("could not be prepared"));
                    assert_eq!(t.environment, None);
                }
                let mut stopped = engine.stopped_tasks();
                stopped.sort();
                assert_eq!(stopped.len(), 2, "both stopped: {stopped:?}");
                let c = ended("c");
                assert_eq!(c.status, TaskStatus::Failed, "not started, failed for it: {c:?}");
                assert!(c.container_id.is_none());
            }
            _ => {
                for id in ["a", "b", "c"] {
                    let t = ended(id);
                    assert_eq!(t.status, TaskStatus::Succeeded, "{t:?}");
                    assert_eq!(t.environment.as_deref(), Some("sandpen-env-0123"));
                }
            }
        }
    }
}

#[tokio::test]
async fn a_retry_resumes_the_session_its_attempt_left_and_never_an_older_one() {
    use crate::agent::session::{self, Resume, SessionUse};
    let (_dir, mut cfg) = config(1).await;
    let stale = Resume {
        session_id: "old".into(),
        prompt: "attempt 1 stopped".into(),
    };
    cfg.earlier.resume.insert("a".into(), stale);
    let cfg = std::sync::Arc::new(cfg);
    let mut ended = crate::runner::TaskResult::new("a", "fake", task("a", &[], 1).limits);
    ended.status = TaskStatus::Failed;
    ended.message = Some("overloaded".into());
    ended.session = Some(SessionUse {
        id: Some("s-2".into()),
        resumed_from: Some("old".into()),
    });
    // No transcript of s-2: the next attempt starts over, the stale resume gone.
    let next = crate::runner::retry::next_config(&cfg, &ended, 2);
    assert!(!next.earlier.resume.contains_key("a"));
    // Its transcript there: resumed, told which attempt stopped and why.
    let path = session::transcript(&cfg.layout.session("a"), "s-2");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "{}\n").unwrap();
    let next = crate::runner::retry::next_config(&cfg, &ended, 2);
    let r = &next.earlier.resume["a"];
    assert_eq!(r.session_id, "s-2");
    assert!(
        r.prompt.contains("attempt 2") && r.prompt.contains("failed: overloaded"),
        "{}",
        r.prompt
    );
}
