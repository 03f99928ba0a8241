//! Figure 7: The real Claude Code CLI in the agent image against sandpen's scripted model server:
//! tasks of a few turns, each answered after a fixed model latency, at -j N against -j 1.

use std::process::Command;

use sandpen::model_server::{ModelServer, Script, TaskScript, Turn};

use crate::ctx::{Ctx, Measured, run_ok, timed};
use crate::row::Row;
use crate::target::{Bound, Target};

pub const FIGURE: &str = "7. real CLI, scripted model: tasks of turns with model latency (wall -j 1 / -j N)";

pub fn measure(ctx: &Ctx, _notes: &mut Vec<String>) -> Measured<Vec<Row>> {
    let (n, turns, latency_ms) = if ctx.quick { (2, 3, 200) } else { (8, 5, 1000) };
    let built = run_ok(Command::new(&ctx.sandpen).args(["image", "build", "--target", "agent"]))
        .map_err(|e| format!("the agent image could not be built here ({e})"))?;
    let agent = built.lines().last().unwrap_or_default().trim().to_string();
    // The runs below use the gateway (sandpen's default network): its image is made by the
    // first run that needs it, which would then time the build.
    run_ok(Command::new(&ctx.sandpen).args(["image", "build", "--target", "gateway"]))
        .map_err(|e| format!("the gateway image could not be built here ({e})"))?;
    let ids: Vec<String> = (0..n).map(|i| format!("t{i:03}")).collect();
    let script = Script {
        tasks: ids
            .iter()
            .map(|id| {
                let mut steps: Vec<Turn> = (1..turns)
                    .map(|k| {
                        Turn::bash(format!("echo step {k} >> steps.txt"), format!("step {k}"))
                            .with_delay(latency_ms)
                    })
                    .collect();
                steps.push(Turn::text("done").with_delay(latency_ms));
                (id.clone(), TaskScript { turns: steps })
            })
            .collect(),
        rate_limit: None,
        overloaded: None,
    };
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let server = rt
        .block_on(async {
            let engine = sandpen::engine::Engine::connect(None).await.ok()?;
            let gateway = engine.bridge_gateway().await.ok()?;
            ModelServer::start(script, std::net::SocketAddr::new(gateway, 0), None)
                .await
                .ok()
        })
        .ok_or("the scripted model server could not start on the bridge's gateway")?;
    let url = format!("http://{}/task/{{task}}", server.addr);
    let tasks = ctx.task_file(n, "Append the steps.", "1g", 1.0);
    let run = |jobs: usize| -> Measured<f64> {
        let report = ctx.work.path().join(format!("report-{}.json", ctx.next()));
        let mut cmd = Command::new(&ctx.sandpen);
        cmd.args(["run", "--image", &agent, "--repo"])
            .arg(&ctx.repo)
            .args(["-j", &jobs.to_string(), "--report"])
            .arg(&report)
            .arg(&tasks)
            .env("ANTHROPIC_API_KEY", "sk-bench-not-a-key")
            .env("ANTHROPIC_BASE_URL", &url);
        let wall = timed(&mut cmd)?;
        let r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&report).unwrap_or_default()).map_err(|e| e.to_string())?;
        let seen: Vec<u64> = r["tasks"]
            .as_array()
            .map(|t| {
                t.iter()
                    .map(|t| t["agent"]["num_turns"].as_u64().unwrap_or(0))
                    .collect()
            })
            .unwrap_or_default();
        if seen.len() != n || seen.iter().any(|&t| t != turns as u64) {
            return Err(format!("every task must run its {turns} turns: {seen:?}"));
        }
        Ok(wall)
    };
    let measured = run(n).and_then(|p| Ok((p, run(1)?)));
    rt.block_on(server.stop());
    let (parallel, serial) = measured?;
    let ratio = serial / parallel;
    Ok(vec![Row::new(
        FIGURE,
        format!(
            "{ratio:.1}x: -j {n} {parallel:.1} s ({n} tasks × {turns} turns, {latency_ms} ms latency each)"
        ),
        format!("the same tasks at -j 1: {serial:.1} s"),
        Some(ratio),
        Target::of(Bound::AtLeast(6.0, "x"), ratio),
    )])
}
