//! One line of the table: a figure as measured, or why it was not.

use crate::target::Target;

pub struct Row {
    pub figure: String,
    pub sandpen: String,
    pub other: String,
    pub ratio: Option<f64>,
    pub target: Target,
    /// The day it was measured (UTC): `--only` rewrites some rows and leaves the others.
    pub measured: String,
}

/// Today, as the table's dates say it.
pub fn today() -> String {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    now[..10].to_string()
}

impl Row {
    pub fn new(figure: &str, sandpen: String, other: String, ratio: Option<f64>, target: Target) -> Self {
        Self {
            figure: figure.to_string(),
            sandpen,
            other,
            ratio,
            target,
            measured: today(),
        }
    }

    /// A figure whose setup or comparison failed: said on the page, never dropped.
    pub fn not_measured(figure: &str, why: impl Into<String>) -> Self {
        Self::new(
            figure,
            format!("not measured: {}", why.into()),
            String::new(),
            None,
            Target::none(),
        )
    }

    pub fn met(&self) -> Option<bool> {
        self.target.met()
    }
}
