//! `availability`: what API Management's availability monitor gives, in two parts.
//!
//! - `health_path`: a path the filter answers itself (200, never forwarded, no telemetry),
//!   for an Application Insights standard availability test that probes the gateway from
//!   outside;
//! - `tests`: availability tests the gateway runs itself, against Envoy clusters, each
//!   result an AvailabilityData item in the chosen loggers.
//!
//! ```json
//! {"availability": {
//!    "health_path": "/healthz",
//!    "location": "westeurope-gw-1",
//!    "loggers": ["main"],
//!    "tests": [{"name": "orders", "cluster": "orders", "path": "/health",
//!               "authority": "orders.internal", "method": "GET", "expected_status": 200,
//!               "interval_ms": 300000, "timeout_ms": 30000}]}}
//! ```

use super::reader::Fields;
use super::{err, excerpt, ConfigError, Logger, Problem};

/// How often a test runs, unless configured (Application Insights' standard tests run
/// every 5, 10 or 15 minutes; 5 is their default).
pub const DEFAULT_TEST_INTERVAL_MS: u64 = 300_000;
/// Bounds of a test's interval.
pub const MIN_TEST_INTERVAL_MS: u64 = 1_000;
pub const MAX_TEST_INTERVAL_MS: u64 = 3_600_000;
/// How long a test waits for its answer, unless configured (as a standard test).
pub const DEFAULT_TEST_TIMEOUT_MS: u64 = 30_000;
pub const MIN_TEST_TIMEOUT_MS: u64 = 100;
/// The status a test expects, unless configured.
pub const DEFAULT_EXPECTED_STATUS: u16 = 200;
/// Longest test name (the schema allows 1024; names are also shared-data keys and log
/// text) and run location (the schema's limit).
const MAX_TEST_NAME: usize = 256;
const MAX_LOCATION: usize = 1024;
/// Longest path or authority (a URL's schema limit).
const MAX_TARGET: usize = 2048;
/// The methods a test may use.
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"];

/// The validated `availability` object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Availability {
    /// The path (without query) the filter answers itself; `None`: off.
    pub health_path: Option<String>,
    pub tests: Vec<AvailabilityTest>,
    /// `runLocation` of every result; `None`: the role instance.
    pub location: Option<String>,
    /// Indexes into [`super::Config::loggers`] that receive the results.
    pub loggers: Vec<usize>,
}

/// One built-in availability test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvailabilityTest {
    /// Unique: the result's `name`, and the key workers coordinate on.
    pub name: String,
    /// The Envoy cluster the probe goes to.
    pub cluster: String,
    /// `:path` of the probe (query allowed).
    pub path: String,
    /// `:authority` of the probe.
    pub authority: String,
    pub method: String,
    pub expected_status: u16,
    pub interval_ms: u64,
    pub timeout_ms: u64,
}

pub(crate) const AVAILABILITY_FIELDS: &[&str] = &["health_path", "tests", "location", "loggers"];
const TEST_FIELDS: &[&str] = &[
    "name",
    "cluster",
    "path",
    "authority",
    "method",
    "expected_status",
    "interval_ms",
    "timeout_ms",
];

/// Reads `availability`; results go to `default_loggers` (the all-APIs diagnostic's)
/// unless it names its own.
pub(crate) fn parse(
    f: &Fields<'_>,
    loggers: &[Logger],
    default_loggers: &[usize],
) -> Result<Availability, ConfigError> {
    let health_path = target(f, "health_path", Target::HealthPath)?;
    let tests = f.objects("tests", "a list of availability tests", TEST_FIELDS, parse_test)?;
    for (i, t) in tests.iter().enumerate() {
        if tests.iter().take(i).any(|o| o.name == t.name) {
            return Err(err(format!("{}[{i}].name", f.path("tests")), Problem::Duplicate));
        }
    }
    let loggers = match f.get("loggers") {
        Some(v) => super::diagnostic::select_loggers(v, &f.path("loggers"), loggers)?,
        None => default_loggers.to_vec(),
    };
    Ok(Availability {
        health_path,
        tests,
        location: f.bounded_string("location", MAX_LOCATION)?,
        loggers,
    })
}

fn parse_test(f: &Fields<'_>) -> Result<AvailabilityTest, ConfigError> {
    let name = f
        .bounded_string("name", MAX_TEST_NAME)?
        .ok_or_else(|| err(f.path("name"), Problem::Missing))?;
    let cluster = super::cluster_name(f, "cluster")?.ok_or_else(|| err(f.path("cluster"), Problem::Missing))?;
    let method = match f.string("method")? {
        None => "GET".to_string(),
        Some(m) if METHODS.contains(&m) => m.to_string(),
        Some(_) => {
            return Err(err(
                f.path("method"),
                Problem::OneOf("GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH"),
            ))
        }
    };
    let interval_ms = f
        .uint("interval_ms", MIN_TEST_INTERVAL_MS, MAX_TEST_INTERVAL_MS)?
        .unwrap_or(DEFAULT_TEST_INTERVAL_MS);
    let timeout_ms = f
        .uint("timeout_ms", MIN_TEST_TIMEOUT_MS, MAX_TEST_INTERVAL_MS)?
        .unwrap_or(DEFAULT_TEST_TIMEOUT_MS);
    if timeout_ms >= interval_ms {
        let why = format!("must be less than interval_ms ({interval_ms}): a test runs once per interval");
        return Err(err(f.path("timeout_ms"), Problem::Invalid(why)));
    }
    let expected = f.uint("expected_status", 100, 599)?;
    Ok(AvailabilityTest {
        authority: target(f, "authority", Target::Authority)?.unwrap_or_else(|| cluster.clone()),
        path: target(f, "path", Target::Path)?.unwrap_or_else(|| "/".into()),
        name,
        cluster,
        method,
        expected_status: expected.map_or(DEFAULT_EXPECTED_STATUS, |s| s as u16),
        interval_ms,
        timeout_ms,
    })
}

/// What a request-target field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// A path compared with requests' paths: no query or fragment.
    HealthPath,
    /// A probe's `:path`, query allowed.
    Path,
    /// A probe's `:authority`.
    Authority,
}

/// A path or authority as it goes on the wire: visible ASCII without spaces (others are
/// percent-encoded), within the URL limit.
fn target(f: &Fields<'_>, key: &str, kind: Target) -> Result<Option<String>, ConfigError> {
    let Some(s) = f.string(key)? else { return Ok(None) };
    let invalid = |why: &str| Err(err(f.path(key), Problem::Invalid(why.to_string())));
    if s.is_empty() {
        return Err(err(f.path(key), Problem::Empty));
    }
    if s.chars().count() > MAX_TARGET {
        return Err(err(f.path(key), Problem::TooLong { max: MAX_TARGET }));
    }
    if !s.bytes().all(|b| b.is_ascii_graphic()) {
        return invalid("must be visible ASCII without spaces (percent-encode other characters)");
    }
    match kind {
        Target::Authority if s.contains(['/', '?', '#', '@']) => {
            invalid("must be a host[:port], without '/', '?', '#' or '@'")
        }
        Target::HealthPath | Target::Path if !s.starts_with('/') => invalid("must start with '/'"),
        Target::HealthPath if s.contains(['?', '#']) => {
            invalid("must not contain '?' or '#': it is compared with the request's path without its query")
        }
        _ => Ok(Some(s.to_string())),
    }
}

/// The test names, shown in log lines.
pub fn names(tests: &[AvailabilityTest]) -> String {
    tests.iter().map(|t| excerpt(&t.name)).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;
    use serde_json::{json, Value};

    fn config(availability: Value) -> Result<Config, ConfigError> {
        Config::from_value(&json!({
            "loggers": {"a": {"instrumentation_key": "00000000-0000-0000-0000-00000000000a"},
                        "b": {"instrumentation_key": "00000000-0000-0000-0000-00000000000b"}},
            "diagnostic": {"loggers": ["b"]},
            "availability": availability}))
    }

    fn error_of(availability: Value) -> String {
        config(availability).unwrap_err().to_string()
    }

    #[test]
    fn a_test_needs_only_a_name_and_a_cluster_and_results_go_to_the_diagnostics_loggers() {
        let c = config(json!({"tests": [{"name": "orders", "cluster": "orders_svc"}]})).unwrap();
        let a = &c.availability;
        assert_eq!(a.health_path, None, "off unless configured");
        assert_eq!(a.location, None);
        assert_eq!(a.loggers, [1], "the all-APIs diagnostic's");
        assert_eq!(
            a.tests,
            [AvailabilityTest {
                name: "orders".into(),
                cluster: "orders_svc".into(),
                path: "/".into(),
                authority: "orders_svc".into(),
                method: "GET".into(),
                expected_status: 200,
                interval_ms: 300_000,
                timeout_ms: 30_000,
            }]
        );
        let none = Config::from_value(
            &json!({"loggers": {"a": {"instrumentation_key": "00000000-0000-0000-0000-00000000000a"}}}),
        )
        .unwrap();
        assert_eq!(none.availability.health_path, None);
        assert!(none.availability.tests.is_empty());
        assert_eq!(none.availability.loggers, [0]);
    }

    #[test]
    fn every_field_is_read() {
        let c = config(
            json!({"health_path": "/healthz", "location": "West Europe gw-1", "loggers": ["a", "b"],
            "tests": [{"name": "slow one", "cluster": "c", "path": "/status?deep=1", "authority": "svc.internal:8080",
                       "method": "HEAD", "expected_status": 204, "interval_ms": 1000, "timeout_ms": 999}]}),
        )
        .unwrap();
        let a = &c.availability;
        assert_eq!(a.health_path.as_deref(), Some("/healthz"));
        assert_eq!(a.location.as_deref(), Some("West Europe gw-1"));
        assert_eq!(a.loggers, [0, 1]);
        let t = &a.tests[0];
        assert_eq!(
            (t.path.as_str(), t.authority.as_str(), t.method.as_str()),
            ("/status?deep=1", "svc.internal:8080", "HEAD")
        );
        assert_eq!((t.expected_status, t.interval_ms, t.timeout_ms), (204, 1000, 999));
    }

    #[test]
    fn bad_values_are_refused_with_the_field_named() {
        let test = |extra: Value| {
            let mut t = json!({"name": "t", "cluster": "c"});
            t.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            error_of(json!({"tests": [t]}))
        };
        let cases = [
            (error_of(json!({"health_path": "healthz"})), "availability.health_path: must start with '/'"),
            (
                error_of(json!({"health_path": "/health?full=1"})),
                "availability.health_path: must not contain '?' or '#': it is compared with the request's path without its query",
            ),
            (
                error_of(json!({"health_path": "/health check"})),
                "availability.health_path: must be visible ASCII without spaces (percent-encode other characters)",
            ),
            (error_of(json!({"health_path": ""})), "availability.health_path: must not be empty"),
            (error_of(json!({"health_path": 1})), "availability.health_path: must be a string"),
            (error_of(json!({"location": " "})), "availability.location: must not be empty"),
            (
                error_of(json!({"loggers": ["c"]})),
                "availability.loggers[0]: names a logger that is not defined in loggers",
            ),
            (error_of(json!({"tests": {}})), "availability.tests: must be a list of availability tests"),
            (error_of(json!({"tests": [{"cluster": "c"}]})), "availability.tests[0].name: is required"),
            (error_of(json!({"tests": [{"name": "t"}]})), "availability.tests[0].cluster: is required"),
            (
                error_of(json!({"tests": [{"name": "t", "cluster": "c"}, {"name": "t", "cluster": "d"}]})),
                "availability.tests[1].name: is used twice",
            ),
            (
                test(json!({"cluster": "has space"})),
                "availability.tests[0].cluster: may contain only letters, digits, '_', '-', '.', '|' and ':'",
            ),
            (test(json!({"path": "health"})), "availability.tests[0].path: must start with '/'"),
            (
                test(json!({"authority": "svc/x"})),
                "availability.tests[0].authority: must be a host[:port], without '/', '?', '#' or '@'",
            ),
            (
                test(json!({"method": "get"})),
                "availability.tests[0].method: must be one of GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH",
            ),
            (
                test(json!({"expected_status": 600})),
                "availability.tests[0].expected_status: must be between 100 and 599",
            ),
            (test(json!({"expected_status": "200"})), "availability.tests[0].expected_status: must be a number"),
            (
                test(json!({"interval_ms": 999})),
                "availability.tests[0].interval_ms: must be between 1000 and 3600000",
            ),
            (
                test(json!({"timeout_ms": 99})),
                "availability.tests[0].timeout_ms: must be between 100 and 3600000",
            ),
            (
                test(json!({"interval_ms": 5000, "timeout_ms": 5000})),
                "availability.tests[0].timeout_ms: must be less than interval_ms (5000): a test runs once per interval",
            ),
            (
                test(json!({"url": "/x"})),
                "availability.tests[0].url: unknown field; allowed here: name, cluster, path, authority, method, expected_status, interval_ms, timeout_ms",
            ),
            (
                error_of(json!({"health": "/x"})),
                "availability.health: unknown field; allowed here: health_path, tests, location, loggers",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }
}
