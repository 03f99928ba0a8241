//! Image builds through the Engine API, against the real engine.

mod common;

use std::collections::HashMap;
use std::time::Instant;

use common::*;
use sandpen::image::{self, BaseChoice, BuildContext, ImageError, ImageEvent};

/// The base images are built on here: Debian's own, or sandpen's made offline.
async fn base_in_use() -> (String, String) {
    image("probe"); // makes sure there is one
    BaseChoice::for_base(image::DEFAULT_BASE)
        .present(&engine().await)
        .await
        .unwrap()
        .expect("a base on the engine after building the probe image")
}

fn base_in_use_blocking() -> String {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(base_in_use()).0
}

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
    let base = base_in_use_blocking();
    let test_base = format!("sandpen-test-base:{}", std::process::id());
    assert!(docker(&["tag", &base, &test_base]).status.success());
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
    // Without a terminal: a line when the build starts and one when it ends, not every step.
    let err = stderr(&out);
    assert!(
        err.contains("building sandpen-probe:") && err.contains("built sandpen-probe:"),
        "{err}"
    );
    assert!(!err.contains("Step 1/"), "{err}");
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
    let (base, _) = base_in_use().await;
    let engine = engine().await;
    let mut ctx = BuildContext::new();
    ctx.add(
        "Dockerfile",
        0o644,
        format!("FROM {base}\nRUN echo fine\nRUN echo the-step-output && exit 7\nRUN echo never\n"),
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
        err.contains("sandpen image bootstrap-base") && err.contains("omit --base"),
        "names the offline way: {err}"
    );
}

#[tokio::test]
async fn an_unpullable_base_falls_back_to_sandpens_own_and_only_that() {
    let engine = engine().await;
    let (base, base_id) = base_in_use().await;
    let pid = std::process::id();
    // Stand-ins for debian:bookworm-slim (cannot be pulled here) and sandpen's own base.
    let preferred = format!("sandpen-test-no-such-base:{pid}");
    let offline = format!("sandpen-test-offline-base:{pid}");
    assert!(docker(&["tag", &base, &offline]).status.success());
    let choice = BaseChoice {
        preferred: preferred.clone(),
        offline: Some(offline.clone()),
    };

    let mut lines = Vec::new();
    let got = image::ensure_base(&engine, &choice, false, &mut |e| {
        if let ImageEvent::Bootstrap { line } | ImageEvent::StandIn { line } = e {
            lines.push(line)
        }
    })
    .await;
    assert_eq!(got.unwrap(), (offline.clone(), base_id.clone()));
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("pulling {preferred} failed"))
                && l.contains(&format!("building on {offline}"))),
        "says why: {lines:?}"
    );
    assert_eq!(
        choice.present(&engine).await.unwrap(),
        Some((offline.clone(), base_id.clone()))
    );

    // A base the user named wins: no stand-in.
    let named = BaseChoice::for_base(&preferred);
    assert_eq!(named.offline, None);
    let err = image::ensure_base(&engine, &named, true, &mut |_| {})
        .await
        .expect_err("a named base that cannot be pulled is an error");
    assert!(matches!(err, ImageError::BaseUnavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("omit --base"), "{err}");

    // Without the stand-in and without --bootstrap-base: the offline way is named.
    assert!(docker(&["rmi", &offline]).status.success());
    let err = image::ensure_base(&engine, &choice, false, &mut |_| {})
        .await
        .expect_err("no base at all");
    let text = err.to_string();
    assert!(
        text.contains("sudo sandpen image bootstrap-base") && text.contains(&offline),
        "{text}"
    );
    assert_eq!(
        engine.image_id(&base).await.unwrap(),
        Some(base_id),
        "the base itself is untouched"
    );
}

#[test]
fn bootstrap_base_tags_sandpens_own_name_and_leaves_debians_alone() {
    assert_eq!(
        BaseChoice::for_base(image::DEFAULT_BASE).offline.as_deref(),
        Some(image::OFFLINE_BASE)
    );
    assert!(!image::OFFLINE_BASE.starts_with("debian"));
    let debian = || {
        let out = docker(&["image", "inspect", "--format", "{{.Id}}", image::DEFAULT_BASE]);
        out.status.success().then(|| stdout(&out).trim().to_string())
    };
    let before = debian();
    // A real debootstrap the first time on an engine (about a minute), a lookup afterwards.
    let out = output(sandpen().args(["image", "bootstrap-base"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().last(), Some(image::OFFLINE_BASE));
    let made = docker(&[
        "image",
        "inspect",
        "--format",
        "{{.Comment}}",
        image::OFFLINE_BASE,
    ]);
    assert!(made.status.success(), "{}", stderr(&made));
    assert!(
        stdout(&made).contains("sandpen image bootstrap-base"),
        "the import says who made it: {}",
        stdout(&made)
    );
    assert_eq!(debian(), before, "{} is not touched", image::DEFAULT_BASE);

    let again = output(sandpen().args(["image", "bootstrap-base"]));
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stderr(&again).contains("already present"), "{}", stderr(&again));
}

#[test]
fn doctor_describes_the_engine_and_the_images() {
    let probe = image("probe");
    let out = output(sandpen().arg("doctor").env_remove("ANTHROPIC_API_KEY"));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for want in [
        "API 1.",
        "cgroups",
        "linux/",
        "ANTHROPIC_API_KEY is not set",
        "\nswarm       ",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    // The host's git, as `git --version` says it (this machine's is new enough).
    let git = std::process::Command::new("git")
        .arg("--version")
        .output()
        .unwrap();
    let git = String::from_utf8_lossy(&git.stdout)
        .trim()
        .replace("git version ", "");
    assert!(text.contains(&format!("\ngit         {git}\n")), "{text}");
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
    assert_eq!(v["git_new_enough"], true, "{v}");
    assert!(
        v["credentials"]
            .to_string()
            .contains("[\"ANTHROPIC_API_KEY\",true]"),
        "{v}"
    );
    assert_eq!(v["credential_in_use"], "ANTHROPIC_API_KEY", "{v}");
    // A subscription's token alone: named as the one a run would use, never printed.
    let token = "sk-ant-oat01-test-do-not-print";
    let out = output(
        sandpen()
            .arg("doctor")
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("ANTHROPIC_AUTH_TOKEN")
            .env("CLAUDE_CODE_OAUTH_TOKEN", token),
    );
    let text = stdout(&out);
    assert!(!text.contains(token), "never prints the token");
    assert!(text.contains("a run would use CLAUDE_CODE_OAUTH_TOKEN"), "{text}");
}
