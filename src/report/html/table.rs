//! The tasks as a table: status, time, turns, cost, phases, limits, resources, where the
//! work and the logs are, and why each ended as it did.

use std::fmt::Write;

use super::escape::esc;
use super::scale;
use crate::runner::TaskResult;

const HEAD: &[&str] = &[
    "task", "status", "exit", "time", "turns", "cost", "phases", "limits", "memory", "CPU", "branch", "logs",
    "message",
];

/// What a task cost, as the CLI reported it or, failing that, as the gateway metered it.
pub fn cost(t: &TaskResult) -> Option<f64> {
    t.agent
        .as_ref()
        .and_then(|a| a.cost_usd)
        .or(t.gateway.as_ref().map(|g| g.cost_usd))
}

pub fn table(tasks: &[TaskResult]) -> String {
    let mut s = String::from(r#"<table class="tasks"><thead><tr>"#);
    for h in HEAD {
        let _ = write!(s, "<th>{h}</th>");
    }
    s.push_str("</tr></thead><tbody>");
    if tasks.is_empty() {
        let _ = write!(s, r#"<tr><td colspan="{}">no tasks</td></tr>"#, HEAD.len());
    }
    for t in tasks {
        row(&mut s, t);
    }
    s.push_str("</tbody></table>");
    s
}

fn row(s: &mut String, t: &TaskResult) {
    let dash = || "–".to_string();
    let status = t.status.as_str();
    let mut time = scale::secs(t.duration_s);
    if let Some(c) = t.timings.container_s {
        let _ = write!(time, " (container {})", scale::secs(c));
    }
    let turns = t.agent.as_ref().map_or_else(dash, |a| a.num_turns.to_string());
    let cost = cost(t).map_or_else(dash, |c| format!("${c:.4}"));
    let phases = match (&t.last_phase, &t.last_phase_name) {
        (Some(n), Some(name)) => format!("{n}/11 {name}; {} done", t.phases_completed),
        _ => dash(),
    };
    let l = &t.limits;
    let mut limits = format!(
        "{:.2} CPUs, {}, {} pids",
        l.nano_cpus as f64 / 1e9,
        scale::bytes(l.memory_bytes as f64),
        l.pids
    );
    if let Some(r) = t.memory_request_bytes {
        let _ = write!(limits, ", {} reserved", scale::bytes(r as f64));
    }
    if let Some(d) = t.disk_limit_bytes {
        let _ = write!(limits, ", disk {}", scale::bytes(d as f64));
    }
    if !t.limits_enforced {
        limits = format!("not enforced by the engine (asked: {limits})");
    }
    let memory = t.peak_memory_bytes.map_or_else(dash, |m| scale::bytes(m as f64));
    let cpu = match (t.mean_cpu_percent, t.peak_cpu_percent) {
        (Some(m), Some(p)) => format!("mean {m:.1}%, peak {p:.1}%"),
        _ => dash(),
    };
    let mut branches: Vec<String> = t.branch.iter().cloned().collect();
    branches.extend(t.branches.iter().map(|b| b.branch.clone()));
    let branch = match branches.is_empty() {
        true => dash(),
        false => branches
            .iter()
            .map(|b| format!("<code>{}</code>", esc(b)))
            .collect::<Vec<_>>()
            .join("<br>"),
    };
    // The file's name, its whole path on hover: the run directory is the same for all.
    let logs: Vec<String> = [Some(&t.log), Some(&t.stderr_log), t.stats_log.as_ref()]
        .into_iter()
        .flatten()
        .filter(|p| !p.is_empty())
        .map(|p| {
            let name = p.rsplit('/').next().unwrap_or(p);
            format!(r#"<code title="{}">{}</code>"#, esc(p), esc(name))
        })
        .collect();
    let logs = if logs.is_empty() {
        dash()
    } else {
        logs.join("<br>")
    };
    let exit = t.exit_code.map_or_else(dash, |c| c.to_string());
    let mut message = t.message.as_deref().map_or_else(dash, esc);
    if !t.stderr_tail.is_empty() {
        // The last lines of its stderr, as the summary shows them (`report::failure`).
        let _ = write!(
            message,
            r#"<pre class="tail">{}</pre>"#,
            esc(&t.stderr_tail.join("\n"))
        );
    }
    message.push_str(&earlier_attempts(t));
    let _ = write!(
        s,
        r#"<tr class="st-{status}" data-task="{id}"><td class="id"><code>{id}</code></td><td><span class="badge st-{status}">{status}</span></td><td>{exit}</td><td>{time}</td><td>{turns}</td><td>{cost}</td><td>{}</td><td>{limits}</td><td>{memory}</td><td>{cpu}</td><td>{branch}</td><td class="paths">{logs}</td><td class="message">{message}</td></tr>"#,
        esc(&phases),
        id = esc(&t.id),
    );
}

/// A rerun task's earlier attempts, oldest first, under its message: each one's status, time,
/// message and log (the row itself is the last attempt).
fn earlier_attempts(t: &TaskResult) -> String {
    let Some((_, earlier)) = t.attempts.split_last().filter(|(_, e)| !e.is_empty()) else {
        return String::new();
    };
    let mut s = String::from(r#"<ol class="attempts" title="earlier attempts">"#);
    for a in earlier {
        let log = a.log.rsplit('/').next().unwrap_or(&a.log);
        let _ = write!(
            s,
            r#"<li value="{}"><span class="badge st-{st}">{st}</span> {} {} <code title="{}">{}</code></li>"#,
            a.number,
            scale::secs(a.duration_s),
            esc(a.message.as_deref().unwrap_or("")),
            esc(&a.log),
            esc(log),
            st = a.status.as_str(),
        );
    }
    s.push_str("</ol>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::spec::Limits;
    use crate::runner::TaskStatus;
    use crate::runner::events::AgentSummary;

    #[test]
    fn a_failed_task_shows_its_status_and_its_escaped_message() {
        let limits = Limits {
            nano_cpus: 1_500_000_000,
            memory_bytes: 1 << 30,
            pids: 64,
        };
        let mut t = TaskResult::new("bad", "img", limits);
        t.status = TaskStatus::Failed;
        t.exit_code = Some(3);
        t.message = Some("exit 3: <img src=x onerror=alert(1)>".into());
        t.branch = Some("sandpen/bad/r1".into());
        t.stderr_tail = vec!["error: <script>x</script>".into(), "second".into()];
        t.agent = Some(AgentSummary {
            num_turns: 7,
            cost_usd: Some(0.0123),
            ..Default::default()
        });
        let html = table(&[t]);
        assert!(
            html.contains(r#"<span class="badge st-failed">failed</span>"#),
            "{html}"
        );
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains(r#"<pre class="tail">error: &lt;script&gt;x&lt;/script&gt;"#)
                && html.contains("\nsecond</pre>"),
            "the stderr tail, escaped: {html}"
        );
        assert!(html.contains("<td>7</td><td>$0.0123</td>"), "{html}");
        assert!(html.contains("1.50 CPUs, 1.0 GiB, 64 pids"), "{html}");
        assert!(html.contains("<code>sandpen/bad/r1</code>"), "{html}");
        assert!(table(&[]).contains("no tasks"));
        assert!(!html.contains("attempts"), "one attempt, no list: {html}");

        // A rerun task lists its earlier attempts under its message.
        let mut t = TaskResult::new("again", "img", limits);
        t.status = TaskStatus::TimedOut;
        t.message = Some("<first>".into());
        t.log = "/run/again.1.log".into();
        t.attempts = vec![crate::runner::Attempt::of(&t, 1)];
        t.status = TaskStatus::Succeeded;
        t.attempts.push(crate::runner::Attempt::of(&t, 2));
        let html = table(&[t]);
        assert!(
            html.contains(r#"<li value="1"><span class="badge st-timed_out">timed_out</span>"#)
                && html.contains("&lt;first&gt;")
                && html.contains(r#"<code title="/run/again.1.log">again.1.log</code>"#),
            "{html}"
        );
    }
}
