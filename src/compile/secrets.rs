//! Where secrets come from. Behind a trait so tests and `check` in CI can supply them without
//! touching the process environment.

use crate::compile::Secret;
use crate::policy::ast;
use crate::policy::diag::{self, Diagnostic};
use sha2::{Digest, Sha256};
use std::path::Path;

pub trait SecretStore {
    fn env(&self, name: &str) -> Option<String>;
    fn file(&self, path: &Path) -> std::io::Result<Vec<u8>>;
}

/// The process environment and the file system.
pub struct ProcessSecrets;

impl SecretStore for ProcessSecrets {
    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn file(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        std::fs::read(path).map_err(|e| explain(path, e))
    }
}

/// A missing file that is a symbolic link is a dangling link (a rotated Kubernetes secret
/// whose target went away, say): say so and name the target, which is what an operator must
/// fix.
pub fn explain(path: &Path, e: std::io::Error) -> std::io::Error {
    if e.kind() != std::io::ErrorKind::NotFound {
        return e;
    }
    match std::fs::read_link(path) {
        Ok(target) => std::io::Error::new(
            e.kind(),
            format!(
                "it is a symbolic link to `{}`, which does not exist",
                target.display()
            ),
        ),
        Err(_) => e,
    }
}

/// Why a file could not be read, without the OS's error number: the store's own explanation
/// when it gave one (a dangling symbolic link), else the kind of error.
fn why(e: &std::io::Error) -> String {
    match e.get_ref() {
        Some(inner) => inner.to_string(),
        None => e.kind().to_string(),
    }
}

impl super::Cx<'_> {
    /// Read a secret; `trim` drops one trailing newline (files written by editors have one).
    pub(crate) fn secret(&mut self, r: &ast::SecretRef, owner: &str, trim: bool) -> Option<Secret> {
        let name = &r.name.value;
        let found = match r.source {
            ast::SecretSource::Env => self
                .secrets
                .env(name)
                .map(String::into_bytes)
                .ok_or_else(|| format!("environment variable `{name}` is not set")),
            ast::SecretSource::File => {
                let path = self.dir.join(name);
                let read = self.secrets.file(&path);
                if let Ok(bytes) = &read {
                    self.inputs
                        .insert(path.clone(), Sha256::digest(bytes).into());
                }
                read.map_err(|e| format!("file `{}` cannot be read: {}", path.display(), why(&e)))
            }
        };
        match found {
            Ok(mut bytes) => {
                if trim {
                    if bytes.ends_with(b"\n") {
                        bytes.pop();
                    }
                    if bytes.ends_with(b"\r") {
                        bytes.pop();
                    }
                }
                if bytes.is_empty() {
                    self.diags.push(
                        Diagnostic::error(
                            diag::MISSING_SECRET,
                            r.name.span,
                            format!("the secret for {owner} is empty"),
                        )
                        .label("empty")
                        .help("put the secret in the environment variable or file"),
                    );
                    return None;
                }
                Some(Secret(bytes))
            }
            Err(why) => {
                self.diags.push(
                    Diagnostic::error(diag::MISSING_SECRET, r.name.span, format!("the secret for {owner} is missing"))
                        .label(why)
                        .help("secrets are read when the policy is compiled; provide it, or fix the reference"),
                );
                None
            }
        }
    }
}
