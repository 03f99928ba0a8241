//! The Swarm suites, one test binary: each test makes a Swarm of its own (`common/swarm.rs`,
//! on a network slot of its own) and spends most of its time waiting on it (about half a core
//! for ~2 min), so the harness runs them two at a time here, where four binaries ran them one
//! after another (603 s in CI). The harness starts tests in the order of their names: the
//! longest (cli, delivery, gateway) sort first, so that none is left to run alone at the end.

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod delivery;
mod gateway;
mod services;
