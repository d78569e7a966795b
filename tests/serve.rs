//! `rulegate serve` end to end: the real binary on loopback, each test with its own policy
//! directory, real backends on loopback ports, and a plain HTTP/1.1 client that checks the
//! answers byte for byte (status, the dialect's body, the request-id header, Content-Type).
//!
//! Helpers are in `tests/serve/common.rs`, fixture policies in `tests/serve/fixtures/`.

#[path = "serve/common.rs"]
mod common;
#[path = "support/prereq.rs"]
mod prereq;

#[path = "serve/api_keys.rs"]
mod api_keys;
#[path = "serve/authorizer.rs"]
mod authorizer;
#[path = "serve/backend_params.rs"]
mod backend_params;
#[path = "serve/backend_wire.rs"]
mod backend_wire;
#[path = "serve/backends.rs"]
mod backends;
#[path = "serve/balancing.rs"]
mod balancing;
#[path = "serve/breaker.rs"]
mod breaker;
#[path = "serve/cors.rs"]
mod cors;
#[path = "serve/forward.rs"]
mod forward;
#[path = "serve/front_door.rs"]
mod front_door;
#[path = "serve/gateway_responses.rs"]
mod gateway_responses;
#[path = "serve/health.rs"]
mod health;
#[path = "serve/http2.rs"]
mod http2;
#[path = "serve/lifecycle.rs"]
mod lifecycle;
#[path = "serve/limits.rs"]
mod limits;
#[path = "serve/limits_quotas.rs"]
mod limits_quotas;
#[path = "serve/limits_rates.rs"]
mod limits_rates;
#[path = "serve/limits_redis.rs"]
mod limits_redis;
#[path = "serve/limits_redis_cluster.rs"]
mod limits_redis_cluster;
#[path = "serve/limits_support.rs"]
mod limits_support;
#[path = "serve/oauth2.rs"]
mod oauth2;
#[path = "serve/observability.rs"]
mod observability;
#[path = "serve/orchestration.rs"]
mod orchestration;
#[path = "serve/policy_backends.rs"]
mod policy_backends;
#[path = "serve/reload.rs"]
mod reload;
#[path = "serve/reload_inputs.rs"]
mod reload_inputs;
#[path = "serve/request_head.rs"]
mod request_head;
#[path = "serve/routing.rs"]
mod routing;
#[path = "serve/system_values.rs"]
mod system_values;
#[path = "serve/throttles.rs"]
mod throttles;
#[path = "serve/timeouts.rs"]
mod timeouts;
#[path = "serve/tls.rs"]
mod tls;
#[path = "serve/traces.rs"]
mod traces;
#[path = "serve/websocket.rs"]
mod websocket;
