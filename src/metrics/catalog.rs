//! The metrics a configuration can emit, each with an index the aggregators key series
//! by: the four standard metrics first (named as the .NET SDK names them), then every
//! distinct custom metric (`emit_metrics` rules and token metrics), interned by name,
//! namespace and dimension names so that two APIs emitting the same metric share its
//! series.

use crate::config::{Diagnostic, TOKEN_METRIC_NAMES};

/// The property that tells the service an item was counted in the standard metrics.
pub const PROCESSED_BY: &str = "_MS.ProcessedByMetricExtractors";

/// The standard metrics, pre-aggregated before sampling. Names, ids and dimension names
/// are the .NET SDK's (`MetricTerms.cs` in microsoft/ApplicationInsights-dotnet), which
/// the Node.js SDK uses as well.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standard {
    Requests,
    Dependencies,
    Exceptions,
    Traces,
}

impl Standard {
    pub const ALL: [Standard; 4] = [
        Standard::Requests,
        Standard::Dependencies,
        Standard::Exceptions,
        Standard::Traces,
    ];

    /// The metric's index in every [`Catalog`].
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Standard::Requests => "Server response time",
            Standard::Dependencies => "Dependency duration",
            Standard::Exceptions => "Exceptions",
            Standard::Traces => "Traces",
        }
    }

    /// `_MS.MetricId`.
    pub fn metric_id(self) -> &'static str {
        match self {
            Standard::Requests => "requests/duration",
            Standard::Dependencies => "dependencies/duration",
            Standard::Exceptions => "exceptions/count",
            Standard::Traces => "traces/count",
        }
    }

    /// Dimensions besides `cloud/roleName` and `cloud/roleInstance`, in value order (the
    /// .NET extractors' dimensions; its tests, `AutocollectedMetricsExtractorTest`, list
    /// them).
    pub fn dimensions(self) -> &'static [&'static str] {
        match self {
            Standard::Requests => &[
                "request/resultCode",
                "Request.Success",
                "request/performanceBucket",
                "operation/synthetic",
            ],
            Standard::Dependencies => &[
                "Dependency.Type",
                "Dependency.Success",
                "dependency/target",
                "dependency/resultCode",
                "dependency/performanceBucket",
                "operation/synthetic",
            ],
            Standard::Exceptions => &[],
            Standard::Traces => &["trace/severityLevel", "operation/synthetic"],
        }
    }

    /// `_MS.ProcessedByMetricExtractors` on the items this metric counted, as the .NET
    /// SDK's extractors (version 1.1) write it.
    pub fn processed_by(self) -> &'static str {
        match self {
            Standard::Requests => "(Name:'Requests', Ver:'1.1')",
            Standard::Dependencies => "(Name:'Dependencies', Ver:'1.1')",
            Standard::Exceptions => "(Name:'Exceptions', Ver:'1.1')",
            Standard::Traces => "(Name:'Traces', Ver:'1.1')",
        }
    }
}

/// One metric: what its MetricData items are called and which dimensions they carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricDef {
    pub name: String,
    pub namespace: Option<String>,
    /// Dimension names, in the order series keep their values.
    pub dimensions: Vec<String>,
    pub standard: Option<Standard>,
}

/// The custom metrics one diagnostic emits: each active rule's index, and the token
/// metrics' (total, prompt, completion).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiagnosticMetrics {
    pub rules: Vec<usize>,
    pub tokens: Option<[usize; 3]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    pub defs: Vec<MetricDef>,
}

impl Default for Catalog {
    fn default() -> Self {
        let defs = Standard::ALL
            .iter()
            .map(|s| MetricDef {
                name: s.name().to_string(),
                namespace: None,
                dimensions: s.dimensions().iter().map(|d| d.to_string()).collect(),
                standard: Some(*s),
            })
            .collect();
        Catalog { defs }
    }
}

impl Catalog {
    pub fn get(&self, index: usize) -> Option<&MetricDef> {
        self.defs.get(index)
    }

    /// The index of this custom metric, added if new.
    pub fn intern(&mut self, name: &str, namespace: &str, dimensions: Vec<String>) -> usize {
        let def = MetricDef {
            name: name.to_string(),
            namespace: Some(namespace.to_string()),
            dimensions,
            standard: None,
        };
        if let Some(i) = self.defs.iter().position(|d| *d == def) {
            return i;
        }
        self.defs.push(def);
        self.defs.len() - 1
    }

    /// Adds the custom metrics of `d` (only those that emit).
    pub fn add_diagnostic(&mut self, d: &Diagnostic) -> DiagnosticMetrics {
        let names = |dims: &[crate::config::Dimension]| dims.iter().map(|d| d.name.clone()).collect::<Vec<_>>();
        let rules = d
            .active_metric_rules()
            .iter()
            .map(|r| self.intern(&r.name, &r.namespace, names(&r.dimensions)))
            .collect();
        let tokens = d
            .active_token_metrics()
            .map(|t| TOKEN_METRIC_NAMES.map(|name| self.intern(name, &t.namespace, names(&t.dimensions))));
        DiagnosticMetrics { rules, tokens }
    }
}
