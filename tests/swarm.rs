//! Tasks' containers as services on a real multi-node Docker Swarm (issue 11): a Swarm the test
//! makes itself (`common/swarm.rs`: private engines in network namespaces of their own, a
//! registry), the probe image pushed there by `sandpen image push` and pulled by digest, and
//! services driven through `SwarmEngine`, the `ContainerEngine` the runner will use. Runs when
//! CI asks (`SANDPEN_TEST_SWARM=1`, as root).

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::swarm::{self, Swarm};
use common::{output, sandpen, stderr, stdout, wait_for};
use futures_util::StreamExt;
use sandpen::engine::spec::{ContainerSpec, Limits};
use sandpen::engine::{ContainerEngine, Engine, Stream};
use sandpen::swarm::{Placement, SwarmEngine, SwarmError};

fn spec(name: &str, image: &str, script: &str, memory_mib: i64) -> ContainerSpec {
    ContainerSpec {
        name: name.to_string(),
        image: image.to_string(),
        cmd: vec!["sh".into(), "-c".into(), script.to_string()],
        env: vec![format!("TASK={name}")],
        secrets: vec![],
        user: (1000, 1000),
        labels: HashMap::from([("sandpen.run".to_string(), "swarm-test".to_string())]),
        workspace: "/nonexistent".into(),
        mounts: vec![],
        limits: Limits {
            nano_cpus: 500_000_000,
            memory_bytes: memory_mib << 20,
            pids: 64,
        },
        network: "bridge".into(),
        engine_log: false,
        gated: false,
    }
}

/// Everything a service printed, read until its log stream ends by itself.
async fn output_of(swarm: &SwarmEngine, id: &str) -> String {
    let mut stream = swarm.attach(id).await.expect("attach");
    let mut text = String::new();
    let read = async {
        while let Some(chunk) = stream.next().await {
            let (which, bytes) = chunk.expect("log chunk");
            if which == Stream::Stdout {
                text.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(90), read)
        .await
        .expect("the log stream ends once the task is down");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn services_run_on_every_node_under_their_limits_and_leave_nothing_behind() {
    if !swarm::wanted() {
        eprintln!("skipped: set SANDPEN_TEST_SWARM=1 (as root, with docker-registry installed)");
        return;
    }
    let cluster = Swarm::start(1, 0);
    let manager = cluster.manager().to_string();

    // The system engine is in no Swarm, a worker is not a manager: both refused, with the fix.
    let system = Engine::connect(None).await.unwrap();
    let refused = SwarmEngine::new(system, Placement::default())
        .await
        .err()
        .unwrap();
    assert!(matches!(refused, SwarmError::NotManager { .. }), "{refused}");
    assert!(refused.to_string().contains("docker swarm init"), "{refused}");
    let worker = Engine::connect(Some(&cluster.nodes[1].host)).await.unwrap();
    let refused = SwarmEngine::new(worker, Placement::default())
        .await
        .err()
        .unwrap();
    assert!(refused.to_string().contains("a worker"), "{refused}");

    // The probe image, pushed by sandpen through the manager and named by digest.
    common::image("probe");
    swarm::load_into("sandpen-base:bookworm", &manager);
    let push = output(sandpen().env("DOCKER_HOST", &manager).args([
        "image",
        "push",
        "--target",
        "probe",
        "--bootstrap-base",
        "--registry",
        &cluster.registry,
    ]));
    assert!(push.status.success(), "{}", stderr(&push));
    let pinned = stdout(&push).lines().last().unwrap_or_default().to_string();
    assert!(
        pinned.starts_with(&format!("{}/sandpen-probe@sha256:", cluster.registry)),
        "{pinned}"
    );
    // A registry nobody answers at: exit 3, and the fix named.
    let nowhere = format!("{}:1", cluster.host_addr);
    let push = output(sandpen().env("DOCKER_HOST", &manager).args([
        "image",
        "push",
        "--target",
        "probe",
        "--registry",
        &nowhere,
    ]));
    assert_eq!(push.status.code(), Some(3), "{}", stderr(&push));
    assert!(stderr(&push).contains("insecure-registries"), "{}", stderr(&push));

    let engine = Engine::connect(Some(&manager)).await.unwrap();
    let placement = Placement {
        constraints: vec![],
        grace: Duration::from_secs(3),
    };
    let swarm = SwarmEngine::new(engine, placement).await.expect("the manager");

    // Four tasks of 256 MiB and half a core each, spread over the nodes; each prints what
    // its cgroup allows and exits with its own code.
    let script = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max \
                  /sys/fs/cgroup/cpu/cpu.cfs_quota_us; id -u; echo task=$TASK; \
                  touch /etc/x 2>/dev/null && echo root-writable; sleep 2; exit ${TASK#t}";
    let mut ids = Vec::new();
    for i in 1..=4 {
        let id = swarm
            .create(&spec(&format!("t{i}"), &pinned, script, 256))
            .await
            .expect("create");
        swarm.start(&id).await.unwrap();
        ids.push(id);
    }
    let mut nodes = HashSet::new();
    for (i, id) in ids.iter().enumerate() {
        let text = output_of(&swarm, id).await;
        let code = swarm.wait(id).await.expect("wait");
        let want = (i + 1) as i64;
        assert_eq!(code, want, "{text}");
        assert_eq!(swarm.exit_state(id).await.unwrap().exit_code, want);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.first(), Some(&"268435456"), "memory limit: {text}");
        assert_eq!(lines.get(1), Some(&"64"), "pids limit: {text}");
        assert_eq!(
            lines.get(2),
            Some(&"50000"),
            "half a core (quota of a 100000 period): {text}"
        );
        assert_eq!(lines.get(3), Some(&"1000"), "runs as the task's uid: {text}");
        assert!(text.contains(&format!("task=t{want}")), "{text}");
        assert!(!text.contains("root-writable"), "the root is read-only: {text}");
        let node = swarm.node_of(id).await.unwrap().expect("placed on a node");
        nodes.insert(node.hostname);
        swarm.remove(id).await.expect("remove");
    }
    let hostnames: HashSet<String> = cluster.nodes.iter().map(|n| n.hostname.clone()).collect();
    assert_eq!(nodes, hostnames, "the tasks ran on every node");

    // A task stopped while it runs: its container gets SIGTERM and is down within the grace.
    let id = swarm
        .create(&spec(
            "long",
            &pinned,
            "trap 'echo got TERM; exit 7' TERM; sleep 300 & wait",
            64,
        ))
        .await
        .unwrap();
    let running = wait_for(Duration::from_secs(60), || {
        let s = output(
            std::process::Command::new("docker")
                .env("DOCKER_HOST", &manager)
                .args(["service", "ps", "long", "--format", "{{.CurrentState}}"]),
        );
        stdout(&s).starts_with("Running").then_some(())
    });
    assert!(running.is_some(), "the long task never ran");
    let asked = Instant::now();
    swarm.stop(&id, Duration::from_secs(3)).await.expect("stop");
    let code = tokio::time::timeout(Duration::from_secs(30), swarm.wait(&id))
        .await
        .expect("down within the grace and then some")
        .expect("wait");
    assert_eq!(code, 7, "it got SIGTERM and ended itself");
    assert!(asked.elapsed() < Duration::from_secs(20), "{:?}", asked.elapsed());
    swarm.remove(&id).await.expect("remove after stop");

    let listed = swarm.list("sandpen.run", Some("swarm-test")).await.unwrap();
    assert!(listed.is_empty(), "services left: {listed:?}");
    assert!(cluster.services().is_empty(), "{:?}", cluster.services());
    let clean = wait_for(Duration::from_secs(30), || {
        cluster.containers().is_empty().then_some(())
    });
    assert!(
        clean.is_some(),
        "containers left on the nodes: {:?}",
        cluster.containers()
    );
}
