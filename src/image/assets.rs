//! The Dockerfiles and their files, compiled into the binary so that an installed `sandpen`
//! needs no source tree.

/// One file of a build context.
pub struct Asset {
    pub path: &'static str,
    pub bytes: &'static [u8],
    pub mode: u32,
}

macro_rules! asset {
    ($dir:literal, $path:literal, $mode:literal) => {
        Asset {
            path: $path,
            bytes: include_bytes!(concat!("../../images/", $dir, "/", $path)),
            mode: $mode,
        }
    };
}

pub const AGENT: &[Asset] = &[
    asset!("agent", "Dockerfile", 0o644),
    asset!("agent", "ca/README", 0o644),
];

pub const GATEWAY: &[Asset] = &[asset!("gateway", "Dockerfile", 0o644)];

pub const PROBE: &[Asset] = &[
    asset!("probe", "Dockerfile", 0o644),
    asset!("probe", "claude", 0o755),
    asset!("probe", "uv", 0o755),
];
