use std::collections::HashMap;
use std::time::Duration;

use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateImageOptionsBuilder, ListImagesOptionsBuilder,
};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::error::{describe, is_not_found};

/// A build's context, a tar archive: whole, or streamed as it is made (an environment layer
/// weighs what the environment does, gigabytes with some projects). An error in the stream
/// aborts the upload, and so the build: a context cut short is never built.
pub enum BuildContext {
    Whole(Vec<u8>),
    Streamed(futures_util::stream::BoxStream<'static, Result<Bytes, std::io::Error>>),
}

impl From<Vec<u8>> for BuildContext {
    fn from(tar: Vec<u8>) -> Self {
        Self::Whole(tar)
    }
}
use super::{CALL_TIMEOUT, Engine, EngineError};

/// Uploads (a build context, a root filesystem) count against bollard's request timeout until
/// the response headers arrive, so large ones need more than the 2-minute default.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// One line of build progress as the engine reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildLine {
    /// The start of a Dockerfile step ("Step 3/7 : RUN ...").
    Step(String),
    /// Anything else the build printed.
    Output(String),
}

/// An image as listed by the engine.
#[derive(Debug, Clone)]
pub struct ImageSummary {
    pub id: String,
    pub tags: Vec<String>,
    pub labels: HashMap<String, String>,
    pub created: i64,
    pub size: i64,
}

/// Why a build failed: the engine's message and the output of the failing step.
#[derive(Debug, Clone)]
pub struct BuildFailure {
    pub message: String,
    pub step: Option<String>,
    pub step_output: String,
    pub log: String,
}

impl Engine {
    /// The image id for `reference`, or None when the engine has no such image.
    pub async fn image_id(&self, reference: &str) -> Result<Option<String>, EngineError> {
        let context = format!("inspecting image {reference}");
        EngineError::limited(&context, CALL_TIMEOUT, async {
            match self.docker().inspect_image(reference).await {
                Ok(img) => Ok(img.id),
                Err(e) if is_not_found(&e) => Ok(None),
                Err(e) => Err(EngineError::api(&context, &e)),
            }
        })
        .await
    }

    /// Images carrying the label `key=value`.
    pub async fn images_with_label(&self, key: &str, value: &str) -> Result<Vec<ImageSummary>, EngineError> {
        self.images_labelled(format!("{key}={value}")).await
    }

    /// Images carrying the label `key`, whatever its value.
    pub async fn images_with_label_key(&self, key: &str) -> Result<Vec<ImageSummary>, EngineError> {
        self.images_labelled(key.to_string()).await
    }

    async fn images_labelled(&self, label: String) -> Result<Vec<ImageSummary>, EngineError> {
        let filters = HashMap::from([("label", vec![label])]);
        let opts = ListImagesOptionsBuilder::default().filters(&filters).build();
        let list = EngineError::limited("listing images", CALL_TIMEOUT, async {
            self.docker()
                .list_images(Some(opts))
                .await
                .map_err(|e| EngineError::api("listing images", &e))
        })
        .await?;
        Ok(list
            .into_iter()
            .map(|i| ImageSummary {
                id: i.id,
                tags: i.repo_tags,
                labels: i.labels,
                created: i.created,
                size: i.size,
            })
            .collect())
    }

    /// Builds `context` (a tar archive) with the classic builder and tags it. Progress goes
    /// to `on_line`; the result is the new image id, or the failing step and its output.
    pub async fn build_image(
        &self,
        context: impl Into<BuildContext>,
        tag: &str,
        build_args: &HashMap<String, String>,
        labels: &HashMap<String, String>,
        no_cache: bool,
        mut on_line: impl FnMut(BuildLine),
    ) -> Result<Result<String, BuildFailure>, EngineError> {
        let opts = BuildImageOptionsBuilder::default()
            .dockerfile("Dockerfile")
            .t(tag)
            .nocache(no_cache)
            .rm(true)
            .forcerm(true)
            .buildargs(build_args)
            .labels(labels)
            .build();
        let docker = self.docker().clone().with_timeout(UPLOAD_TIMEOUT);
        let body = match context.into() {
            BuildContext::Whole(tar) => bollard::body_full(Bytes::from(tar)),
            BuildContext::Streamed(chunks) => bollard::body_try_stream(chunks),
        };
        let mut stream = docker.build_image(opts, None, Some(body));
        let mut log = String::new();
        let mut step: Option<String> = None;
        let mut step_output = String::new();
        let mut image_id: Option<String> = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(id) = info.aux.and_then(|a| a.id) {
                        image_id = Some(id);
                    }
                    let Some(text) = info.stream.or(info.status) else {
                        continue;
                    };
                    log.push_str(&text);
                    for line in text.lines().filter(|l| !l.trim().is_empty()) {
                        if line.starts_with("Step ") {
                            step = Some(line.to_string());
                            step_output.clear();
                            on_line(BuildLine::Step(line.to_string()));
                        } else {
                            step_output.push_str(line);
                            step_output.push('\n');
                            on_line(BuildLine::Output(line.to_string()));
                        }
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    log.push_str(&error);
                    log.push('\n');
                    return Ok(Err(BuildFailure {
                        message: error,
                        step,
                        step_output,
                        log,
                    }));
                }
                // A trailing decode error after the image id arrived is bollard#560, not a
                // failed build.
                Err(e) if image_id.is_some() => {
                    tracing::debug!("ignoring trailing build stream error: {}", describe(&e));
                    break;
                }
                Err(e) => return Err(EngineError::api(format!("building {tag}"), &e)),
            }
        }
        match image_id {
            Some(id) => Ok(Ok(id)),
            // Engines that do not send aux: ask for the tag instead.
            None => match self.image_id(tag).await? {
                Some(id) => Ok(Ok(id)),
                None => Ok(Err(BuildFailure {
                    message: "the engine ended the build without producing an image".into(),
                    step,
                    step_output,
                    log,
                })),
            },
        }
    }

    /// Pulls `reference` from its registry. Progress lines go to `on_status`.
    pub async fn pull_image(
        &self,
        reference: &str,
        mut on_status: impl FnMut(&str),
    ) -> Result<(), EngineError> {
        let opts = CreateImageOptionsBuilder::default().from_image(reference).build();
        let mut stream = self.docker().create_image(Some(opts), None, None);
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(status) = info.status {
                        on_status(&status);
                    }
                }
                Err(e) => return Err(EngineError::api(format!("pulling {reference}"), &e)),
            }
        }
        Ok(())
    }

    /// Pushes `repo:tag` to the registry its name starts with; the digest the registry gave
    /// it (`sha256:...`), by which every node pulls the same bytes.
    pub async fn push_image(&self, repo: &str, tag: &str) -> Result<String, EngineError> {
        let opts = bollard::query_parameters::PushImageOptionsBuilder::default()
            .tag(tag)
            .build();
        let context = format!("pushing {repo}:{tag}");
        let mut stream = self.docker().push_image(repo, Some(opts), None);
        let mut digest = None;
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| EngineError::api(&context, &e))?;
            if let Some(detail) = info.error_detail {
                let reason = detail.message.unwrap_or_else(|| "the push failed".into());
                return Err(EngineError::Api { context, reason });
            }
            digest = info.status.as_deref().and_then(pushed_digest).or(digest);
        }
        digest.ok_or_else(|| EngineError::Api {
            context,
            reason: "the registry named no digest for it".into(),
        })
    }

    /// Imports a root filesystem tar stream as image `repo:tag` (`docker import`).
    pub async fn import_rootfs(
        &self,
        rootfs: impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
        repo: &str,
        tag: &str,
        message: &str,
    ) -> Result<(), EngineError> {
        let opts = CreateImageOptionsBuilder::default()
            .from_src("-")
            .repo(repo)
            .tag(tag)
            .message(message)
            .build();
        let docker = self.docker().clone().with_timeout(UPLOAD_TIMEOUT);
        let mut stream = docker.create_image(Some(opts), Some(bollard::body_try_stream(rootfs)), None);
        let mut imported = None;
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| EngineError::api(format!("importing {repo}:{tag}"), &e))?;
            // Docker answers with the new image's id as the status; Podman also sets `id`.
            imported = info.id.or(info.status).or(imported);
        }
        // Podman 4 names an imported image `repo:latest` whatever tag was asked for: tag the
        // image it made under the name we asked for.
        let reference = format!("{repo}:{tag}");
        if self.image_id(&reference).await?.is_none()
            && let Some(id) = imported
            && self.image_id(&id).await?.is_some()
        {
            self.tag_image(&id, repo, tag).await?;
        }
        Ok(())
    }

    /// Gives image `id` the name `repo:tag`.
    pub async fn tag_image(&self, id: &str, repo: &str, tag: &str) -> Result<(), EngineError> {
        let opts = bollard::query_parameters::TagImageOptionsBuilder::default()
            .repo(repo)
            .tag(tag)
            .build();
        let context = format!("tagging image {} as {repo}:{tag}", super::short(id));
        EngineError::limited(&context, CALL_TIMEOUT, async {
            self.docker()
                .tag_image(id, Some(opts))
                .await
                .map_err(|e| EngineError::api(&context, &e))
        })
        .await
    }

    /// Removes an image by reference (used by tests and `--rebuild` clean-up).
    pub async fn remove_image(&self, reference: &str) -> Result<(), EngineError> {
        let opts = bollard::query_parameters::RemoveImageOptionsBuilder::default()
            .force(true)
            .build();
        let context = format!("removing image {reference}");
        EngineError::limited(&context, CALL_TIMEOUT, async {
            match self.docker().remove_image(reference, Some(opts), None).await {
                Ok(_) => Ok(()),
                Err(e) if is_not_found(&e) => Ok(()),
                Err(e) => Err(EngineError::api(&context, &e)),
            }
        })
        .await
    }
}

/// The digest in a push's last status line (`TAG: digest: sha256:HEX size: N`).
fn pushed_digest(status: &str) -> Option<String> {
    let rest = &status[status.find("digest: sha256:")? + "digest: ".len()..];
    let digest: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == ':')
        .collect();
    (digest.len() == "sha256:".len() + 64).then_some(digest)
}

#[cfg(test)]
mod push_tests {
    #[test]
    fn the_digest_is_read_from_the_last_status_line() {
        let hex = "2a48e22c6b73e331539e41d7c2cbf5b6cbd4fce4fb8abc707406e75176312c2e";
        let line = format!("bfa64250bcad7c2b: digest: sha256:{hex} size: 946");
        assert_eq!(super::pushed_digest(&line), Some(format!("sha256:{hex}")));
        assert_eq!(super::pushed_digest("Pushed"), None);
        assert_eq!(super::pushed_digest("x: digest: sha256:abc size: 1"), None);
    }
}
