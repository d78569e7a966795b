//! The request as every stage sees it: its head ([`RequestHead`]: method, target, host,
//! headers, the peer), the client behind any trusted proxies ([`Client`]), the
//! percent-decoding of its parts, and its W3C trace context ([`TraceContext`]).
//!
//! It sits below the pieces that read a request — `auth` verifies a head, `decide` runs the
//! pipeline over one, `server`, `explain` and `test` build one — so that none of them has to
//! depend on another to speak of it. `decide` re-exports it under its older paths
//! (`decide::RequestHead`, `decide::request`, `decide::client`).

pub mod client;
pub mod head;
pub mod trace;

pub use client::{canonical_ip, Client};
pub use head::{Arrival, HostFrom, RequestHead};
pub use trace::TraceContext;
