//! Reading JSON objects field by field, with the field's path in every error.

use super::{err, excerpt, ConfigError, Problem};
use serde_json::{Map, Number, Value};

/// The fields of one JSON object, with the path used in error messages.
pub(crate) struct Fields<'a> {
    prefix: String,
    map: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    /// `value` must be an object whose keys are all in `allowed`.
    pub(crate) fn of(
        value: &'a Value,
        name: &str,
        prefix: &str,
        allowed: &'static [&'static str],
    ) -> Result<Fields<'a>, ConfigError> {
        let map = value
            .as_object()
            .ok_or_else(|| err(name, Problem::WrongType { expected: "an object" }))?;
        let fields = Fields {
            prefix: prefix.to_string(),
            map,
        };
        if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            let shown = if unknown.is_empty() {
                "\"\"".to_string()
            } else {
                excerpt(unknown)
            };
            return Err(err(fields.path(&shown), Problem::UnknownField { allowed }));
        }
        Ok(fields)
    }

    /// The path of this object itself.
    pub(crate) fn prefix_path(&self) -> String {
        self.prefix.clone()
    }

    pub(crate) fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    /// The value of `key`; JSON `null` counts as absent.
    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub(crate) fn object(
        &self,
        key: &str,
        allowed: &'static [&'static str],
    ) -> Result<Option<Fields<'a>>, ConfigError> {
        self.get(key)
            .map(|v| Fields::of(v, &self.path(key), &self.path(key), allowed))
            .transpose()
    }

    /// The list under `key` (`None`: absent) and its path; anything but a list is an error
    /// saying it must be `expected`.
    pub(crate) fn list(&self, key: &str, expected: &'static str) -> Result<Option<(&'a [Value], String)>, ConfigError> {
        let Some(v) = self.get(key) else { return Ok(None) };
        let path = self.path(key);
        let list = v
            .as_array()
            .ok_or_else(|| err(&path, Problem::WrongType { expected }))?;
        Ok(Some((list.as_slice(), path)))
    }

    /// Reads each object of the list under `key` with `parse` (none when absent): each may
    /// have only `allowed` fields, and its errors name it `key[i]`.
    pub(crate) fn objects<T>(
        &self,
        key: &str,
        expected: &'static str,
        allowed: &'static [&'static str],
        parse: impl Fn(&Fields<'a>) -> Result<T, ConfigError>,
    ) -> Result<Vec<T>, ConfigError> {
        let Some((list, path)) = self.list(key, expected)? else {
            return Ok(Vec::new());
        };
        list.iter()
            .enumerate()
            .map(|(i, v)| {
                let p = format!("{path}[{i}]");
                parse(&Fields::of(v, &p, &p, allowed)?)
            })
            .collect()
    }

    pub(crate) fn string(&self, key: &str) -> Result<Option<&'a str>, ConfigError> {
        self.get(key)
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| err(self.path(key), Problem::WrongType { expected: "a string" }))
            })
            .transpose()
    }

    /// A name that is logged or sent: not blank, at most `max` characters, no control
    /// characters.
    pub(crate) fn bounded_string(&self, key: &str, max: usize) -> Result<Option<String>, ConfigError> {
        match self.string(key)? {
            None => Ok(None),
            Some(s) if s.trim().is_empty() => Err(err(self.path(key), Problem::Empty)),
            Some(s) if s.chars().count() > max => Err(err(self.path(key), Problem::TooLong { max })),
            Some(s) if s.chars().any(char::is_control) => Err(err(
                self.path(key),
                Problem::Invalid("must not contain control characters".into()),
            )),
            Some(s) => Ok(Some(s.to_string())),
        }
    }

    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        self.get(key)
            .map(|v| {
                v.as_bool().ok_or_else(|| {
                    err(
                        self.path(key),
                        Problem::WrongType {
                            expected: "true or false",
                        },
                    )
                })
            })
            .transpose()
    }

    /// A JSON number; any other type is an error saying a number is expected.
    pub(crate) fn number(&self, key: &str) -> Result<Option<&'a Number>, ConfigError> {
        self.get(key)
            .map(|v| match v {
                Value::Number(n) => Ok(n),
                _ => Err(err(self.path(key), Problem::WrongType { expected: "a number" })),
            })
            .transpose()
    }

    /// A whole number from `min` to `max` (`5.0` counts as whole).
    pub(crate) fn uint(&self, key: &str, min: u64, max: u64) -> Result<Option<u64>, ConfigError> {
        let Some(n) = self.number(key)? else { return Ok(None) };
        let fraction = n.as_f64().is_some_and(|f| f.fract() != 0.0);
        let whole = n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64));
        match whole {
            Some(w) if (min..=max).contains(&w) => Ok(Some(w)),
            _ if fraction => Err(err(self.path(key), Problem::NotWholeNumber { min, max })),
            _ => Err(err(self.path(key), Problem::OutOfRange { min, max })),
        }
    }

    /// A list of non-empty strings (absent: empty).
    pub(crate) fn strings(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        let Some(v) = self.get(key) else { return Ok(Vec::new()) };
        let path = self.path(key);
        let list = v.as_array().ok_or_else(|| {
            err(
                &path,
                Problem::WrongType {
                    expected: "a list of strings",
                },
            )
        })?;
        list.iter()
            .enumerate()
            .map(|(i, s)| match s.as_str() {
                Some(s) if !s.is_empty() => Ok(s.to_string()),
                _ => Err(err(
                    format!("{path}[{i}]"),
                    Problem::WrongType {
                        expected: "a non-empty string",
                    },
                )),
            })
            .collect()
    }
}
