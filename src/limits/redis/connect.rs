//! Where the counters live: one Redis, or a Redis Cluster, as `serve --redis` names it.
//!
//! * One plain URL (`redis://HOST:PORT/DB`) is a single node, as it always was.
//! * Several `--redis` URLs are seeds of one cluster; so is `redis+cluster://HOST:PORT[,HOST:PORT…]`
//!   (named after the crate's own `redis+unix://`; credentials and query apply to every seed).
//!   A seed only needs to answer once: the client learns every master from it and follows
//!   `MOVED`/`ASK` redirects, re-reading the slot map after a failover.
//!
//! A cluster has only database 0, so a seed naming another is refused when the gateway
//! starts, as is any URL the client cannot read — a clear message, never a panic.

use super::keys::Keys;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use std::time::Duration;

/// The scheme that lists a cluster's seeds in one URL.
pub const CLUSTER_SCHEME: &str = "redis+cluster://";

pub enum Target {
    Single(redis::Client),
    Cluster(ClusterClient),
}

impl Target {
    /// Reads the `--redis` values; connects to nothing (Redis need not be up yet).
    pub fn parse(urls: &[String], timeout: Duration) -> Result<Target, String> {
        match urls {
            [] => Err("--redis: no URL".into()),
            [url] if !url.starts_with(CLUSTER_SCHEME) => redis::Client::open(url.as_str())
                .map(Target::Single)
                .map_err(|e| format!("--redis {url}: {e}")),
            _ => {
                let mut seeds = Vec::new();
                for url in urls {
                    seeds.extend(seeds_of(url)?);
                }
                cluster_client(seeds, timeout).map(Target::Cluster)
            }
        }
    }

    pub fn keys(&self) -> Keys {
        match self {
            Target::Single(_) => Keys::Plain,
            Target::Cluster(_) => Keys::Tagged,
        }
    }

    pub async fn connect(&self, timeout: Duration) -> RedisResult<Conn> {
        match self {
            Target::Single(client) => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(timeout)
                    .set_response_timeout(timeout);
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map(Conn::Single)
            }
            Target::Cluster(client) => client.get_async_connection().await.map(Conn::Cluster),
        }
    }

    /// Whether a failed call (`None`: it ran out of time) leaves the connection unusable, so
    /// the next call dials again. A single node's connection is dropped on any I/O failure or
    /// timeout. A cluster connection reconnects to a failed node and re-reads the slot map by
    /// itself, so it is kept — dialling the seeds again mid-failover would only cost time —
    /// unless it has no node left at all.
    pub fn drops_on(&self, failure: Option<&RedisError>) -> bool {
        match (self, failure) {
            (Target::Single(_), None) => true,
            (Target::Single(_), Some(e)) => {
                e.is_io_error() || e.is_connection_dropped() || e.is_timeout()
            }
            (Target::Cluster(_), None) => false,
            (Target::Cluster(_), Some(e)) => {
                e.kind() == redis::ErrorKind::ClusterConnectionNotFound
            }
        }
    }
}

/// The seed URLs one `--redis` value names: itself, or each host of a `redis+cluster://` URL
/// with the URL's credentials, path and query. Each must read as a Redis URL of database 0.
fn seeds_of(url: &str) -> Result<Vec<String>, String> {
    let bad = |why: &dyn std::fmt::Display| format!("--redis {url}: {why}");
    let seeds = match url.strip_prefix(CLUSTER_SCHEME) {
        None => vec![url.to_string()],
        Some(rest) => {
            let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
            let (user, hosts) = match authority.rsplit_once('@') {
                Some((user, hosts)) => (format!("{user}@"), hosts),
                None => (String::new(), authority),
            };
            let hosts: Vec<&str> = hosts.split(',').map(str::trim).collect();
            if hosts.iter().any(|h| h.is_empty()) {
                return Err(bad(&"expected redis+cluster://HOST:PORT[,HOST:PORT…]"));
            }
            hosts
                .iter()
                .map(|h| format!("redis://{user}{h}{tail}"))
                .collect()
        }
    };
    for seed in &seeds {
        let info = seed.as_str().into_connection_info().map_err(|e| bad(&e))?;
        if info.redis.db != 0 {
            return Err(bad(&"a Redis Cluster has only database 0"));
        }
    }
    Ok(seeds)
}

/// A cluster client whose every step (connecting, each redirect or retry) fits the call's
/// timeout: a retry waits 10 ms at first and at most a quarter of the timeout, not the
/// crate's default of over a second.
fn cluster_client(seeds: Vec<String>, timeout: Duration) -> Result<ClusterClient, String> {
    let max_wait = (timeout.as_millis() as u64 / 4).max(11);
    ClusterClientBuilder::new(seeds)
        .connection_timeout(timeout)
        .response_timeout(timeout)
        .min_retry_wait(10)
        .max_retry_wait(max_wait)
        .build()
        .map_err(|e| format!("--redis: {e}"))
}

/// A connection to a node or to the cluster: the script and commands run the same on both
/// (a cluster connection routes each by its first key).
#[derive(Clone)]
pub enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(urls: &[&str]) -> Result<Target, String> {
        let urls: Vec<String> = urls.iter().map(|u| u.to_string()).collect();
        Target::parse(&urls, Duration::from_millis(200))
    }

    #[test]
    fn one_plain_url_is_a_single_node_and_anything_else_a_cluster() {
        assert_eq!(
            parse(&["redis://127.0.0.1:6379/2"]).unwrap().keys(),
            Keys::Plain
        );
        let seeds = ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"];
        assert_eq!(parse(&seeds).unwrap().keys(), Keys::Tagged);
        let one = parse(&["redis+cluster://127.0.0.1:7000"]).unwrap();
        assert_eq!(one.keys(), Keys::Tagged);
    }

    #[test]
    fn a_cluster_url_lists_its_seeds_with_shared_credentials() {
        assert_eq!(
            seeds_of("redis+cluster://u:p@a:7000, b:7001/?protocol=resp2").unwrap(),
            [
                "redis://u:p@a:7000/?protocol=resp2",
                "redis://u:p@b:7001/?protocol=resp2"
            ]
        );
    }

    /// A careless operator gets a message naming the value, never a panic.
    #[test]
    fn malformed_cluster_urls_are_refused_clearly() {
        for (url, says) in [
            ("redis+cluster://", "expected redis+cluster://HOST:PORT"),
            (
                "redis+cluster://a:7000,,b:7001",
                "expected redis+cluster://HOST:PORT",
            ),
            ("redis+cluster://a:7000/3", "only database 0"),
            (
                "redis+cluster://a:notaport",
                "--redis redis+cluster://a:notaport: ",
            ),
        ] {
            let err = parse(&[url])
                .err()
                .unwrap_or_else(|| panic!("{url} accepted"));
            assert!(err.contains(says), "{url}: {err}");
        }
        let err = parse(&["redis://a:7000", "http://b:7001"]).err().unwrap();
        assert!(err.starts_with("--redis http://b:7001: "), "{err}");
    }
}
