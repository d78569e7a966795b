//! `rulegate import`: policies from other descriptions of an API.
//!
//! Today one source, OpenAPI ([`openapi`]): a `.policy` skeleton and a `.tests` file for it.
//! Problems with the input are diagnostics like `check`'s, with JD Cloud's console codes where
//! JD documents the same failure of its own Swagger import.

pub mod openapi;

use crate::policy::diag::{self, Code};
use std::path::Path;

/// The document is not YAML or JSON, or not OpenAPI 3 / Swagger 2 (JD: "yaml File Resolution
/// Exception").
pub const PARSE_ERROR: Code = Code {
    id: "APIGATEWAY_SWAGGER_PARSE_ERROR",
    summary: "the OpenAPI document does not parse, or is not OpenAPI 3 or Swagger 2",
};

/// The document, or its `paths`, is empty (JD: "yaml file cannot be null").
pub const NULL_ERROR: Code = Code {
    id: "APIGATEWAY_SWAGGER_NULL_ERRO",
    summary: "the OpenAPI document or its paths are empty",
};

/// What an import produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The policy, formatted as `rulegate fmt` would.
    pub policy: String,
    /// Tests for it: each route's mock, and each required parameter's absence.
    pub tests: String,
}

/// Run `rulegate import openapi SPEC [-o FILE]`: the policy on stdout, or written to FILE with
/// its tests beside it as FILE's `.tests`. Returns the exit code: 0 imported, 1 the document
/// has problems (each reported with its place), 2 the file cannot be read or written.
pub fn openapi_cli(spec: &Path, output: Option<&Path>, color: bool) -> u8 {
    let text = match std::fs::read_to_string(spec) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("rulegate: {}: {e}", spec.display());
            return 2;
        }
    };
    let mut sources = diag::Sources::new();
    let id = sources.add(spec.display().to_string(), text);
    let name = spec.file_name().map_or_else(
        || spec.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let imported = match openapi::import(id, &name, sources.text(id)) {
        Ok(i) => i,
        Err(diags) => {
            eprint!("{}", diag::render_human(&sources, &diags, color));
            eprintln!("rulegate: {} not imported", spec.display());
            return 1;
        }
    };
    // What the importer writes must compile; anything else is the importer's bug.
    let loaded = crate::policy::parse_texts(vec![(
        "imported.policy".into(),
        imported.policy.clone(),
        std::path::PathBuf::new(),
    )]);
    let compiled = crate::compile::compile(&loaded, &crate::compile::ProcessSecrets);
    if !compiled.diagnostics.is_empty() {
        eprint!(
            "{}",
            diag::render_human(&loaded.sources, &compiled.diagnostics, color)
        );
        eprintln!("rulegate: the imported policy does not check cleanly; please report this");
        return 1;
    }
    let Some(out) = output else {
        // A reader that has gone (`| head`) has what it wanted: no panic, no message.
        use std::io::Write;
        let _ = std::io::stdout()
            .lock()
            .write_all(imported.policy.as_bytes());
        return 0;
    };
    let tests = out.with_extension("tests");
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("rulegate: {}: {e}", dir.display());
            return 2;
        }
    }
    for (path, text) in [(out, &imported.policy), (tests.as_path(), &imported.tests)] {
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("rulegate: {}: {e}", path.display());
            return 2;
        }
        eprintln!("wrote {}", path.display());
    }
    0
}
