//! `data_masking`: which headers, query parameters and JSON fields are masked or hidden
//! wherever they could appear (read into [`crate::masking::Masking`]).

use super::reader::Fields;
use super::{err, ConfigError, Problem};
use crate::masking::{Masking, Mode};

pub(crate) const MASKING_FIELDS: &[&str] = &["defaults", "headers", "query_params", "json_fields"];
const MASK_RULE_FIELDS: &[&str] = &["name", "mode"];

pub(crate) fn parse_masking(f: &Fields<'_>) -> Result<Masking, ConfigError> {
    let rules = |key: &str| -> Result<Vec<(String, Mode)>, ConfigError> {
        f.objects(key, "a list of {name, mode}", MASK_RULE_FIELDS, parse_rule)
    };
    Ok(Masking::new(
        f.bool("defaults")?.unwrap_or(true),
        rules("headers")?,
        rules("query_params")?,
        f.strings("json_fields")?,
    ))
}

fn parse_rule(r: &Fields<'_>) -> Result<(String, Mode), ConfigError> {
    let name = r
        .string("name")?
        .filter(|n| !n.is_empty())
        .ok_or_else(|| err(r.path("name"), Problem::Missing))?;
    let mode = match r.string("mode")?.map(str::to_ascii_lowercase).as_deref() {
        None | Some("mask") => Mode::Mask,
        Some("hide") => Mode::Hide,
        Some("none") => Mode::None,
        Some(_) => return Err(err(r.path("mode"), Problem::OneOf("Mask, Hide, None"))),
    };
    Ok((name.to_string(), mode))
}
