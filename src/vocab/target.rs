//! A backend's or an authorizer's URL, split once when the policy compiles rather than on
//! every request. Here, not in `compile`, because the authorizer scheme (in `auth`) calls one.

/// A backend target, split once when the policy compiles rather than on every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub url: String,
    /// `None` for a URL that is neither `http://` nor `https://` (the parser refuses those).
    pub http: Option<HttpTarget>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    pub host: String,
    /// `host` read as an address once here (a forward to an address resolves nothing).
    pub ip: Option<std::net::IpAddr>,
    pub port: u16,
    /// The target's path prefix, without a trailing slash.
    pub base: String,
    /// `host[:port]` as written: the Host header sent upstream.
    pub authority: String,
    /// `https://`: the name the backend's certificate must carry (the host, also sent as SNI).
    pub tls: Option<std::sync::Arc<str>>,
    /// `authority` as the `Host` header's value, checked once here rather than on every
    /// forward; `None` when it is not a valid header value (no `Host` is then written).
    pub host_value: Option<http::HeaderValue>,
}

impl Target {
    pub fn parse(url: &str) -> Target {
        Target {
            url: url.to_string(),
            http: HttpTarget::parse(url),
        }
    }
}

impl HttpTarget {
    fn parse(url: &str) -> Option<HttpTarget> {
        let (rest, tls, default_port) = match url.strip_prefix("https://") {
            Some(rest) => (rest, true, 443),
            None => (url.strip_prefix("http://")?, false, 80),
        };
        let (authority, base) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']')?;
            (
                h,
                after
                    .strip_prefix(':')
                    .map_or(Some(default_port), |p| p.parse().ok())?,
            )
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, p.parse().ok()?),
                None => (authority, default_port),
            }
        };
        Some(HttpTarget {
            host: host.to_string(),
            ip: host.parse().ok(),
            port,
            base: base.to_string(),
            authority: authority.to_string(),
            tls: tls.then(|| host.into()),
            host_value: http::HeaderValue::from_str(authority).ok(),
        })
    }
}
