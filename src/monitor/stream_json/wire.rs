//! The CLI's stream-json lines as typed serde structs. Every field is optional and
//! type-tolerant (`lenient`): one odd field never loses a whole line.

use serde::Deserialize;
use serde_json::Value;

/// The fields of every line type we read, all optional and type-tolerant.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RawLine {
    #[serde(rename = "type", deserialize_with = "lenient::string")]
    pub kind: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    pub subtype: Option<String>,
    // system/init
    #[serde(deserialize_with = "lenient::string")]
    pub session_id: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    pub model: Option<String>,
    #[serde(deserialize_with = "lenient::strings")]
    pub agents: Vec<String>,
    #[serde(deserialize_with = "lenient::string")]
    pub claude_code_version: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    pub cwd: Option<String>,
    #[serde(rename = "permissionMode", deserialize_with = "lenient::string")]
    pub permission_mode: Option<String>,
    // assistant / user
    #[serde(deserialize_with = "lenient::object")]
    pub message: Option<RawMessage>,
    // system/api_retry
    #[serde(deserialize_with = "lenient::u64")]
    pub attempt: Option<u64>,
    #[serde(deserialize_with = "lenient::u64")]
    pub max_retries: Option<u64>,
    #[serde(deserialize_with = "lenient::u64")]
    pub retry_delay_ms: Option<u64>,
    pub error: Option<Value>,
    // result
    #[serde(deserialize_with = "lenient::bool")]
    pub is_error: Option<bool>,
    #[serde(deserialize_with = "lenient::u64")]
    pub num_turns: Option<u64>,
    #[serde(deserialize_with = "lenient::u64")]
    pub duration_ms: Option<u64>,
    #[serde(deserialize_with = "lenient::f64")]
    pub total_cost_usd: Option<f64>,
    #[serde(deserialize_with = "lenient::object")]
    pub usage: Option<RawUsage>,
    #[serde(deserialize_with = "lenient::string")]
    pub result: Option<String>,
    /// The HTTP status of the API error the session ended on (the CLI's retries spent).
    #[serde(deserialize_with = "lenient::u64")]
    pub api_error_status: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RawUsage {
    #[serde(deserialize_with = "lenient::u64")]
    pub input_tokens: Option<u64>,
    #[serde(deserialize_with = "lenient::u64")]
    pub output_tokens: Option<u64>,
    #[serde(deserialize_with = "lenient::u64")]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(deserialize_with = "lenient::u64")]
    pub cache_read_input_tokens: Option<u64>,
}

/// An API message of an `assistant` or `user` line.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RawMessage {
    #[serde(deserialize_with = "lenient::string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient::blocks")]
    pub content: Vec<RawBlock>,
}

/// A content block; blocks of other types (thinking, images...) are `Other`.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RawBlock {
    Text {
        #[serde(default, deserialize_with = "lenient::string")]
        text: Option<String>,
    },
    ToolUse {
        #[serde(default, deserialize_with = "lenient::string")]
        name: Option<String>,
    },
    ToolResult {
        #[serde(default, deserialize_with = "lenient::bool")]
        is_error: Option<bool>,
    },
    #[serde(other)]
    Other,
}

/// Field deserializers that accept any JSON value and yield `None` (or empty) on a type mismatch,
/// so that one odd field never loses a whole line.
pub mod lenient {
    use serde::Deserialize;
    use serde::de::{DeserializeOwned, Deserializer, IgnoredAny};
    use serde_json::Value;

    /// Any JSON value, typed as far as a field needs: serde picks the first variant that fits.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Bool(bool),
        U64(u64),
        I64(i64),
        F64(f64),
        Str(String),
        Other(IgnoredAny),
    }

    fn scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
        Option::<Scalar>::deserialize(d).map(|s| s.unwrap_or(Scalar::Other(IgnoredAny)))
    }

    fn float_to_u64(f: f64) -> Option<u64> {
        // `as` saturates at u64::MAX.
        (f.is_finite() && f >= 0.0).then(|| f.round() as u64)
    }

    /// Non-negative integers; floats are rounded, numeric strings parsed.
    pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        Ok(match scalar(d)? {
            Scalar::U64(n) => Some(n),
            Scalar::I64(n) => u64::try_from(n).ok(),
            Scalar::F64(f) => float_to_u64(f),
            Scalar::Str(s) => {
                let s = s.trim();
                s.parse().ok().or_else(|| s.parse().ok().and_then(float_to_u64))
            }
            Scalar::Bool(_) | Scalar::Other(_) => None,
        })
    }

    /// Finite numbers; numeric strings parsed.
    pub fn f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        let f = match scalar(d)? {
            Scalar::U64(n) => Some(n as f64),
            Scalar::I64(n) => Some(n as f64),
            Scalar::F64(f) => Some(f),
            Scalar::Str(s) => s.trim().parse().ok(),
            Scalar::Bool(_) | Scalar::Other(_) => None,
        };
        Ok(f.filter(|f: &f64| f.is_finite()))
    }

    /// Booleans, and the strings "true" / "false".
    pub fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        Ok(match scalar(d)? {
            Scalar::Bool(b) => Some(b),
            Scalar::Str(s) => s.trim().parse().ok(),
            _ => None,
        })
    }

    /// Strings only.
    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(match scalar(d)? {
            Scalar::Str(s) => Some(s),
            _ => None,
        })
    }

    /// An array's string elements (or the `name` of object elements); anything else is empty.
    pub fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        let value = Value::deserialize(d)?;
        let Some(items) = value.as_array() else {
            return Ok(Vec::new());
        };
        Ok(items
            .iter()
            .filter_map(|v| v.as_str().or_else(|| v.get("name")?.as_str()))
            .map(str::to_owned)
            .collect())
    }

    /// An array of content blocks; an element that does not fit is left out.
    pub fn blocks<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<super::RawBlock>, D::Error> {
        let value = Value::deserialize(d)?;
        let Value::Array(items) = value else {
            return Ok(Vec::new());
        };
        Ok(items
            .into_iter()
            .filter_map(|v| super::RawBlock::deserialize(v).ok())
            .collect())
    }

    /// A nested struct, or `None` when the value does not fit it.
    pub fn object<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
        let value = Value::deserialize(d)?;
        Ok(T::deserialize(value).ok())
    }
}
