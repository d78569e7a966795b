//! Step 7: the route's `auth PROVIDER [apps …] [claim …]`: the provider verifies the caller
//! (see `crate::auth`), then the app's standing (usage plans, binding, frozen, trusted
//! addresses) and the token's claims are checked.

use super::Phase;
use std::fmt;

pub const PHASE: Phase = Phase::Auth;
pub const CAN_REFUSE: bool = true;

#[derive(Debug)]
pub struct AuthCheck {
    pub provider: usize,
    pub provider_name: String,
    /// `None`: any app of the service; otherwise the apps bound to this route.
    pub apps: Option<Vec<usize>>,
    /// The same apps by name, for traces.
    pub app_names: Vec<String>,
    pub claims: Vec<(String, Vec<String>)>,
}

impl fmt::Display for AuthCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "auth {}", self.provider_name)?;
        if self.apps.is_some() {
            write!(f, " apps {}", self.app_names.join(" "))?;
        }
        for (name, values) in &self.claims {
            write!(f, " claim {name} in {values:?}")?;
        }
        Ok(())
    }
}
