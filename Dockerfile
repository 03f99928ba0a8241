# sandpen itself as an image, for self-hosted CI runners that use the host's Docker engine.
#
#   cargo build --release && docker build -t sandpen .
#   docker run --rm -v /var/run/docker.sock:/var/run/docker.sock \
#       -v "$PWD:$PWD" -w "$PWD" sandpen run tasks.toml
#
# The repository must be mounted at the SAME path as on the host: sandpen bind-mounts each
# task's checkout into its container by path, and the engine resolves that path on the host.
#
# It copies a binary built on the host (no Rust toolchain or registry needed at build time).
# The base is the same offline-capable Debian base as sandpen's other images.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

# sandpen runs git on the host side of each task (checkouts, result branches).
RUN command -v git >/dev/null \
    || (apt-get update && apt-get install -y --no-install-recommends git ca-certificates \
        && rm -rf /var/lib/apt/lists/*)

ARG SANDPEN_BIN=target/release/sandpen
COPY ${SANDPEN_BIN} /usr/local/bin/sandpen

ENTRYPOINT ["/usr/local/bin/sandpen"]
CMD ["--help"]
