//! sandpen's images: build contexts compiled into the binary, content-addressed tags, builds
//! through the Engine API, and the base image (pulled, or made offline with debootstrap).
//!
//! Nothing here prints: progress goes to the caller as [`ImageEvent`]s.

pub mod assets;
mod base;
mod context;
mod error;
mod stamp;

pub use base::{BaseChoice, BootstrapOptions, bootstrap_base, ensure_base};
pub use context::BuildContext;
pub use error::ImageError;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use crate::engine::{BuildLine, Engine};

/// The base every sandpen image starts from unless told otherwise.
pub const DEFAULT_BASE: &str = "debian:bookworm-slim";
/// sandpen's own Debian base, made offline with debootstrap (`sandpen image bootstrap-base`):
/// the stand-in for [`DEFAULT_BASE`] where that cannot be pulled.
pub const OFFLINE_BASE: &str = "sandpen-base:bookworm";
/// Label naming which sandpen image an image is (`agent`, `probe`).
pub const LABEL_TARGET: &str = "sandpen.image";
/// Label carrying the full content hash the tag was derived from.
pub const LABEL_HASH: &str = "sandpen.context-hash";
/// Label of a gateway image naming the executable it was made from (size, mtime, inode) and
/// its base: a run finds its gateway image without hashing the executable again.
pub const LABEL_EXE_STAMP: &str = "sandpen.exe-stamp";
/// Label carrying the hash of the same inputs without extra CA certificates: a build that
/// added certificates serves later requests that name none.
pub const LABEL_SOURCES: &str = "sandpen.sources-hash";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Agent,
    Probe,
    /// A run's egress gateway: sandpen's own executable on the base (see `gateway`).
    Gateway,
}

impl Target {
    pub const ALL: [Target; 3] = [Target::Agent, Target::Probe, Target::Gateway];

    pub fn name(self) -> &'static str {
        match self {
            Target::Agent => "agent",
            Target::Probe => "probe",
            Target::Gateway => "gateway",
        }
    }

    /// The image repository: tags are `<repository>:<hash>`.
    pub fn repository(self) -> String {
        format!("sandpen-{}", self.name())
    }

    fn assets(self) -> &'static [assets::Asset] {
        match self {
            Target::Agent => assets::AGENT,
            Target::Probe => assets::PROBE,
            Target::Gateway => assets::GATEWAY,
        }
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct ImageRequest {
    pub target: Target,
    pub base: String,
    pub ca_certs: Vec<PathBuf>,
    pub rebuild: bool,
    pub bootstrap_base: bool,
}

impl ImageRequest {
    pub fn new(target: Target) -> Self {
        Self {
            target,
            base: DEFAULT_BASE.to_string(),
            ca_certs: Vec::new(),
            rebuild: false,
            bootstrap_base: false,
        }
    }
}

/// Progress of `ensure`, for displays. `StandIn` says the offline base stands in for the one
/// asked for (which could not be pulled): sent only when something is built on it.
#[derive(Debug, Clone)]
pub enum ImageEvent {
    PullingBase {
        base: String,
        status: String,
    },
    Bootstrap {
        line: String,
    },
    StandIn {
        line: String,
    },
    /// A line worth keeping about what the build does differently (a retry, say).
    Note {
        line: String,
    },
    Reused {
        tag: String,
    },
    Building {
        tag: String,
    },
    Build(BuildLine),
    Built {
        tag: String,
        seconds: f64,
    },
}

/// The build context of `target` with the given CA certificates added. Reads and checks every
/// certificate file, so a bad one fails here, before anything touches the engine.
pub fn context_for(target: Target, ca_certs: &[PathBuf]) -> Result<BuildContext, ImageError> {
    let mut ctx = BuildContext::new();
    for a in target.assets() {
        ctx.add(a.path, a.mode, a.bytes);
    }
    if target == Target::Gateway {
        let exe = own_executable()?;
        let bytes = std::fs::read(&exe).map_err(|e| ImageError::Bootstrap {
            base: target.repository(),
            reason: format!("reading sandpen's own executable {}: {e}", exe.display()),
        })?;
        ctx.add("sandpen", 0o755, bytes);
    }
    for (i, path) in ca_certs.iter().enumerate() {
        let bytes = std::fs::read(path).map_err(|e| ImageError::CaCert {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if !String::from_utf8_lossy(&bytes).contains("-----BEGIN CERTIFICATE-----") {
            return Err(ImageError::CaCert {
                path: path.clone(),
                reason: "not a PEM certificate".into(),
            });
        }
        let stem = path
            .file_stem()
            .map(|s| {
                s.to_string_lossy()
                    .replace(|c: char| !c.is_ascii_alphanumeric(), "-")
            })
            .unwrap_or_default();
        // update-ca-certificates only reads files ending in .crt.
        ctx.add(format!("ca/{i:02}-{stem}.crt"), 0o644, bytes);
    }
    Ok(ctx)
}

/// The content-addressed tag for a context built on a given base image.
pub fn tag_for(target: Target, ctx: &BuildContext, base: &str, base_id: &str) -> (String, String) {
    let hash = ctx.hash([
        ("target", target.name()),
        ("BASE_IMAGE", base),
        ("base_id", base_id),
    ]);
    (format!("{}:{}", target.repository(), &hash[..16]), hash)
}

/// The context, its tag and hash, and the hash of its sources (the same without extra CA
/// certificates), made off the async workers: the gateway's context is sandpen's own
/// executable, tens of megabytes read and hashed.
async fn hashed_context(
    target: Target,
    ca_certs: &[PathBuf],
    base: &str,
    base_id: &str,
) -> Result<(BuildContext, String, String, String), ImageError> {
    let (certs, base, base_id) = (ca_certs.to_vec(), base.to_string(), base_id.to_string());
    tokio::task::spawn_blocking(move || {
        let ctx = context_for(target, &certs)?;
        let (tag, hash) = tag_for(target, &ctx, &base, &base_id);
        let sources = match certs.is_empty() {
            true => hash.clone(),
            false => tag_for(target, &context_for(target, &[])?, &base, &base_id).1,
        };
        Ok((ctx, tag, hash, sources))
    })
    .await
    .unwrap_or_else(|e| {
        Err(ImageError::Bootstrap {
            base: target.repository(),
            reason: format!("making the build context: {e}"),
        })
    })
}

/// Returns the tag of an image built from the current context, building it only when no image
/// with that tag exists (or `rebuild` is set). A build that failed to verify a TLS certificate,
/// with no CA given, is tried once more with this host's CA bundle: a host behind a
/// TLS-inspecting proxy trusts that proxy there, and README's first command must work on it.
pub async fn ensure(
    engine: &Engine,
    req: &ImageRequest,
    on_event: &mut dyn FnMut(ImageEvent),
) -> Result<String, ImageError> {
    let first = ensure_once(engine, req, on_event).await;
    let bundle = std::path::Path::new(error::HOST_CA_BUNDLE);
    match first {
        Err(e) if req.ca_certs.is_empty() && e.is_certificate_failure() && bundle.is_file() => {
            on_event(ImageEvent::Note {
                line: format!(
                    "a TLS certificate could not be verified during the build; building again \
                     with this host's CA bundle ({}); --ca-cert FILE names another",
                    bundle.display()
                ),
            });
            let again = ImageRequest {
                ca_certs: vec![bundle.to_path_buf()],
                ..req.clone()
            };
            ensure_once(engine, &again, on_event).await
        }
        other => other,
    }
}

async fn ensure_once(
    engine: &Engine,
    req: &ImageRequest,
    on_event: &mut dyn FnMut(ImageEvent),
) -> Result<String, ImageError> {
    let choice = BaseChoice::for_base(&req.base);
    // The gateway is made at the start of every run: any base already here will do (no pull).
    let present = match req.target {
        Target::Gateway => choice.present(engine).await?,
        _ => None,
    };
    // Which base stands in matters only to a build: held until one starts.
    let mut held = Vec::new();
    let (base, base_id) = match present {
        Some(b) => b,
        None => {
            ensure_base(engine, &choice, req.bootstrap_base, &mut |e| match e {
                ImageEvent::StandIn { .. } => held.push(e),
                e => on_event(e),
            })
            .await?
        }
    };
    // The gateway's content is sandpen's executable: found by its stamp, not by hashing it.
    let stamp = match req.target {
        Target::Gateway => Some(format!("{}@{base_id}", exe_stamp()?)),
        _ => None,
    };
    if let Some(stamp) = stamp.as_deref().filter(|_| !req.rebuild)
        && let Some(tag) = made_by_this_executable(engine, &req.target.repository(), stamp).await?
    {
        on_event(ImageEvent::Reused { tag: tag.clone() });
        return Ok(tag);
    }
    if let Some(stamp) = stamp.as_deref().filter(|_| !req.rebuild)
        && let Some(tag) = stamp::recorded(engine, stamp).await?
    {
        on_event(ImageEvent::Reused { tag: tag.clone() });
        return Ok(tag);
    }
    let (ctx, tag, hash, sources) = hashed_context(req.target, &req.ca_certs, &base, &base_id).await?;
    // An image of this executable's bytes made under another stamp (a copy of the executable,
    // `cargo install`, a rebuild that produced the same bytes) is current, as `doctor` says:
    // it is reused, and this stamp recorded beside it so that the next run need not hash the
    // executable again to find it.
    if let Some(stamp) = stamp.as_deref().filter(|_| !req.rebuild)
        && let Some(id) = engine.image_id(&tag).await?
    {
        stamp::record(engine, &id, stamp).await?;
        on_event(ImageEvent::Reused { tag: tag.clone() });
        return Ok(tag);
    }
    if !req.rebuild && stamp.is_none() {
        if engine.image_id(&tag).await?.is_some() {
            on_event(ImageEvent::Reused { tag: tag.clone() });
            return Ok(tag);
        }
        if req.ca_certs.is_empty() {
            let mut same = engine.images_with_label(LABEL_SOURCES, &sources).await?;
            same.sort_by_key(|i| std::cmp::Reverse(i.created));
            if let Some(t) = same
                .into_iter()
                .flat_map(|i| i.tags)
                .find(|t| t.starts_with(&req.target.repository()))
            {
                on_event(ImageEvent::Reused { tag: t.clone() });
                return Ok(t);
            }
        }
    }
    let args = HashMap::from([("BASE_IMAGE".to_string(), base)]);
    let mut labels = HashMap::from([
        (LABEL_TARGET.to_string(), req.target.name().to_string()),
        (LABEL_HASH.to_string(), hash),
        (LABEL_SOURCES.to_string(), sources),
    ]);
    labels.extend(stamp.map(|s| (LABEL_EXE_STAMP.to_string(), s)));
    held.into_iter().for_each(&mut *on_event);
    // A rebuild starts from nothing: no layer cache, so new packages are fetched.
    let id = build(engine, &ctx, &tag, &args, &labels, req.rebuild, on_event).await?;
    if req.target == Target::Gateway {
        prune_gateways(engine, &id).await;
    }
    Ok(tag)
}

/// The tag in `repository` of an image this executable made (its `LABEL_EXE_STAMP`), if any:
/// images whose content is sandpen itself are found by the stamp, not by hashing it.
pub async fn made_by_this_executable(
    engine: &Engine,
    repository: &str,
    stamp: &str,
) -> Result<Option<String>, ImageError> {
    let made = engine.images_with_label(LABEL_EXE_STAMP, stamp).await?;
    let ours = format!("{repository}:");
    Ok(made
        .into_iter()
        .flat_map(|i| i.tags)
        .find(|t| t.starts_with(&ours)))
}

/// A gateway image is made per sandpen build: older ones (made more than ten minutes ago, and
/// used by no running gateway: the engine refuses those) go when a new one is made.
async fn prune_gateways(engine: &Engine, keep: &str) {
    let Ok(all) = engine
        .images_with_label(LABEL_TARGET, Target::Gateway.name())
        .await
    else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    for image in all.iter().filter(|i| i.id != keep && now - i.created > 600) {
        let _ = engine.remove_image(&image.id).await;
    }
}

/// Builds any context under `tag`; the image id on success. Used by `ensure` and by tests that
/// build contexts of their own.
pub async fn build(
    engine: &Engine,
    ctx: &BuildContext,
    tag: &str,
    build_args: &HashMap<String, String>,
    labels: &HashMap<String, String>,
    no_cache: bool,
    on_event: &mut dyn FnMut(ImageEvent),
) -> Result<String, ImageError> {
    let started = Instant::now();
    on_event(ImageEvent::Building { tag: tag.to_string() });
    let tar = ctx.to_tar().map_err(|e| ImageError::Bootstrap {
        base: tag.to_string(),
        reason: format!("making the build context: {e}"),
    })?;
    let outcome = engine
        .build_image(tar, tag, build_args, labels, no_cache, |line| {
            on_event(ImageEvent::Build(line))
        })
        .await?;
    match outcome {
        Ok(id) => {
            on_event(ImageEvent::Built {
                tag: tag.to_string(),
                seconds: started.elapsed().as_secs_f64(),
            });
            Ok(id)
        }
        Err(f) => Err(ImageError::BuildFailed {
            tag: tag.to_string(),
            step: f.step,
            message: f.message,
            step_output: f.step_output,
            log: f.log,
        }),
    }
}

/// The executable of this very process (the gateway image carries it).
pub(crate) fn own_executable() -> Result<PathBuf, ImageError> {
    std::env::current_exe().map_err(|e| ImageError::Bootstrap {
        base: Target::Gateway.repository(),
        reason: format!("finding sandpen's own executable: {e}"),
    })
}

/// Size, modification time and inode of the executable: a new build changes them.
pub(crate) fn exe_stamp() -> Result<String, ImageError> {
    use std::os::unix::fs::MetadataExt;
    let exe = own_executable()?;
    let m = std::fs::metadata(&exe).map_err(|e| ImageError::Bootstrap {
        base: Target::Gateway.repository(),
        reason: format!("reading {}: {e}", exe.display()),
    })?;
    Ok(format!(
        "{}-{}.{}-{}",
        m.len(),
        m.mtime(),
        m.mtime_nsec(),
        m.ino()
    ))
}

/// Where an image stands on this engine, for `sandpen doctor`.
#[derive(Debug, Clone, Serialize)]
pub struct ImageStatus {
    pub target: Target,
    /// The tag the current sources would have; None when the base image is absent.
    pub current_tag: Option<String>,
    pub built: bool,
    /// Tags of older builds of this image still on the engine.
    pub stale_tags: Vec<String>,
}

pub async fn status(engine: &Engine, target: Target, base: &BaseChoice) -> Result<ImageStatus, ImageError> {
    let ctx = context_for(target, &[])?;
    let Some((base, base_id)) = base.present(engine).await? else {
        return Ok(ImageStatus {
            target,
            current_tag: None,
            built: false,
            stale_tags: Vec::new(),
        });
    };
    let (tag, sources) = tag_for(target, &ctx, &base, &base_id);
    let mut all = engine.images_with_label(LABEL_TARGET, target.name()).await?;
    all.sort_by_key(|i| std::cmp::Reverse(i.created));
    // Current: built from these sources, with or without extra CA certificates.
    let ours = format!("{}:", target.repository());
    // Builds of the same sources that lost their tag to a later one (two builds at once) are
    // passed over: the current image is the one that still carries a tag.
    let current = all
        .iter()
        .filter(|i| i.labels.get(LABEL_SOURCES) == Some(&sources) || i.tags.contains(&tag))
        .find_map(|i| i.tags.iter().find(|t| t.starts_with(&ours)).cloned());
    let built = current.is_some();
    let current_tag = Some(current.unwrap_or(tag));
    let mut stale_tags: Vec<String> = all
        .into_iter()
        .flat_map(|i| i.tags)
        .filter(|t| t.starts_with(&ours) && Some(t) != current_tag.as_ref())
        .collect();
    stale_tags.sort();
    Ok(ImageStatus {
        target,
        current_tag,
        built,
        stale_tags,
    })
}
