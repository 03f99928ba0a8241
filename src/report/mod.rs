//! Displays: consumers of the events that the library emits. Nothing else prints.

pub mod build;
