//! Image builds through the Engine API, against the real engine.

mod common;

use std::collections::HashMap;
use std::time::Instant;

use common::*;
use sandpen::image::{self, BuildContext, ImageError};

#[test]
fn probe_image_builds_and_a_second_build_is_a_cache_hit() {
    let tag = image("probe");
    let start = Instant::now();
    let out = output(sandpen().args(["image", "build", "--target", "probe"]));
    let took = start.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).lines().last(),
        Some(tag.as_str()),
        "same sources, same tag"
    );
    assert!(
        stderr(&out).contains("reusing"),
        "a cache hit says so: {}",
        stderr(&out)
    );
    assert!(took.as_secs_f64() < 1.0, "a cache hit took {took:?}");

    // The stand-in answers like the real CLI's --version.
    let run = docker(&["run", "--rm", &tag, "claude", "--version"]);
    assert!(stdout(&run).contains("Claude Code stand-in"), "{}", stdout(&run));
}

#[test]
fn probe_image_builds_from_nothing_on_another_base() {
    // A distinct base tag gives a distinct content tag, and --rebuild disables the layer cache:
    // this is a build from nothing, whatever earlier runs left on the engine.
    let base = image("probe"); // makes sure the default base exists
    let _ = base;
    let test_base = format!("sandpen-test-base:{}", std::process::id());
    assert!(docker(&["tag", image::DEFAULT_BASE, &test_base]).status.success());
    let out = output(sandpen().args([
        "image",
        "build",
        "--target",
        "probe",
        "--base",
        &test_base,
        "--rebuild",
    ]));
    let tag = stdout(&out).lines().last().unwrap_or_default().to_string();
    let _ = docker(&["rmi", "-f", &tag, &test_base]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(tag.starts_with("sandpen-probe:"));
    assert_ne!(tag, image("probe"), "the base is part of the content tag");
    assert!(
        stderr(&out).contains("Step 1/"),
        "progress shows the steps: {}",
        stderr(&out)
    );
}

#[test]
fn agent_image_holds_uv_and_the_real_claude_cli() {
    let tag = image("agent");
    let run = docker(&[
        "run",
        "--rm",
        "--user",
        "4242:4242",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--tmpfs",
        "/home/sandpen:mode=1777",
        &tag,
        "sh",
        "-c",
        "claude --version && uv --version && git --version && id -u",
    ]);
    let out = stdout(&run);
    assert!(run.status.success(), "{out}\n{}", stderr(&run));
    assert!(
        out.contains("(Claude Code)"),
        "the real CLI reports its version: {out}"
    );
    assert!(out.contains("uv "), "{out}");
    assert!(out.trim_end().ends_with("4242"), "runs as any uid: {out}");
}

#[tokio::test]
async fn a_broken_dockerfile_fails_with_the_failing_steps_text() {
    image("probe"); // the base must exist
    let engine = engine().await;
    let mut ctx = BuildContext::new();
    ctx.add(
        "Dockerfile",
        0o644,
        format!(
            "FROM {}\nRUN echo fine\nRUN echo the-step-output && exit 7\nRUN echo never\n",
            image::DEFAULT_BASE
        ),
    );
    let tag = format!("sandpen-test-broken:{}", std::process::id());
    let mut steps = Vec::new();
    let err = image::build(
        &engine,
        &ctx,
        &tag,
        &HashMap::new(),
        &HashMap::new(),
        true,
        &mut |e| steps.push(format!("{e:?}")),
    )
    .await
    .expect_err("the build must fail");
    let ImageError::BuildFailed {
        step,
        step_output,
        message,
        ..
    } = &err
    else {
        panic!("expected BuildFailed, got {err:?}");
    };
    assert!(
        step.as_deref()
            .unwrap_or("")
            .contains("RUN echo the-step-output && exit 7"),
        "{step:?}"
    );
    assert!(step_output.contains("the-step-output"), "{step_output}");
    assert!(message.contains("non-zero code: 7"), "{message}");
    let text = err.to_string();
    assert!(
        text.contains("the-step-output") && text.contains("exit 7"),
        "{text}"
    );
    assert!(
        !steps.iter().any(|s| s.contains("echo never")),
        "the build stopped at the failure"
    );
    assert!(
        engine.image_id(&tag).await.unwrap().is_none(),
        "no image is tagged"
    );
}

#[test]
fn an_unreachable_engine_exits_3_and_says_what_to_do() {
    for args in [&["doctor"][..], &["image", "build", "--target", "probe"][..]] {
        let out = output(
            sandpen()
                .args(args)
                .env("DOCKER_HOST", "unix:///nonexistent.sock"),
        );
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("unix:///nonexistent.sock"),
            "names the address: {err}"
        );
        assert!(
            err.contains("DOCKER_HOST") && err.contains("start Docker"),
            "says the fix: {err}"
        );
    }
    let out = output(sandpen().args(["--host", "tcp://127.0.0.1:1", "doctor"]));
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("tcp://127.0.0.1:1"),
        "--host wins: {}",
        stderr(&out)
    );
}

#[test]
fn a_missing_ca_cert_is_an_input_error_before_any_build() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("corp-ca.pem");
    // An unreachable engine proves the check happens before sandpen talks to it.
    let out = output(
        sandpen()
            .args(["image", "build", "--target", "agent", "--ca-cert"])
            .arg(&missing)
            .env("DOCKER_HOST", "unix:///nonexistent.sock"),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("corp-ca.pem"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "no tag printed");

    let not_pem = dir.path().join("notes.txt");
    std::fs::write(&not_pem, "hello").unwrap();
    let out = output(sandpen().args(["image", "build", "--ca-cert"]).arg(&not_pem));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not a PEM certificate"), "{}", stderr(&out));
}

#[test]
fn an_unpullable_base_names_the_offline_way() {
    let out = output(sandpen().args([
        "image",
        "build",
        "--target",
        "probe",
        "--base",
        "sandpen-test-no-such-base:1",
    ]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("sandpen-test-no-such-base:1"), "{err}");
    assert!(
        err.contains("sandpen image bootstrap-base"),
        "names the offline way: {err}"
    );
}

#[test]
fn doctor_describes_the_engine_and_the_images() {
    let probe = image("probe");
    let out = output(sandpen().arg("doctor").env_remove("ANTHROPIC_API_KEY"));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for want in ["API 1.", "cgroups", "linux/", "ANTHROPIC_API_KEY is not set"] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert!(text.contains(&format!("built and current ({probe})")), "{text}");

    let secret = "sk-ant-test-do-not-print";
    let out = output(
        sandpen()
            .args(["doctor", "--json"])
            .env("ANTHROPIC_API_KEY", secret),
    );
    let text = stdout(&out);
    assert!(!text.contains(secret), "never prints the key");
    let v: serde_json::Value = serde_json::from_str(&text).expect("doctor --json is JSON");
    assert!(v["engine"]["api_version"].as_str().is_some());
    assert!(
        v["credentials"]
            .to_string()
            .contains("[\"ANTHROPIC_API_KEY\",true]"),
        "{v}"
    );
}
