//! The workspace: the policy directory the editor opened, with its open buffers' unsaved text
//! in place of the disk's, analysed by the same parser and compiler as `check`.
//!
//! Every change recompiles the whole policy set (a set is a handful of files; a compile takes
//! milliseconds), because names and conflicts cross files: a duplicate host in one file is
//! reported against another. The analysis is cached until the next change.
//!
//! What the disk may hold is not trusted: a file over [`MAX_FILE`] bytes, or one that is not
//! UTF-8, is not compiled but reported on itself; a directory that cannot be walked leaves the
//! open buffers to compile alone. A file deleted while open keeps its buffer.

use crate::compile::{compile, Compiled, ProcessSecrets};
use crate::policy::{self, ast, diag::Diagnostic, Loaded};
use lsp_types::Url;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The largest file (on disk or in a buffer) the server analyses: far above any policy, far
/// below what would stall a keystroke.
pub const MAX_FILE: usize = 4 << 20;

/// The documents and the folder they belong to.
#[derive(Default)]
pub struct Workspace {
    /// The policy directory; `None` until the client names one or opens a file (then the
    /// file's directory).
    pub root: Option<PathBuf>,
    /// Open documents by path, with the client's text.
    open: BTreeMap<PathBuf, String>,
    /// The `.policy` and `.tests` files under the root: walked again only when the disk may
    /// have changed (a save, a watched-file event), not on every keystroke.
    listing: Option<[Vec<PathBuf>; 2]>,
    analysis: Option<Analysis>,
}

/// A file of the workspace, policy or tests, with its text or why it has none.
pub struct Document {
    pub path: PathBuf,
    pub text: Result<String, String>,
}

/// The workspace compiled.
pub struct Analysis {
    pub loaded: Loaded,
    pub compiled: Compiled,
    /// The path of each policy file, by its id in `loaded.sources`.
    pub paths: Vec<PathBuf>,
    /// Policy files that could not be read: (path, why).
    pub unreadable: Vec<(PathBuf, String)>,
    /// The `.tests` files, each with its own diagnostics (file id 0 is the file itself).
    pub tests: Vec<(Document, Vec<Diagnostic>)>,
}

impl Analysis {
    /// The id of the policy file at `path`.
    pub fn file_id(&self, path: &Path) -> Option<u32> {
        self.paths.iter().position(|p| p == path).map(|i| i as u32)
    }

    /// The AST of a policy file, when its structure parsed.
    pub fn ast(&self, file: u32) -> Option<&ast::File> {
        self.loaded
            .files
            .iter()
            .find(|(id, _)| *id == file)
            .map(|(_, f)| f)
    }

    pub fn text(&self, file: u32) -> &str {
        self.loaded.sources.text(file)
    }

    pub fn uri(&self, file: u32) -> Option<Url> {
        Url::from_file_path(self.paths.get(file as usize)?).ok()
    }
}

impl Workspace {
    /// A workspace of the policy directory `root` (`None`: the first opened file's).
    pub fn new(root: Option<PathBuf>) -> Workspace {
        Workspace {
            root,
            ..Workspace::default()
        }
    }

    pub fn open(&mut self, path: PathBuf, text: String) {
        if self.root.is_none() {
            self.root = path.parent().map(Path::to_path_buf);
            self.listing = None;
        }
        self.open.insert(path, text);
        self.analysis = None;
    }

    pub fn change(&mut self, path: PathBuf, text: String) {
        self.open.insert(path, text);
        self.analysis = None;
    }

    pub fn close(&mut self, path: &Path) {
        self.open.remove(path);
        self.analysis = None;
    }

    /// Something changed on disk (a save, a file created or deleted).
    pub fn touched(&mut self) {
        self.listing = None;
        self.analysis = None;
    }

    /// The open buffer's text.
    pub fn buffer(&self, path: &Path) -> Option<&str> {
        self.open.get(path).map(String::as_str)
    }

    /// The workspace compiled (cached until the next change).
    pub fn analysis(&mut self) -> &Analysis {
        if self.listing.is_none() {
            let under = |ext| match &self.root {
                Some(root) => policy::files_under(root, ext).unwrap_or_default(),
                None => Vec::new(),
            };
            self.listing = Some([under("policy"), under("tests")]);
        }
        if self.analysis.is_none() {
            self.analysis = Some(self.analyse());
        }
        self.analysis.as_ref().expect("just set")
    }

    fn analyse(&self) -> Analysis {
        let mut texts = Vec::new();
        let mut paths = Vec::new();
        let mut unreadable = Vec::new();
        for doc in self.documents("policy") {
            match doc.text {
                Ok(text) => {
                    let dir = doc.path.parent().map(Path::to_path_buf).unwrap_or_default();
                    texts.push((doc.path.display().to_string(), text, dir));
                    paths.push(doc.path);
                }
                Err(why) => unreadable.push((doc.path, why)),
            }
        }
        let loaded = policy::parse_texts(texts);
        // The secrets `check` reads: the process's environment and the files named.
        let compiled = compile(&loaded, &ProcessSecrets);
        let tests = self
            .documents("tests")
            .into_iter()
            .map(|doc| {
                let diags = match &doc.text {
                    Ok(text) => crate::testing::format::parse(0, text).1,
                    Err(_) => Vec::new(),
                };
                (doc, diags)
            })
            .collect();
        Analysis {
            loaded,
            compiled,
            paths,
            unreadable,
            tests,
        }
    }

    /// Every file with this extension: those under the root and the open ones, the open
    /// buffers' text winning over the disk's.
    fn documents(&self, ext: &str) -> Vec<Document> {
        let listed = self.listing.as_ref().map(|[policy, tests]| match ext {
            "policy" => policy,
            _ => tests,
        });
        let mut paths: Vec<PathBuf> = listed.cloned().unwrap_or_default();
        paths.extend(
            self.open
                .keys()
                .filter(|p| p.extension().is_some_and(|e| e == ext))
                .cloned(),
        );
        paths.sort();
        paths.dedup();
        paths
            .into_iter()
            .map(|path| {
                let text = match self.open.get(&path) {
                    Some(text) if text.len() > MAX_FILE => Err(too_large(text.len())),
                    Some(text) => Ok(text.clone()),
                    None => read(&path),
                };
                Document { path, text }
            })
            .collect()
    }
}

fn too_large(len: usize) -> String {
    format!("the file is {len} bytes; rulegate lsp analyses files of at most {MAX_FILE} bytes")
}

/// A file's text, refusing what is too large or not UTF-8.
fn read(path: &Path) -> Result<String, String> {
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > MAX_FILE as u64 {
        return Err(too_large(len as usize));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "the file is not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rulegate-lsp-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn buffers_override_the_disk_and_bad_files_are_reported_not_compiled() {
        let dir = temp_dir("ws");
        std::fs::write(dir.join("a.policy"), "service a {\n").unwrap();
        std::fs::write(dir.join("bin.policy"), [0xff, 0xfe, 0]).unwrap();
        std::fs::write(dir.join("t.tests"), "test \"x\" {\n  FROB\n}\n").unwrap();
        let mut ws = Workspace {
            root: Some(dir.clone()),
            ..Workspace::default()
        };
        let a = ws.analysis();
        assert_eq!(a.paths, vec![dir.join("a.policy")]);
        assert!(!a.compiled.diagnostics.is_empty(), "unclosed brace on disk");
        assert_eq!(a.unreadable.len(), 1);
        assert!(
            a.unreadable[0].1.contains("not UTF-8"),
            "{:?}",
            a.unreadable
        );
        assert!(!a.tests[0].1.is_empty(), "the tests file's error");

        ws.open(dir.join("a.policy"), "default dialect huawei\n".to_string());
        let a = ws.analysis();
        assert!(a.compiled.diagnostics.is_empty(), "the buffer wins");

        // a buffer too large is reported, not compiled
        ws.change(dir.join("a.policy"), "#".repeat(MAX_FILE + 1));
        let a = ws.analysis();
        assert!(a.paths.is_empty());
        assert!(a.unreadable.iter().any(|(_, why)| why.contains("at most")));
        ws.change(dir.join("a.policy"), "default dialect huawei\n".to_string());

        // a file deleted while open keeps its buffer
        std::fs::remove_file(dir.join("a.policy")).unwrap();
        ws.touched();
        assert_eq!(ws.analysis().paths, vec![dir.join("a.policy")]);
        std::fs::remove_dir_all(&dir).ok();
    }
}
