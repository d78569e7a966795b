//! Step 11 for `issue tokens P`: Huawei's OAuth2 token endpoint, answered inside `decide` so
//! that `serve`, `explain` and `rulegate test` give the same answer and the trace shows how it
//! was reached. The token request is a form, so the endpoint asks for the body like form
//! parameters do ([`Outcome::NeedBody`]) — after refusing, unread, a request whose method or
//! content type is already wrong.

use super::{Outcome, Pipeline, Response, Routed, Verdict};
use crate::auth::oauth2;
use crate::check::Phase;

impl Pipeline<'_, '_> {
    pub(super) fn issue_tokens(&mut self, r: &Routed<'_, '_>, provider: usize) -> Outcome {
        let provider = &r.service.providers[provider];
        if let Err(refusal) = oauth2::check_head(&self.head) {
            return self.fail(
                Phase::Action,
                format_args!("issue tokens ({}): {}", provider.name, refusal.detail),
                refusal.reason,
            );
        }
        if self.head.body.is_none() {
            self.step(
                Phase::Action,
                Verdict::Done,
                format_args!(
                    "issue tokens ({}): read the token request first",
                    provider.name
                ),
            );
            return Outcome::NeedBody {
                limit: r.route.body_limit,
            };
        }
        let client_ip = self.client_ip(r.service);
        let now = self.env.now_ms();
        match oauth2::issue(
            r.service.view(),
            provider,
            &self.head,
            client_ip,
            now,
            &self.d.request_id,
        ) {
            Ok(issued) => {
                self.d.app = Some(issued.app);
                self.step(
                    Phase::Action,
                    Verdict::Done,
                    format_args!("issue tokens ({}): {}", provider.name, issued.describe),
                );
                Outcome::Respond(std::sync::Arc::new(Response {
                    status: 200,
                    headers: oauth2::answer_headers(),
                    body: issued.body,
                }))
            }
            Err(refusal) => self.fail(
                Phase::Action,
                format_args!("issue tokens ({}): {}", provider.name, refusal.detail),
                refusal.reason,
            ),
        }
    }
}
