//! A double of Azure's instance metadata endpoint (IMDS) for managed identity tests:
//! `GET /metadata/identity/oauth2/token` answers `token-1`, `token-2`, … (a new token per
//! request) valid for a configurable lifetime, and records every request. Requests
//! without `Metadata: true` get 400, as from the real endpoint.

use crate::http::{self, Request, Response, Server};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Default)]
struct State {
    lifetime_secs: u64,
    issued: u64,
    /// (path with query, `metadata` header)
    requests: Vec<(String, Option<String>)>,
    /// Answer this status instead of a token (for failure tests).
    fail_with: Option<u16>,
}

pub struct Imds {
    state: Arc<Mutex<State>>,
    server: Server,
}

impl Imds {
    /// Starts the double on an ephemeral loopback port; tokens live `lifetime_secs`.
    pub fn start(lifetime_secs: u64) -> std::io::Result<Imds> {
        let state = Arc::new(Mutex::new(State {
            lifetime_secs,
            ..State::default()
        }));
        let handler_state = state.clone();
        let handler: http::Handler = Arc::new(move |req: &Request| answer(&handler_state, req).into());
        Ok(Imds {
            state,
            server: Server::start("127.0.0.1:0", handler)?,
        })
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.addr()
    }

    /// Requests received so far: (path with query, `Metadata` header).
    pub fn requests(&self) -> Vec<(String, Option<String>)> {
        self.lock().requests.clone()
    }

    /// Tokens issued so far (`token-1` … `token-N`).
    pub fn issued(&self) -> u64 {
        self.lock().issued
    }

    /// Lifetime of the tokens issued from now on.
    pub fn set_lifetime(&self, secs: u64) {
        self.lock().lifetime_secs = secs;
    }

    pub fn fail_with(&self, status: Option<u16>) {
        self.lock().fail_with = status;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn answer(state: &Mutex<State>, req: &Request) -> Response {
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    s.requests
        .push((req.path.clone(), req.header("metadata").map(str::to_string)));
    if req.path_only() != "/metadata/identity/oauth2/token" {
        return Response::json(404, &json!({"error": "not_found"}));
    }
    if req.header("metadata") != Some("true") {
        return Response::json(
            400,
            &json!({"error": "invalid_request", "error_description": "Required metadata header not specified"}),
        );
    }
    if let Some(status) = s.fail_with {
        return Response::json(status, &json!({"error": "identity_not_found"}));
    }
    s.issued += 1;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Response::json(
        200,
        &json!({
            "access_token": format!("token-{}", s.issued),
            "expires_in": s.lifetime_secs.to_string(),
            "expires_on": (now + s.lifetime_secs).to_string(),
            "not_before": now.to_string(),
            "resource": req.query_param("resource").unwrap_or(""),
            "token_type": "Bearer"
        }),
    )
}
