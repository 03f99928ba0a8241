//! Which executables made a gateway image. The image's label names the one that built it;
//! other copies of the same bytes that found it by its content are recorded as tags in a
//! repository of their own (`sandpen-gateway-stamp:<hash of the stamp>`), which go with the
//! image when it is pruned and which `doctor` does not list as stale builds.

use sha2::{Digest, Sha256};

use super::{ImageError, Target};
use crate::engine::Engine;

fn repository() -> String {
    format!("{}-stamp", Target::Gateway.repository())
}

fn stamp_tag(stamp: &str) -> String {
    hex::encode(Sha256::digest(stamp.as_bytes()))[..16].to_string()
}

/// The content tag of the gateway image a copy of this executable was recorded for.
pub(super) async fn recorded(engine: &Engine, stamp: &str) -> Result<Option<String>, ImageError> {
    let reference = format!("{}:{}", repository(), stamp_tag(stamp));
    let Some(id) = engine.image_id(&reference).await? else {
        return Ok(None);
    };
    let ours = format!("{}:", Target::Gateway.repository());
    let images = engine
        .images_with_label(super::LABEL_TARGET, Target::Gateway.name())
        .await?;
    Ok(images
        .into_iter()
        .filter(|i| i.id == id)
        .flat_map(|i| i.tags)
        .find(|t| t.starts_with(&ours)))
}

/// Records that the executable with `stamp` found gateway image `id` current.
pub(super) async fn record(engine: &Engine, id: &str, stamp: &str) -> Result<(), ImageError> {
    Ok(engine.tag_image(id, &repository(), &stamp_tag(stamp)).await?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_stamp_tag_is_a_valid_tag_and_differs_per_stamp() {
        let a = super::stamp_tag("211199760-1796449639.759872380-5365763@sha256:dff9");
        let b = super::stamp_tag("211199760-1796449918.287874035-10027010@sha256:dff9");
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
