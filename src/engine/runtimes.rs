//! The engine's OCI runtimes (`docker info`'s `Runtimes`): which a run may name with
//! `--runtime`, and what gVisor's `runsc` needs in its arguments for sandpen's tasks to work.

use bollard::models::SystemInfo;
use serde::Serialize;

/// gVisor's runtime, by the name its documentation registers it under.
pub const RUNSC: &str = "runsc";

/// How to register runsc with Docker Engine: said by `doctor` and by a refused `--runtime`.
pub const HOW_TO_ADD_RUNSC: &str = "install gVisor (Debian: `apt-get install runsc`), add to \
     /etc/docker/daemon.json `\"runtimes\": {\"runsc\": {\"path\": \"/usr/bin/runsc\", \
     \"runtimeArgs\": [\"--host-uds=open\", \"--network=none\"]}}` and reload the engine \
     (`systemctl reload docker` or SIGHUP to dockerd)";

/// One runtime the engine has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuntimeInfo {
    pub name: String,
    /// The executable, as the engine reports it (empty when it does not).
    pub path: String,
    /// The arguments the engine passes it on every container.
    pub args: Vec<String>,
}

impl RuntimeInfo {
    /// Whether it is gVisor's (by name or by executable).
    pub fn is_gvisor(&self) -> bool {
        self.name == RUNSC || self.path.rsplit('/').next() == Some(RUNSC)
    }

    /// The value of runsc's flag `--name` (either `--name=v` or `--name v`, one dash or two).
    fn flag(&self, name: &str) -> Option<&str> {
        let mut args = self.args.iter().map(String::as_str);
        while let Some(arg) = args.next() {
            let Some(rest) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
                continue;
            };
            match rest.split_once('=') {
                Some((k, v)) if k == name => return Some(v),
                None if rest == name => return args.next(),
                _ => {}
            }
        }
        None
    }

    /// What is missing from a gVisor runtime's arguments for sandpen's tasks, each with its
    /// fix; empty when nothing is (or when it is not gVisor).
    pub fn gvisor_gaps(&self) -> Vec<String> {
        if !self.is_gvisor() {
            return Vec::new();
        }
        let mut gaps = Vec::new();
        if !matches!(self.flag("host-uds"), Some("open" | "all")) {
            gaps.push(format!(
                "`{}` lacks --host-uds=open: a task in gateway mode (the default) cannot \
                 connect to its gateway's Unix socket; add \"--host-uds=open\" to its runtimeArgs",
                self.name
            ));
        }
        if self.flag("network") != Some("none") {
            gaps.push(format!(
                "`{}` lacks --network=none: gVisor of 2022 refuses to start containers of an \
                 engine in a network namespace of its own (\"cannot run with network enabled in \
                 root network namespace\"), and gateway-mode tasks need no network; add \
                 \"--network=none\" to its runtimeArgs (tasks with --network bridge or host then \
                 have none either)",
                self.name
            ));
        }
        gaps
    }
}

/// The engine's runtimes (by name) and its default one.
pub(super) fn from_info(info: &SystemInfo) -> (Vec<RuntimeInfo>, String) {
    let mut runtimes: Vec<RuntimeInfo> = info
        .runtimes
        .iter()
        .flatten()
        .map(|(name, r)| RuntimeInfo {
            name: name.clone(),
            path: r.path.clone().unwrap_or_default(),
            args: r.runtime_args.clone().unwrap_or_default(),
        })
        .collect();
    runtimes.sort_by(|a, b| a.name.cmp(&b.name));
    let default = info.default_runtime.clone().unwrap_or_else(|| "unknown".into());
    (runtimes, default)
}

/// Why a run's `--runtime` cannot be used on this engine; its text names the fix.
pub fn refusal(runtimes: &[RuntimeInfo], wanted: &str, gateway_mode: bool) -> Option<String> {
    let names = runtimes.iter().map(|r| r.name.as_str()).collect::<Vec<_>>();
    let Some(rt) = runtimes.iter().find(|r| r.name == wanted) else {
        let how = match wanted == RUNSC {
            true => format!("; to add gVisor: {HOW_TO_ADD_RUNSC}"),
            false => String::new(),
        };
        return Some(format!(
            "runtime `{wanted}` (--runtime or a task file's `runtime`): the engine has no such runtime (it has: {})\nfix: pass one of \
             those, or register `{wanted}` with the engine{how}",
            match names.is_empty() {
                true => "none it names".to_string(),
                false => names.join(", "),
            }
        ));
    };
    // Only what would break every task is refused: in gateway mode, no way to the gateway.
    let blocking = rt
        .gvisor_gaps()
        .into_iter()
        .filter(|g| gateway_mode && g.contains("host-uds"))
        .collect::<Vec<_>>();
    (!blocking.is_empty()).then(|| {
        format!(
            "runtime `{wanted}`: {}\nfix: change the engine's daemon.json as said and reload it, \
             or pass --network none (no model API)",
            blocking.join("; ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(name: &str, path: &str, args: &[&str]) -> RuntimeInfo {
        RuntimeInfo {
            name: name.into(),
            path: path.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
        }
    }

    #[test]
    fn an_unknown_runtime_is_refused_naming_the_engine_s() {
        let have = [rt("runc", "runc", &[]), rt("crun", "/usr/bin/crun", &[])];
        let why = refusal(&have, "runsc", true).unwrap();
        assert!(why.contains("it has: runc, crun"), "{why}");
        assert!(why.contains("daemon.json"), "{why}");
        assert!(refusal(&have, "crun", true).is_none());
        let why = refusal(&have, "kata", false).unwrap();
        assert!(!why.contains("gVisor"), "{why}");
    }

    #[test]
    fn runsc_needs_host_uds_for_gateway_mode() {
        let bare = rt("runsc", "/usr/bin/runsc", &[]);
        assert_eq!(bare.gvisor_gaps().len(), 2);
        let why = refusal(std::slice::from_ref(&bare), "runsc", true).unwrap();
        assert!(why.contains("--host-uds=open"), "{why}");
        assert!(refusal(std::slice::from_ref(&bare), "runsc", false).is_none());
        let good = rt(
            "gvisor",
            "/usr/bin/runsc",
            &["--host-uds", "all", "-network=none"],
        );
        assert!(good.is_gvisor());
        assert!(good.gvisor_gaps().is_empty(), "{:?}", good.gvisor_gaps());
        assert!(rt("runc", "runc", &[]).gvisor_gaps().is_empty());
    }

    #[test]
    fn the_engine_s_runtimes_are_read_sorted_with_their_arguments() {
        let info: SystemInfo = serde_json::from_value(serde_json::json!({
            "DefaultRuntime": "runc",
            "Runtimes": {
                "runsc": {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=none"]},
                "runc": {"path": "runc"}
            }
        }))
        .unwrap();
        let (runtimes, default) = from_info(&info);
        assert_eq!(default, "runc");
        assert_eq!(runtimes[0], rt("runc", "runc", &[]));
        assert_eq!(runtimes[1], rt("runsc", "/usr/bin/runsc", &["--network=none"]));
    }
}
