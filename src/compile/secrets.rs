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
        std::fs::read(path)
    }
}
