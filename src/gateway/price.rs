//! What model tokens cost, per model, in USD per million tokens: the gateway meters each
//! request's `usage` with it. Built in (list prices of 2026-11; docs/gateway.md) and
//! replaceable by a TOML file (`--prices FILE`). A model no entry names is priced as the
//! dearest entry, so a budget errs on the side of stopping early.

use serde::{Deserialize, Serialize};

use super::usage::Usage;

/// The output a request without `max_tokens` is reserved for.
const DEFAULT_MAX_TOKENS: u64 = 32_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Price {
    /// Matches a model whose name starts with it (`claude-sonnet-4` covers its dated versions).
    pub model: String,
    pub input: f64,
    pub output: f64,
    /// Writing and reading the prompt cache; when absent, 1.25x and 0.1x the input price.
    pub cache_write: Option<f64>,
    pub cache_read: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceTable {
    #[serde(rename = "price")]
    pub prices: Vec<Price>,
}

fn price(model: &str, input: f64, output: f64) -> Price {
    Price {
        model: model.into(),
        input,
        output,
        cache_write: None,
        cache_read: None,
    }
}

impl Default for PriceTable {
    fn default() -> Self {
        Self {
            prices: vec![
                // As Claude Code 2.1.331 prices it (its total_cost_usd for the same usage).
                price("claude-opus-5", 4.0, 20.0),
                price("claude-opus-4-5", 5.0, 25.0),
                price("claude-opus-4", 15.0, 75.0),
                price("claude-sonnet-4", 3.0, 15.0),
                price("claude-3-7-sonnet", 3.0, 15.0),
                price("claude-haiku-4", 1.0, 5.0),
                price("claude-3-5-haiku", 0.8, 4.0),
            ],
        }
    }
}

impl PriceTable {
    /// Parses a price file; the error names what is wrong.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let table: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        if table.prices.is_empty() {
            return Err("no [[price]] entries".into());
        }
        for p in &table.prices {
            let all = [Some(p.input), Some(p.output), p.cache_write, p.cache_read];
            if all.into_iter().flatten().any(|v| !v.is_finite() || v < 0.0) {
                return Err(format!("{}: prices must be numbers of 0 or more", p.model));
            }
        }
        Ok(table)
    }

    /// The entry for `model`: the longest prefix that matches, else the dearest.
    fn entry(&self, model: &str) -> &Price {
        self.prices
            .iter()
            .filter(|p| model.starts_with(&p.model))
            .max_by_key(|p| p.model.len())
            .or_else(|| self.prices.iter().max_by(|a, b| a.output.total_cmp(&b.output)))
            .expect("a price table is never empty")
    }

    /// The most a request can cost before it is sent: `max_tokens` of output (32000 when the
    /// body names none) and its body's bytes / 4 as input tokens, at the dearest input rate
    /// (a cache write). A budget reserves this while the request is in flight.
    pub fn worst_case(&self, model: &str, max_tokens: Option<u64>, body_bytes: usize) -> f64 {
        let p = self.entry(model);
        let input = p.cache_write.unwrap_or(p.input * 1.25).max(p.input);
        let output = max_tokens.unwrap_or(DEFAULT_MAX_TOKENS) as f64 * p.output;
        (output + (body_bytes / 4) as f64 * input) / 1e6
    }

    pub fn cost(&self, model: &str, u: &Usage) -> f64 {
        let p = self.entry(model);
        let per = |tokens: u64, usd: f64| tokens as f64 * usd / 1e6;
        per(u.input_tokens, p.input)
            + per(u.output_tokens, p.output)
            + per(
                u.cache_creation_input_tokens,
                p.cache_write.unwrap_or(p.input * 1.25),
            )
            + per(u.cache_read_input_tokens, p.cache_read.unwrap_or(p.input * 0.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_follow_the_longest_matching_prefix_and_unknown_models_pay_the_most() {
        let t = PriceTable::default();
        let u = Usage {
            input_tokens: 1_000_000,
            output_tokens: 1_000_000,
            cache_creation_input_tokens: 1_000_000,
            cache_read_input_tokens: 1_000_000,
        };
        assert!((t.cost("claude-sonnet-4-5-20250929", &u) - (3.0 + 15.0 + 3.75 + 0.3)).abs() < 1e-9);
        assert!((t.cost("claude-opus-4-5-x", &u) - (5.0 + 25.0 + 6.25 + 0.5)).abs() < 1e-9);
        assert!((t.cost("mystery", &u) - (15.0 + 75.0 + 18.75 + 1.5)).abs() < 1e-9);
    }

    #[test]
    fn a_price_file_replaces_the_table() {
        let t = PriceTable::from_toml("[[price]]\nmodel = \"m\"\ninput = 1.0\noutput = 2.0\n").unwrap();
        let u = Usage {
            input_tokens: 1_000_000,
            output_tokens: 500_000,
            ..Default::default()
        };
        assert!((t.cost("m-1", &u) - 2.0).abs() < 1e-9);
        assert!(PriceTable::from_toml("[[price]]\nmodel = \"m\"\ninput = -1.0\noutput = 2.0\n").is_err());
        assert!(PriceTable::from_toml("").is_err());
    }

    #[test]
    fn the_worst_case_is_all_of_max_tokens_and_a_quarter_of_the_body_at_the_cache_write_rate() {
        let t = PriceTable::from_toml("[[price]]\nmodel = \"m\"\ninput = 2.0\noutput = 20.0\n").unwrap();
        // 20 tokens out at $20/M, 400 bytes = 100 tokens in at $2.5/M.
        assert!((t.worst_case("m", Some(20), 400) - (0.0004 + 0.00025)).abs() < 1e-12);
        assert!((t.worst_case("m", None, 0) - 0.64).abs() < 1e-12);
    }
}
