//! Paths and repeated headers against the real filter in a real Envoy, over real mTLS
//! (PRODUCT.md: "Paths", and `request.headers[NAME]` with several copies under "Matching, as in
//! Istio").
//!
//! The harness keeps Envoy's own `normalize_path`, `merge_slashes` and
//! `path_with_escaped_slashes_action` off (see `EnvoyConfig::bootstrap`), so every path below
//! reaches the filter exactly as the client wrote it: what is tested is peerguard, not Envoy.
//! Every test starts its own Envoy; it fails (never skips) without Envoy or the built module.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use peerguard_e2e::certs::{DemoCa, LeafSpec};
use peerguard_e2e::client::{Client, Request, Response};
use peerguard_e2e::demo::{Stack, IDENTITY_HEADER};
use peerguard_e2e::envoy::{Envoy, EnvoyConfig, ListenerTls, ROUTE_MARKER_HEADER};
use peerguard_e2e::upstream::EchoServer;
use serde_json::{json, Value};

const FRONTEND: &str = "cluster.local/ns/frontend/sa/web";

/// A policy with a DENY on `paths: ["/admin*"]` and nothing else, reasons exposed, and
/// `pathNormalization` set when `normalization` is given (else the default, `rewrite`).
fn deny_admin(normalization: Option<&str>) -> Value {
    let mut p = json!({
        "mtls": "strict",
        "policies": [{"name": "block-admin", "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]}],
        "denyResponse": {"status": 403, "body": "access denied", "exposeReason": true},
        "identityHeader": IDENTITY_HEADER
    });
    if let Some(n) = normalization {
        p["pathNormalization"] = n.into();
    }
    p
}

/// The first 200 characters of a body, for assertion messages (an echo carries a whole XFCC).
fn short(resp: &Response) -> String {
    resp.body_text().chars().take(200).collect()
}

fn start(policy: &Value) -> Stack {
    Stack::with_policy(&policy.to_string()).unwrap()
}

/// Sends `req` as the frontend identity (a valid SPIFFE certificate from the demo CA).
fn send(stack: &Stack, req: &Request) -> Response {
    stack.send(Some("frontend"), req).unwrap()
}

/// Asserts that `path` is refused with `status` and `reason`, and never reaches the upstream.
fn assert_refused(stack: &Stack, path: &str, status: u16, reason: &str) {
    let before = stack.upstream.count();
    let resp = send(stack, &Request::get(path));
    assert_eq!(
        (resp.status, resp.reason().as_deref()),
        (status, Some(reason)),
        "{path:?}: body {:?}\nenvoy log tail:\n{}",
        short(&resp),
        stack.envoy.log_tail(20)
    );
    assert_eq!(stack.upstream.count(), before, "{path:?} reached the upstream: {:?}", stack.upstream.seen().last());
}

/// Asserts that `path` is allowed and returns the path the upstream received.
fn upstream_path(stack: &Stack, path: &str) -> String {
    let resp = send(stack, &Request::get(path));
    assert_eq!(
        resp.status,
        200,
        "{path:?}: reason {:?}, body {:?}\nenvoy log tail:\n{}",
        resp.reason(),
        short(&resp),
        stack.envoy.log_tail(20)
    );
    resp.echo().unwrap().path
}

// ---- pathNormalization: rewrite (the default) ----

#[test]
fn dot_segments_and_double_slashes_are_rewritten_before_the_upstream_and_the_query_is_kept_as_sent() {
    let stack = start(&deny_admin(None));
    assert_eq!(upstream_path(&stack, "/a/./b//c?x=1&y=%2F"), "/a/b/c?x=1&y=%2F");
    // A path already in normal form is forwarded untouched.
    assert_eq!(upstream_path(&stack, "/a/b/c?x=1"), "/a/b/c?x=1");
}

#[test]
fn double_slash_does_not_escape_a_deny_on_admin() {
    let stack = start(&deny_admin(None));
    assert_refused(&stack, "/admin", 403, "denied_by_policy");
    assert_refused(&stack, "//admin", 403, "denied_by_policy");
}

#[test]
fn dot_dot_segment_does_not_escape_a_deny_on_admin() {
    let stack = start(&deny_admin(None));
    assert_refused(&stack, "/x/../admin", 403, "denied_by_policy");
}

#[test]
fn percent_encoded_letter_does_not_escape_a_deny_on_admin() {
    let stack = start(&deny_admin(None));
    assert_refused(&stack, "/%61dmin", 403, "denied_by_policy");
}

#[test]
fn percent_encoded_dot_dot_does_not_escape_a_deny_on_admin() {
    let stack = start(&deny_admin(None));
    assert_refused(&stack, "/public/%2e%2e/admin", 403, "denied_by_policy");
}

#[test]
fn escaped_slash_cannot_turn_an_admin_path_into_users() {
    // Matched as `/users` while the upstream received a path under `/admin`: the original bypass.
    let stack = start(&deny_admin(None));
    assert_refused(&stack, "/admin/..%2Fusers", 400, "invalid_path");
}

#[test]
fn backslash_in_the_path_is_invalid_path() {
    let stack = start(&deny_admin(None));
    assert_refused(&stack, "/a\\b", 400, "invalid_path");
}

#[test]
fn semicolon_path_parameter_that_tomcat_would_drop_is_invalid_path() {
    // Tomcat and Spring drop `;...` segments: `/api/.;/admin` would reach them as `/api/admin`.
    let stack = start(&deny_admin(None));
    assert_refused(&stack, "/api/.;/admin", 400, "invalid_path");
}

#[test]
fn escaped_nul_in_the_path_is_invalid_path() {
    let stack = start(&deny_admin(None));
    assert_refused(&stack, "/x%00", 400, "invalid_path");
}

// ---- pathNormalization: reject ----

#[test]
fn reject_mode_refuses_a_path_not_in_normal_form_and_passes_one_that_is() {
    let stack = start(&deny_admin(Some("reject")));
    assert_refused(&stack, "/a/./b", 400, "invalid_path");
    assert_eq!(upstream_path(&stack, "/a/b"), "/a/b");
    assert_refused(&stack, "/admin", 403, "denied_by_policy");
}

// ---- pathNormalization: none ----

#[test]
fn none_mode_matches_the_path_as_received_and_forwards_it_unchanged() {
    // Only for an Envoy that normalizes itself; this one does not, so the raw path is what both
    // the filter and the upstream see.
    let stack = start(&deny_admin(Some("none")));
    assert_refused(&stack, "/admin", 403, "denied_by_policy");
    assert_eq!(upstream_path(&stack, "/x/../admin"), "/x/../admin");
    assert_eq!(upstream_path(&stack, "/a/./b//c?x=1"), "/a/./b//c?x=1");
}

// ---- the route Envoy picks after the filter rewrites :path ----

/// Envoy with two routes: prefix `/admin` to the `admin` upstream, everything else to the
/// `default` one; every route marks the request with [`ROUTE_MARKER_HEADER`].
struct Routed {
    envoy: Envoy,
    admin: EchoServer,
    default: EchoServer,
    client: Client,
    _dir: tempfile::TempDir,
}

impl Routed {
    fn start(policy: &Value) -> Routed {
        let dir = tempfile::Builder::new().prefix("peerguard-e2e-routes-").tempdir().unwrap();
        let ca = DemoCa::create(dir.path()).unwrap();
        let server = ca.issue("server", &LeafSpec::server()).unwrap();
        let frontend = ca.issue("frontend", &LeafSpec::workload("frontend", "web")).unwrap();
        let (admin, default) = (EchoServer::start().unwrap(), EchoServer::start().unwrap());
        let tls = ListenerTls {
            server_cert: server.cert_path.clone(),
            server_key: server.key_path.clone(),
            trusted_ca: ca.cert_path.clone(),
            require_client_certificate: false,
        };
        let cfg = EnvoyConfig::new(default.port(), Some(tls))
            .with_route("admin", "/admin", admin.port())
            .with_policy(&policy.to_string());
        let envoy = Envoy::start(&cfg, dir.path()).unwrap();
        let client = Client::mtls(&ca.cert_path, &frontend.cert_path, &frontend.key_path).unwrap();
        Routed { envoy, admin, default, client, _dir: dir }
    }

    /// Sends `path`; returns (which upstream served it, the route marker it saw, the path it saw).
    fn served_by(&self, path: &str) -> (&'static str, String, String) {
        let (admin_before, default_before) = (self.admin.count(), self.default.count());
        let resp = self.client.get(self.envoy.port(), path).unwrap();
        assert_eq!(
            resp.status,
            200,
            "{path:?}: reason {:?}, body {:?}\nenvoy log tail:\n{}",
            resp.reason(),
            short(&resp),
            self.envoy.log_tail(20)
        );
        let echo = resp.echo().unwrap();
        let marker = echo.header(ROUTE_MARKER_HEADER).unwrap_or("(none)").to_string();
        let which = match (self.admin.count() - admin_before, self.default.count() - default_before) {
            (1, 0) => "admin",
            (0, 1) => "default",
            other => panic!("{path:?}: upstream request counts (admin, default) changed by {other:?}"),
        };
        (which, marker, echo.path)
    }
}

/// ALLOW `/admin/*` and exactly `/public/x`: the raw `/public/../admin/x` matches neither, so it
/// passes only if the filter matched the rewritten path.
fn allow_admin_and_public_x(normalization: &str) -> Value {
    json!({
        "mtls": "strict",
        "pathNormalization": normalization,
        "policies": [{"name": "paths", "action": "ALLOW", "rules": [{"to": [{"operation": {"paths": ["/admin/*", "/public/x"]}}]}]}],
        "denyResponse": {"exposeReason": true}
    })
}

#[test]
fn without_a_rewrite_envoy_routes_on_the_raw_path() {
    // The control for the next test: the two routes really do tell the paths apart, and on the
    // raw `/public/../admin/x` Envoy picks the default route (its own normalization is off).
    let r = Routed::start(
        &json!({"mtls": "strict", "pathNormalization": "none", "denyResponse": {"exposeReason": true}, "policies": [{"name": "any", "action": "ALLOW", "rules": [{"to": [{"operation": {"paths": ["/*"]}}]}]}]}),
    );
    assert_eq!(r.served_by("/admin/x"), ("admin", "admin".into(), "/admin/x".into()));
    assert_eq!(r.served_by("/public/x"), ("default", "default".into(), "/public/x".into()));
    assert_eq!(r.served_by("/public/../admin/x"), ("default", "default".into(), "/public/../admin/x".into()));
}

#[test]
fn path_rewritten_by_the_filter_is_the_path_envoy_routes_on() {
    // If Envoy kept the route it chose for the raw path, `/public/../admin/x` would be matched by
    // the filter as `/admin/x` but served by the default route's upstream (and the reverse for
    // `/admin/../public/x`): policy, route and upstream would each see a different request.
    let r = Routed::start(&allow_admin_and_public_x("rewrite"));
    assert_eq!(r.served_by("/public/../admin/x"), ("admin", "admin".into(), "/admin/x".into()));
    assert_eq!(r.served_by("/admin/../public/x"), ("default", "default".into(), "/public/x".into()));
    assert_eq!(r.served_by("/admin//x"), ("admin", "admin".into(), "/admin/x".into()));
}

// ---- request.headers[NAME] with several copies ----

fn header_policy(action: &str, values: &[&str]) -> Value {
    json!({
        "mtls": "strict",
        "policies": [{"name": "role", "action": action, "rules": [{"when": [{"key": "request.headers[x-role]", "values": values}]}]}],
        "denyResponse": {"exposeReason": true},
        "identityHeader": IDENTITY_HEADER
    })
}

fn with_roles(roles: &[&str]) -> Request {
    roles.iter().fold(Request::get("/api/items"), |r, v| r.header("x-role", v))
}

fn assert_status(stack: &Stack, roles: &[&str], status: u16, reason: Option<&str>) {
    let before = stack.upstream.count();
    let resp = send(stack, &with_roles(roles));
    assert_eq!(
        (resp.status, resp.reason().as_deref()),
        (status, reason),
        "x-role {roles:?}: body {:?}\nenvoy log tail:\n{}",
        short(&resp),
        stack.envoy.log_tail(20)
    );
    let reached = stack.upstream.count() - before;
    assert_eq!(reached, usize::from(status == 200), "x-role {roles:?}: {reached} requests reached the upstream");
}

#[test]
fn deny_on_a_suffix_catches_admin_in_the_last_copy_of_a_repeated_header() {
    let stack = start(&header_policy("DENY", &["*admin"]));
    assert_status(&stack, &["user"], 200, None);
    // Joined as Envoy's RBAC joins them: "user,admin", which ends in admin.
    assert_status(&stack, &["user", "admin"], 403, Some("denied_by_policy"));
}

#[test]
fn deny_on_a_suffix_catches_admin_hidden_before_a_later_copy() {
    // Joined, "admin,user" does not end in admin: the DENY must also try each copy on its own.
    let stack = start(&header_policy("DENY", &["*admin"]));
    assert_status(&stack, &["admin", "user"], 403, Some("denied_by_policy"));
}

#[test]
fn allow_on_admin_is_not_satisfied_by_admin_joined_with_another_copy() {
    // In an ALLOW only the joined value counts: "admin,user" is not "admin".
    let stack = start(&header_policy("ALLOW", &["admin"]));
    assert_status(&stack, &["admin"], 200, None);
    assert_status(&stack, &["admin", "user"], 403, Some("no_matching_allow"));
}

/// DENY when the identity header is present, ALLOW only when it is absent: a filter that
/// evaluated the client's copy would answer `denied_by_policy`.
fn identity_header_must_be_absent(mtls: &str) -> Value {
    let key = format!("request.headers[{IDENTITY_HEADER}]");
    json!({
        "mtls": mtls,
        "policies": [
            {"name": "forged-identity", "action": "DENY", "rules": [{"when": [{"key": key, "values": ["*"]}]}]},
            {"name": "no-identity-header", "action": "ALLOW", "rules": [{"when": [{"key": key, "notValues": ["*"]}]}]}
        ],
        "denyResponse": {"exposeReason": true},
        "identityHeader": IDENTITY_HEADER
    })
}

fn forged_twice() -> Request {
    Request::get("/api/items")
        .header(IDENTITY_HEADER, "cluster.local/ns/admin/sa/root")
        .header(IDENTITY_HEADER, "cluster.local/ns/admin/sa/other")
}

#[test]
fn forged_identity_header_copies_are_invisible_to_conditions_and_replaced_for_the_upstream() {
    let stack = start(&identity_header_must_be_absent("strict"));
    let resp = send(&stack, &forged_twice());
    assert_eq!(resp.status, 200, "reason {:?}\nenvoy log tail:\n{}", resp.reason(), stack.envoy.log_tail(20));
    let seen = stack.upstream.seen();
    assert_eq!(seen.len(), 1);
    // The echo joins repeated headers with ',': exactly one copy, the verified principal.
    assert_eq!(seen[0].header(IDENTITY_HEADER), Some(FRONTEND));
}

#[test]
fn forged_identity_header_copies_never_reach_the_upstream_when_there_is_no_principal() {
    let stack = start(&identity_header_must_be_absent("permissive"));
    let resp = stack.send(None, &forged_twice()).unwrap();
    assert_eq!(resp.status, 200, "reason {:?}\nenvoy log tail:\n{}", resp.reason(), stack.envoy.log_tail(20));
    let seen = stack.upstream.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header(IDENTITY_HEADER), None);
}
