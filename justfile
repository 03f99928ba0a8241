# Everyday recipes. README's commands work without `just`; these are shortcuts.

default:
    @just --list

# Build the release binary.
build:
    cargo build --release

# Run the whole test suite (needs a Docker engine).
test:
    cargo test

# Run the sample tasks end to end against the scripted model.
demo:
    cargo run --release -- demo

# Benchmarks beside docker run, xargs and the Python SDK; writes docs/BENCHMARKS.md (--quick: short proof run).
bench *ARGS:
    cargo build --release --bins
    target/release/sandpen-bench {{ARGS}}

# Formatting and lints.
lint:
    cargo fmt --all -- --check
    cargo clippy --all-targets -- -D warnings

# Build or reuse an image: just image probe
image TARGET="agent":
    cargo run --release -- image build --target {{TARGET}}

# sandpen itself as an image (see Dockerfile).
docker-image: build
    docker build -t sandpen .

# CI, as it runs on a fresh clone.
ci:
    bash .ci/run
