//! One logger on this worker: where its telemetry goes (cluster, `:authority`, `:path`,
//! prepared once per configuration), what every item it gets carries ([`Sender`]), its
//! [`Outbox`] of batches, and its Entra ID tokens when it uses managed identity.

use super::notices::LogLimiter;
use super::Notice;
use super::Roles;
use crate::config::{Config, Logger};
use crate::delivery::redirect::{self, Target};
use crate::delivery::Outbox;
use crate::managed_identity::TokenSource;
use crate::telemetry::Sender;

/// One logger's state on this worker.
#[derive(Debug)]
pub struct Sink {
    pub id: String,
    pub cluster: String,
    /// `:authority` and `:path` of every track request.
    pub authority: String,
    pub path: String,
    /// Where a `Retry-After` pause is shared with the other workers (no secret in it).
    pub pause_key: String,
    /// `scheme://authority` the logger was configured with, and where a redirect sent it
    /// (`cluster`, `authority` and `path` then follow the redirect).
    pub configured_origin: String,
    pub redirected_to: Option<Target>,
    pub redirect_cluster: Option<String>,
    pub sender: Sender,
    pub outbox: Outbox,
    /// Entra ID tokens, when the logger uses managed identity.
    pub token: Option<TokenSource>,
    pub gzip: bool,
    /// A 401/403 already made the token refresh once since the last success.
    pub refreshed_for_auth: bool,
    /// Lines about dropped items, and about failed deliveries, each at most once per
    /// interval.
    pub drop_warning: LogLimiter,
    pub failure_warning: LogLimiter,
    /// This logger's metric aggregates on this worker.
    pub aggregator: crate::metrics::aggregate::Aggregator,
    /// MetricData items written (one per series and interval).
    pub metric_series_sent: u64,
}

impl Sink {
    pub fn new(logger: &Logger, roles: &Roles, config: &Config) -> Sink {
        let endpoint = &logger.connection.ingestion_endpoint;
        let audience = logger.connection.aad_audience.as_deref();
        let token = logger
            .identity
            .as_ref()
            .map(|(identity, cluster)| TokenSource::new(identity, audience, cluster));
        let outbox = Outbox::new(config.delivery);
        Sink {
            id: logger.id.clone(),
            cluster: logger.cluster.clone(),
            authority: endpoint.authority(),
            path: endpoint.track_path(),
            pause_key: format!(
                "appinsights.paused_until {} {}{}",
                logger.cluster,
                endpoint.authority(),
                endpoint.track_path()
            ),
            configured_origin: format!("{}://{}", endpoint.scheme.as_str(), endpoint.authority()),
            redirected_to: None,
            redirect_cluster: logger.redirect_cluster.clone(),
            sender: sender(&logger.connection.instrumentation_key, roles, &config.service),
            outbox: if token.is_some() {
                outbox.with_credentials()
            } else {
                outbox
            },
            token,
            gzip: config.delivery.gzip,
            refreshed_for_auth: false,
            drop_warning: LogLimiter::default(),
            failure_warning: LogLimiter::default(),
            aggregator: crate::metrics::aggregate::Aggregator::new(
                config.metrics.interval_ms,
                config.metrics.max_series,
            ),
            metric_series_sent: 0,
        }
    }

    /// Whether batches can go now: without managed identity always, with it once a token
    /// is held.
    pub fn can_send(&self, now: u64) -> bool {
        self.token.as_ref().is_none_or(|t| t.authorization(now).is_some())
    }

    /// The ingestion service redirected a batch to `location`: this logger sends there from
    /// now on. Says so when the target changes, and what to configure when the new host
    /// is not the one the logger's cluster was set up for.
    pub fn follow(&mut self, location: &str, now: u64) -> Option<Notice> {
        let origin = self
            .redirected_to
            .as_ref()
            .map_or(&self.configured_origin, |t| &t.origin);
        let Some(target) = redirect::target(location, origin) else {
            let shown = crate::config::excerpt(location);
            return self.warn(
                now,
                &format!("ingestion redirected to {shown}, not a valid ingestion URL; ignored"),
            );
        };
        if self.redirected_to.as_ref() == Some(&target) {
            return None;
        }
        let problem = self.redirect_problem(&target);
        self.authority = target.authority.clone();
        self.path = target.path.clone();
        self.redirected_to = Some(target);
        self.warn(now, &problem)
    }

    /// What the operator reads about a redirect to `target` (switching clusters if one is
    /// configured for redirects).
    fn redirect_problem(&mut self, target: &Target) -> String {
        let url = format!("{}{}", target.origin, target.path);
        if target.origin == self.configured_origin {
            return format!("ingestion redirected to {url}; sending there");
        }
        if let Some(cluster) = self.redirect_cluster.clone() {
            self.cluster = cluster;
            return format!(
                "ingestion redirected to {url}; sending there through cluster {}",
                self.cluster
            );
        }
        let (id, cluster, configured) = (&self.id, &self.cluster, &self.configured_origin);
        format!(
            "ingestion redirected to {url}; still sending through cluster {cluster}, set up for {configured}: \
             if deliveries fail, set loggers.{id}.redirect_cluster to a cluster that reaches the new host \
             (a dynamic forward proxy cluster reaches any host; README, Redirects)"
        )
    }

    /// Whether a token should be fetched now: it is due, and there is telemetry to send or
    /// a held token to keep fresh (a VM that sees no traffic never asks).
    pub fn wants_token(&self, now: u64) -> bool {
        let wanted = |t: &TokenSource| t.authorization(now).is_some() || !self.outbox.is_idle();
        self.token.as_ref().is_some_and(|t| t.due(now) && wanted(t))
    }
}

/// What every item of a logger carries: its key, the roles, and APIM's service dimensions
/// (the configured ones, else the role names the service and the node's region the region).
fn sender(instrumentation_key: &str, roles: &Roles, service: &crate::config::Service) -> Sender {
    let names = crate::telemetry::ServiceNames {
        name: service.name.as_deref().unwrap_or(&roles.role),
        kind: service.kind.as_deref().unwrap_or(crate::config::DEFAULT_SERVICE_TYPE),
        id: service.id.as_deref().unwrap_or(&roles.role),
        region: roles.region.as_deref(),
    };
    Sender::with_service(instrumentation_key, &roles.role, &roles.instance, &names)
}
