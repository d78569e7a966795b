//! Step 7 for an external authorizer: the identity headers, the answer the env has (stubbed
//! or cached), or a stop to ask for one; resumed with the answer the driver fetched (see
//! [`super::drive`]). See [`crate::auth::authorizer`].

use super::{Outcome, Pipeline, Routed, Verdict};
use crate::auth::authorizer::{self, Answer, Redacted};
use crate::auth::Principal;
use crate::check::Phase;
use crate::compile::Provider;

impl Pipeline<'_, '_> {
    pub(super) fn authorizer(
        &mut self,
        index: usize,
        settings: &authorizer::Config,
        r: &Routed<'_, '_>,
    ) -> Result<Principal, Outcome> {
        let provider: &Provider = &r.service.providers[index];
        let (call, answer) = match self.resume.authorized() {
            // resumed with the answer to the call this check stopped with
            Some((call, answer)) => (*call, answer),
            None => {
                let client_ip = self.client_ip(r.service);
                let call = authorizer::call(index, provider, settings, &self.head, client_ip);
                let call = match call {
                    Ok(call) => call,
                    Err((reason, detail)) => return Err(self.fail(Phase::Auth, detail, reason)),
                };
                match self.env.authorizer_answer(provider, &call) {
                    Some(answer) => (call, answer),
                    None => {
                        self.step(
                            Phase::Auth,
                            Verdict::Done,
                            format_args!(
                                "provider {}: ask the authorizer ({}), then decide again",
                                provider.name,
                                Redacted(&call.identities)
                            ),
                        );
                        return Err(Outcome::NeedAuthorization(Box::new(call)));
                    }
                }
            }
        };
        if let Some((reason, detail)) = authorizer::refusal(provider, &answer) {
            return Err(self.fail(Phase::Auth, detail, reason));
        }
        let Answer::Allow { context } = answer else {
            return Err(Outcome::Reject(crate::dialect::Reason::Internal));
        };
        let keys: Vec<&str> = context.iter().map(|(k, _)| k.as_str()).collect();
        let describe = match keys.is_empty() {
            true => format!(
                "provider {}: the authorizer allowed ({})",
                provider.name,
                Redacted(&call.identities)
            ),
            false => format!(
                "provider {}: the authorizer allowed ({}); context {}",
                provider.name,
                Redacted(&call.identities),
                keys.join(", ")
            ),
        };
        self.d.authorizer_context = Some(context);
        Ok(Principal {
            app: None,
            describe,
            claims: None,
            nonce: None,
        })
    }
}
