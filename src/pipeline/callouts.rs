//! Callouts and their answers: the work queue of the root context. Due batches go to each
//! logger's ingestion endpoint (`POST <endpoint>/v2.1/track`), Entra ID tokens come from
//! the instance metadata endpoint, and every answer — or the lack of one — is applied to
//! the logger it belongs to: items accepted, retried or dropped, tokens cached or
//! refreshed, a rate-limited line for the operator when something went wrong.
//!
//! What to do with an answer is decided by [`crate::delivery`] (batches) and
//! [`crate::managed_identity`] (tokens); this file connects them to the loggers.

use super::sink::Sink;
use super::{Notice, Pipeline};
use crate::delivery::track::{self, Verdict};
use crate::delivery::{backoff, gzip, Batch};
use crate::host::{Callout, CalloutId};
use crate::managed_identity::FETCH_TIMEOUT_MS;
use std::borrow::Cow;

/// A callout the root context should start.
#[derive(Debug)]
pub enum Work {
    /// Post a batch to the logger's ingestion endpoint.
    Ingest { sink: usize, batch: Batch },
    /// Fetch an Entra ID token for the logger.
    Token { sink: usize },
}

/// The answer to one callout, as read from Envoy.
#[derive(Debug, Clone, Copy, Default)]
pub struct Answer<'a> {
    /// HTTP status; `None` when there was no HTTP answer (reset, timeout, …).
    pub status: Option<u16>,
    pub retry_after: Option<&'a str>,
    /// `Location` (redirects).
    pub location: Option<&'a str>,
    pub body: &'a [u8],
}

impl Pipeline {
    /// The next callout to start: a due token request first, then a due batch of a
    /// logger that can send (`draining`: open batches are due at once).
    pub fn next_work(&mut self, now: u64, draining: bool) -> Option<Work> {
        // Tokens are fetched when there is telemetry to send (or to keep a held one fresh),
        // so VMs that see no traffic never call the metadata endpoint.
        if let Some(i) = self.sinks.iter().position(|s| s.wants_token(now)) {
            return Some(Work::Token { sink: i });
        }
        self.sinks
            .iter_mut()
            .enumerate()
            .filter(|(_, s)| s.can_send(now))
            .find_map(|(i, s)| {
                let batch = s.outbox.next_due(now, draining)?;
                Some(Work::Ingest { sink: i, batch })
            })
    }

    /// The track request for `batch` (gzip-compressed when configured).
    pub fn ingest_request<'a>(&'a self, sink: usize, batch: &'a Batch, now: u64) -> Option<Callout<'a>> {
        let s = self.sinks.get(sink)?;
        let mut headers = vec![
            (":method", "POST".to_string()),
            (":path", s.path.clone()),
            (":authority", s.authority.clone()),
            ("content-type", "application/x-json-stream".to_string()),
        ];
        if let Some(auth) = s.token.as_ref().and_then(|t| t.authorization(now)) {
            headers.push(("authorization", auth.to_string()));
        }
        let body = if s.gzip {
            headers.push(("content-encoding", "gzip".to_string()));
            Cow::Owned(gzip::compress(&batch.body))
        } else {
            Cow::Borrowed(batch.body.as_slice())
        };
        let timeout_ms = self.config.delivery.timeout_ms;
        Some(Callout {
            cluster: &s.cluster,
            headers,
            body,
            timeout_ms,
        })
    }

    /// The token request of `sink`'s managed identity.
    pub fn token_request(&self, sink: usize) -> Option<Callout<'_>> {
        let t = self.sinks.get(sink)?.token.as_ref()?;
        let headers = t.request_headers().iter().map(|(k, v)| (*k, v.to_string())).collect();
        Some(Callout {
            cluster: &t.cluster,
            headers,
            body: Cow::Borrowed(&[]),
            timeout_ms: FETCH_TIMEOUT_MS,
        })
    }

    /// The callout for `batch` started as `callout`.
    pub fn sent(&mut self, sink: usize, callout: CalloutId, batch: Batch, wire_bytes: usize) {
        if let Some(s) = self.sinks.get_mut(sink) {
            s.outbox.sent(callout, batch, wire_bytes);
        }
    }

    /// Envoy refused to start the callout (unknown cluster, no healthy host): retried
    /// with backoff.
    pub fn send_failed(&mut self, sink: usize, batch: Batch, why: &str, now: u64) -> Option<Notice> {
        let random = self.ids.next_u64();
        let s = self.sinks.get_mut(sink)?;
        let items = batch.items;
        s.outbox.send_failed(batch, now, random);
        let cluster = s.cluster.clone();
        s.warn(
            now,
            &format!("could not send {items} items to cluster {cluster}: {why}; retrying with backoff"),
        )
    }

    /// A token request started (`callout`) or could not start (`None`).
    pub fn token_started(&mut self, sink: usize, callout: Option<CalloutId>, now: u64) -> Option<Notice> {
        let random = self.ids.next_u64();
        let s = self.sinks.get_mut(sink)?;
        let t = s.token.as_mut()?;
        let Some(c) = callout else {
            t.start_failed(now, random);
            let cluster = t.cluster.clone();
            let problem =
                format!("could not request an Entra ID token through cluster {cluster}: Envoy refused the callout");
            return s.warn(now, &problem);
        };
        t.started(c);
        None
    }

    /// Applies an answer: the ingestion service's to a batch, or the metadata endpoint's
    /// to a token request. `status` is `None` when the callout got no HTTP answer.
    pub fn completed(&mut self, callout: CalloutId, answer: Answer<'_>, now: u64) -> Vec<Notice> {
        let random = self.ids.next_u64();
        if let Some(s) = self
            .sinks
            .iter_mut()
            .find(|s| s.token.as_ref().is_some_and(|t| t.owns(callout)))
        {
            return token_answered(s, answer, now, random).into_iter().collect();
        }
        match self.sinks.iter_mut().find(|s| s.outbox.owns(callout)) {
            Some(s) => batch_answered(s, callout, answer, now, random).into_iter().collect(),
            None => vec![Notice::Debug(format!("answer for unknown callout {callout} ignored"))],
        }
    }
}

/// What a token answer means for the operator (never the token itself).
fn token_answered(s: &mut Sink, answer: Answer<'_>, now: u64, random: u64) -> Option<Notice> {
    let t = s.token.as_mut()?;
    match t.answered(answer.status, answer.body, now, random) {
        Ok(()) => {
            // Batches that waited for credentials may go now.
            s.outbox.resume();
            None
        }
        Err(e) => {
            let cluster = t.cluster.clone();
            let problem =
                format!("no Entra ID token from the metadata endpoint (cluster {cluster}): {e}; telemetry waits");
            s.warn(now, &problem)
        }
    }
}

/// Applies the ingestion service's answer to the batch sent as `callout`.
fn batch_answered(s: &mut Sink, callout: CalloutId, answer: Answer<'_>, now: u64, random: u64) -> Option<Notice> {
    let items = s.outbox.items_of(callout).unwrap_or(0);
    let verdict = track::classify_with_location(answer.status, answer.retry_after, answer.location, answer.body, items);
    let done = s.outbox.completed(callout, &verdict, now, random)?;
    if let Verdict::Redirect { location, .. } = &verdict {
        if let Some(notice) = s.follow(location, now) {
            return Some(notice);
        }
    }
    if done.needs_credentials {
        if let Some(t) = s.token.as_mut() {
            if s.refreshed_for_auth {
                // Refreshed once already and still refused: back off before the next try.
                s.outbox.pause_for(now, backoff::delay_nanos(2, 1_000, 60_000, random));
            }
            t.invalidate();
            s.refreshed_for_auth = true;
        }
    } else if matches!(verdict, Verdict::Accepted { .. }) {
        s.refreshed_for_auth = false;
    }
    let problem = super::notices::describe_verdict(&verdict, &done, &s.cluster, now)?;
    s.warn(now, &problem)
}

#[cfg(test)]
mod tests {
    use crate::pipeline::testing::*;

    #[test]
    fn track_requests_go_to_the_endpoint_path_and_authority_gzipped() {
        let p = pipeline(json!({}));
        let batch = Batch::default();
        let out = p.ingest_request(0, &batch, 0).unwrap();
        assert_eq!(out.cluster, "ca");
        assert_eq!(out.headers[1], (":path", "/v2.1/track".to_string()));
        assert_eq!(out.headers[2], (":authority", "127.0.0.1:9001".to_string()));
        assert!(out.headers.contains(&("content-encoding", "gzip".to_string())));
        assert_eq!(&out.body[..2], &[0x1f, 0x8b]);
        let out = p.ingest_request(1, &batch, 0).unwrap();
        assert_eq!(
            out.headers[2],
            (":authority", "dc.services.visualstudio.com".to_string())
        );
        let plain = pipeline(json!({"delivery": {"gzip": false}}));
        let out = plain.ingest_request(0, &batch, 0).unwrap();
        assert!(!out.headers.iter().any(|(k, _)| *k == "content-encoding"));
    }

    #[test]
    fn managed_identity_fetches_a_token_first_and_sends_it() {
        let mut p = pipeline(
            json!({"loggers": {"a": {"connection_string": "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=http://127.0.0.1:9/", "identity": "SystemAssigned"}}}),
        );
        let fe = frontend("/x", &[]);
        let (begun, _) = p.begin(&fe, &RouteInfo::default());
        p.finish(&Finished::new(&begun, &fe, &outcome(200)));
        let now = 1_700_000_000_000_000_000;
        let Some(Work::Token { sink }) = p.next_work(now, true) else {
            panic!("a token first")
        };
        let req = p.token_request(sink).unwrap();
        assert_eq!(req.cluster, "imds");
        assert!(p.token_started(sink, Some(5), now).is_none());
        assert!(p.next_work(now, true).is_none(), "telemetry waits for the token");
        let body = br#"{"access_token":"tok","expires_in":"3600"}"#;
        assert!(p
            .completed(
                5,
                Answer {
                    status: Some(200),
                    body,
                    ..Default::default()
                },
                now
            )
            .is_empty());
        let Some(Work::Ingest { sink, batch }) = p.next_work(now, true) else {
            panic!("then the batch")
        };
        let out = p.ingest_request(sink, &batch, now).unwrap();
        assert!(out.headers.contains(&("authorization", "Bearer tok".to_string())));
        p.sent(sink, 6, batch, 10);
        // 401: the token is dropped and fetched again; the batch waits for it.
        let notes = p.completed(
            6,
            Answer {
                status: Some(401),
                ..Default::default()
            },
            now,
        );
        assert!(
            notes[0].clone()
                == Notice::Warn("logger a: ingestion answered 401: refreshing the Entra ID token; 1 items wait".into()),
            "{notes:?}"
        );
        assert!(matches!(p.next_work(now, true), Some(Work::Token { .. })));
    }

    #[test]
    fn failures_produce_rate_limited_warnings_that_name_the_logger() {
        let mut p = pipeline(json!({}));
        let fe = frontend("/x", &[]);
        for _ in 0..3 {
            let (begun, _) = p.begin(&fe, &RouteInfo::default());
            p.finish(&Finished::new(&begun, &fe, &outcome(200)));
        }
        let Some(Work::Ingest { sink, batch }) = p.next_work(1_700_000_010_000_000_000, true) else {
            panic!()
        };
        p.sent(sink, 11, batch, 100);
        let notes = p.completed(
            11,
            Answer {
                status: Some(400),
                ..Default::default()
            },
            0,
        );
        assert_eq!(
            notes,
            vec![Notice::Warn(
                "logger a: 3 items dropped: ingestion answered 400 (invalid data or instrumentation key)".into()
            )]
        );
        assert_eq!(p.sinks[0].outbox.stats.dropped_rejected, 3);
        let notes = p.completed(99, Answer::default(), 0);
        assert!(matches!(notes[0], Notice::Debug(_)));
    }
}
