//! The canonical reasons a request is refused, independent of any vendor.
//!
//! `decide` and the server speak only in `Reason`s; the dialect module turns a reason into the
//! exact status, code, message, body and headers a vendor documents. Each variant carries the
//! values the vendors' messages have placeholders for (`$host`, `$uri`, `xxx`, JD's `argument`).

use crate::vocab::{ParamLocation, Protocol};

/// Why a request was refused. Grouped by the pipeline step that produces it (DESIGN.md §4).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    // 1. request sanity
    UriTooLarge,
    HeaderTooLarge,
    HeadersTooLarge,
    BodyTooLarge,
    /// The request body did not arrive within `serve --body-timeout`. No vendor documents a
    /// row for a slow client: each dialect answers with its bad-request row (see the catalogue's
    /// stand-ins), never with a backend's timeout row.
    BodyTimeout,
    /// Malformed request: bad Host, undecodable path, unparsable query and the like.
    BadRequest,

    // 2. routing
    NoHost {
        host: String,
    },
    /// The stage named by the request (header value or first path segment) is not published.
    NoStage {
        stage: String,
        from_path: bool,
    },
    NoRoute {
        uri: String,
    },
    /// The path matched a route but no route takes this method.
    MethodNotAllowed {
        method: String,
        uri: String,
    },

    // 3. protocol
    ProtocolNotAllowed {
        used: Protocol,
        allowed: Vec<Protocol>,
    },
    /// The service requires a verified client certificate and the request carried none.
    ClientCertificateRequired,

    // 4. CORS
    CrossOriginWithoutCors {
        uri: String,
    },

    // 5. client IP
    ClientIpDenied,
    /// The route has IP rules, and a trusted proxy named the client in a way that is not an
    /// address: nothing can be checked against them.
    ClientIpUnknown,

    // 6. websocket handshake
    WebSocketKeyMissing,
    WebSocketVersionMissing,

    // 7. authentication and the app's standing
    Auth(AuthFailure),
    /// The credential is valid but its app is not bound to this route.
    AppNotBound,
    AppIpUntrusted,
    AppFrozen,
    NoUsagePlan,
    /// Huawei's OAuth2 token endpoint (`issue tokens`) and the access tokens it issues.
    OAuth2(OAuth2Failure),

    // 8. parameters
    ParamMissing {
        location: ParamLocation,
        name: String,
    },
    ParamInvalid {
        location: ParamLocation,
        name: String,
        /// What the policy declares, e.g. `int 1..1000`.
        expected: String,
    },
    /// The value has the declared type but lies outside its range, length or enumeration.
    ParamOutOfRange {
        location: ParamLocation,
        name: String,
        expected: String,
    },
    FormContentTypeRequired,

    // 11. action: the backend request
    /// A frontend parameter's value matched none of its orchestration's rules and the
    /// orchestration has no `default` (`crate::upstream::orchestrate`).
    OrchestrationFailed {
        location: ParamLocation,
        name: String,
    },

    // 10. limits
    /// `hit`: which limit, as Huawei details it (`policy ip over ratelimit,limit:5,time:1
    /// minute`); `None` for limits Huawei has no dimension for, and when the store failed.
    RateLimited {
        hit: Option<String>,
    },
    QuotaExceeded,

    // 11. action / upstream (produced by the server)
    BackendUnavailable,
    BackendTimeout,
    BackendDnsFailed,
    NoBackendAvailable,
    BackendIpDenied,
    LoopDetected,
    /// The backend request could not be signed with its backend's key
    /// (`crate::upstream::sign`).
    BackendSigningFailed,
    ClientClosed,
    Internal,
}

/// Authentication failures. The key-pair variants follow the Tencent rows one to one; the
/// others carry a detail that Huawei appends after a colon and the other dialects drop.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "failure", rename_all = "snake_case")]
pub enum AuthFailure {
    // Key-pair HMAC (Tencent, Kong lineage)
    HmacNoAuthorization,
    HmacFormat,
    HmacIdOrSignatureMissing,
    HmacParamsMissing,
    HmacAlgorithmUnsupported {
        algorithm: String,
    },
    HmacNoDate,
    HmacBadXDate,
    HmacXDateExpired,
    HmacHeaderMissing {
        name: String,
    },
    HmacRepeatedHeader,
    HmacUnknownKey,
    HmacMismatch,

    /// A signature scheme with a free-form detail (Huawei SDK-HMAC-SHA256, JD JDCLOUD2).
    Signature {
        detail: String,
    },
    /// A correctly signed request whose nonce was already used (JD's replay protection).
    Replayed {
        detail: String,
    },

    // Tokens (JWT / OAuth id_token / access tokens)
    TokenHeaderMissing,
    TokenFormat,
    TokenMissing,
    TokenInvalid {
        detail: String,
    },
    TokenExpired,
    /// The token is valid but its claims do not allow this route.
    ClaimsDenied,

    // API keys and Basic credentials (Kong's key-auth and basic-auth)
    /// No API key where the provider reads it.
    ApiKeyMissing,
    /// No `Authorization: Basic …` header, or one that does not decode.
    BasicMissing,
    /// An API key no app has, or a Basic user or password that does not match.
    CredentialsInvalid,
    /// Tencent app authentication: a signed app the API does not bind.
    ApiAppNotBound,

    // External authorizer
    AuthorizerDenied,
    AuthorizerIdentityMissing,
    AuthorizerForbidden,
    AuthorizerUnreachable,
    AuthorizerBadResponse,
    /// The authorizer URL's host has no address.
    AuthorizerUnresolved,
}

/// Huawei's OAuth2 rows (APIG.22xx at the token endpoint, APIG.10xx for expired tokens and
/// unknown apps). Their messages carry no detail: Huawei documents none for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "failure", rename_all = "snake_case")]
pub enum OAuth2Failure {
    /// The token endpoint was called with another method than POST (APIG.2206).
    MethodInvalid,
    /// The token request is not `application/x-www-form-urlencoded` (APIG.2204).
    ContentTypeInvalid,
    /// Client credentials sent twice (body and HTTP Basic) or a malformed Basic header, or a
    /// route's access token missing or not `Bearer <token>` (APIG.2205).
    AuthParameterInvalid,
    GrantTypeMissing,
    GrantTypeInvalid,
    ClientIdMissing,
    ClientSecretMissing,
    RefreshTokenMissing,
    /// `through_data` longer than Huawei's documented 300 characters (APIG.2208).
    ThroughDataTooLong,
    /// No app of the service has this key (client_id, or a token's subject) (APIG.1004).
    AppUnknown,
    /// The client secret is not the app's (APIG.2201).
    ClientSecretInvalid,
    RefreshTokenInvalid,
    RefreshTokenExpired,
    /// The refresh token was issued to another app than the client (APIG.1003).
    RefreshTokenAppMismatch,
    AccessTokenInvalid,
    AccessTokenExpired,
}

impl OAuth2Failure {
    pub const ALL: [OAuth2Failure; 16] = {
        use OAuth2Failure as O;
        [
            O::MethodInvalid,
            O::ContentTypeInvalid,
            O::AuthParameterInvalid,
            O::GrantTypeMissing,
            O::GrantTypeInvalid,
            O::ClientIdMissing,
            O::ClientSecretMissing,
            O::RefreshTokenMissing,
            O::ThroughDataTooLong,
            O::AppUnknown,
            O::ClientSecretInvalid,
            O::RefreshTokenInvalid,
            O::RefreshTokenExpired,
            O::RefreshTokenAppMismatch,
            O::AccessTokenInvalid,
            O::AccessTokenExpired,
        ]
    };
}

impl Reason {
    /// The detail Huawei appends after `": "`; `None` for reasons without one.
    pub fn detail(&self) -> Option<String> {
        match self {
            Reason::ParamMissing { location, name } => {
                Some(format!("{location} parameter {name} is required"))
            }
            Reason::ParamInvalid {
                location,
                name,
                expected,
            } => Some(format!("{location} parameter {name} must be {expected}")),
            Reason::ParamOutOfRange {
                location,
                name,
                expected,
            } => Some(format!(
                "{location} parameter {name} must be within {expected}"
            )),
            Reason::FormContentTypeRequired => {
                Some("content type must be application/x-www-form-urlencoded".to_string())
            }
            Reason::WebSocketKeyMissing => Some("need header Sec-WebSocket-Key".to_string()),
            Reason::WebSocketVersionMissing => {
                Some("need header Sec-WebSocket-Version".to_string())
            }
            Reason::Auth(AuthFailure::Signature { detail })
            | Reason::Auth(AuthFailure::TokenInvalid { detail })
            | Reason::Auth(AuthFailure::Replayed { detail }) => Some(detail.clone()),
            Reason::RateLimited { hit } => hit.clone(),
            _ => None,
        }
    }

    /// One value of every variant: the catalogue test maps each through every dialect, and
    /// `rulegate errors` uses them to mark the rows rulegate can emit. A new variant that is
    /// not listed here fails `tests::examples_cover_every_variant`.
    pub fn examples() -> Vec<Reason> {
        use AuthFailure as A;
        let auth = [
            A::HmacNoAuthorization,
            A::HmacFormat,
            A::HmacIdOrSignatureMissing,
            A::HmacParamsMissing,
            A::HmacAlgorithmUnsupported {
                algorithm: "hmac-md5".into(),
            },
            A::HmacNoDate,
            A::HmacBadXDate,
            A::HmacXDateExpired,
            A::HmacHeaderMissing {
                name: "source".into(),
            },
            A::HmacRepeatedHeader,
            A::HmacUnknownKey,
            A::HmacMismatch,
            A::Signature {
                detail: "app not found, appkey ak-unknown".into(),
            },
            A::Replayed {
                detail: "nonce 5b1c9e1e already used".into(),
            },
            A::TokenHeaderMissing,
            A::TokenFormat,
            A::TokenMissing,
            A::TokenInvalid {
                detail: "decrypt token fail".into(),
            },
            A::TokenExpired,
            A::ClaimsDenied,
            A::ApiKeyMissing,
            A::BasicMissing,
            A::CredentialsInvalid,
            A::ApiAppNotBound,
            A::AuthorizerDenied,
            A::AuthorizerIdentityMissing,
            A::AuthorizerForbidden,
            A::AuthorizerUnreachable,
            A::AuthorizerBadResponse,
            A::AuthorizerUnresolved,
        ];
        let mut out = vec![
            Reason::UriTooLarge,
            Reason::HeaderTooLarge,
            Reason::HeadersTooLarge,
            Reason::BodyTooLarge,
            Reason::BodyTimeout,
            Reason::BadRequest,
            Reason::NoHost {
                host: "unknown.example".into(),
            },
            Reason::NoStage {
                stage: "staging".into(),
                from_path: false,
            },
            Reason::NoStage {
                stage: "staging".into(),
                from_path: true,
            },
            Reason::NoRoute {
                uri: "/nowhere".into(),
            },
            Reason::MethodNotAllowed {
                method: "DELETE".into(),
                uri: "/orders".into(),
            },
            Reason::ProtocolNotAllowed {
                used: Protocol::Http,
                allowed: vec![Protocol::Https],
            },
            Reason::ProtocolNotAllowed {
                used: Protocol::Https,
                allowed: vec![Protocol::Http],
            },
            Reason::CrossOriginWithoutCors {
                uri: "/orders".into(),
            },
            Reason::ClientCertificateRequired,
            Reason::ClientIpDenied,
            Reason::ClientIpUnknown,
            Reason::WebSocketKeyMissing,
            Reason::WebSocketVersionMissing,
            Reason::AppNotBound,
            Reason::AppIpUntrusted,
            Reason::AppFrozen,
            Reason::NoUsagePlan,
            Reason::FormContentTypeRequired,
            Reason::RateLimited {
                hit: Some("policy ip over ratelimit,limit:5,time:1 minute".into()),
            },
            Reason::QuotaExceeded,
            Reason::BackendUnavailable,
            Reason::BackendTimeout,
            Reason::BackendDnsFailed,
            Reason::NoBackendAvailable,
            Reason::BackendIpDenied,
            Reason::LoopDetected,
            Reason::BackendSigningFailed,
            Reason::ClientClosed,
            Reason::Internal,
        ];
        for location in ParamLocation::ALL {
            out.push(Reason::ParamMissing {
                location,
                name: "X-Tenant".into(),
            });
            out.push(Reason::ParamInvalid {
                location,
                name: "page".into(),
                expected: "int 1..1000".into(),
            });
            out.push(Reason::ParamOutOfRange {
                location,
                name: "page".into(),
                expected: "int 1..1000".into(),
            });
            out.push(Reason::OrchestrationFailed {
                location,
                name: "uid".into(),
            });
        }
        out.extend(auth.into_iter().map(Reason::Auth));
        out.extend(OAuth2Failure::ALL.into_iter().map(Reason::OAuth2));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails to compile when a variant is added without a thought for `examples()`; fails at
    /// run time when `examples()` misses a variant listed here.
    #[test]
    fn examples_cover_every_variant() {
        let covered = |r: &Reason| -> u32 {
            match r {
                Reason::UriTooLarge => 1,
                Reason::HeaderTooLarge => 2,
                Reason::HeadersTooLarge => 3,
                Reason::BodyTooLarge => 4,
                Reason::BadRequest => 5,
                Reason::NoHost { .. } => 6,
                Reason::NoStage { .. } => 7,
                Reason::NoRoute { .. } => 8,
                Reason::MethodNotAllowed { .. } => 9,
                Reason::ProtocolNotAllowed { .. } => 10,
                Reason::CrossOriginWithoutCors { .. } => 11,
                Reason::ClientIpDenied => 12,
                Reason::WebSocketKeyMissing => 13,
                Reason::WebSocketVersionMissing => 14,
                Reason::Auth(_) => 15,
                Reason::AppNotBound => 16,
                Reason::AppIpUntrusted => 17,
                Reason::AppFrozen => 18,
                Reason::NoUsagePlan => 19,
                Reason::ParamMissing { .. } => 20,
                Reason::ParamInvalid { .. } => 21,
                Reason::FormContentTypeRequired => 22,
                Reason::RateLimited { .. } => 23,
                Reason::QuotaExceeded => 24,
                Reason::BackendUnavailable => 25,
                Reason::BackendTimeout => 26,
                Reason::BackendDnsFailed => 27,
                Reason::NoBackendAvailable => 28,
                Reason::BackendIpDenied => 29,
                Reason::LoopDetected => 30,
                Reason::ClientClosed => 31,
                Reason::Internal => 32,
                Reason::ParamOutOfRange { .. } => 33,
                Reason::ClientCertificateRequired => 34,
                Reason::OAuth2(_) => 35,
                Reason::BodyTimeout => 36,
                Reason::OrchestrationFailed { .. } => 37,
                Reason::BackendSigningFailed => 38,
                Reason::ClientIpUnknown => 39,
            }
        };
        let mut seen: Vec<u32> = Reason::examples().iter().map(covered).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen, (1..=39).collect::<Vec<_>>());
    }

    /// `OAuth2Failure::ALL` lists every variant once (the match fails to compile when one is
    /// added without a number).
    #[test]
    fn oauth2_failures_are_all_listed() {
        use OAuth2Failure as O;
        let mut seen: Vec<u32> = OAuth2Failure::ALL
            .iter()
            .map(|f| match f {
                O::MethodInvalid => 1,
                O::ContentTypeInvalid => 2,
                O::AuthParameterInvalid => 3,
                O::GrantTypeMissing => 4,
                O::GrantTypeInvalid => 5,
                O::ClientIdMissing => 6,
                O::ClientSecretMissing => 7,
                O::RefreshTokenMissing => 8,
                O::ThroughDataTooLong => 9,
                O::AppUnknown => 10,
                O::ClientSecretInvalid => 11,
                O::RefreshTokenInvalid => 12,
                O::RefreshTokenExpired => 13,
                O::RefreshTokenAppMismatch => 14,
                O::AccessTokenInvalid => 15,
                O::AccessTokenExpired => 16,
            })
            .collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen, (1..=16).collect::<Vec<_>>());
    }
}
