//! Where secrets come from. Behind a trait so tests and `check` in CI can supply them without
//! touching the process environment.

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
