//! Policy text: the grammar's parser, the AST, diagnostics, loading a policy set from disk and
//! formatting it back.

pub mod ast;
pub mod diag;
pub mod fmt;
pub mod parse;

use diag::{Diagnostic, Sources};
use std::path::{Path, PathBuf};

/// A policy set as read from disk: every file's text and AST, and what went wrong.
pub struct Loaded {
    pub sources: Sources,
    /// (file id in `sources`, AST) for every file that parsed at least partly.
    pub files: Vec<(u32, ast::File)>,
    /// The directory each file was read from, by file id: secrets given as relative paths
    /// are resolved against it.
    pub dirs: Vec<PathBuf>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Errors that stop a load before any policy text is read (a missing path, an unreadable file).
#[derive(Debug)]
pub struct LoadError(pub String);

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Every `.policy` file under the given paths (files are taken as given; directories are
/// walked recursively, skipping hidden entries such as Kubernetes' `..data`), sorted so a
/// policy set always loads in the same order.
pub fn policy_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| LoadError(format!("{}: {e}", p.display())))?;
        if meta.is_dir() {
            walk(p, "policy", &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The paths as a command line names them, for messages.
pub fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every file under `dir` whose extension is `ext`, walked as for policy files (recursively,
/// skipping hidden entries), sorted. Policy tests find their `.tests` files with it.
pub fn files_under(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, LoadError> {
    let mut out = Vec::new();
    walk(dir, ext, &mut out)?;
    out.sort();
    Ok(out)
}

fn walk(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) -> Result<(), LoadError> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| LoadError(format!("{}: {e}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(|e| LoadError(format!("{}: {e}", dir.display())))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let wanted = path.extension().is_some_and(|e| e == ext);
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            // Not one of ours (a dangling symlink among the secrets, say): whatever it is,
            // a policy that refers to it reports it by name when it is compiled.
            Err(_) if !wanted => continue,
            Err(e) => return Err(LoadError(format!("{}: {e}", path.display()))),
        };
        if meta.is_dir() {
            walk(&path, ext, out)?;
        } else if wanted {
            out.push(path);
        }
    }
    Ok(())
}

/// Read and parse a policy set.
pub fn load(paths: &[PathBuf]) -> Result<Loaded, LoadError> {
    let files = policy_files(paths)?;
    let mut texts = Vec::with_capacity(files.len());
    for f in &files {
        let text =
            std::fs::read_to_string(f).map_err(|e| LoadError(format!("{}: {e}", f.display())))?;
        texts.push((
            f.display().to_string(),
            text,
            f.parent().map(Path::to_path_buf).unwrap_or_default(),
        ));
    }
    Ok(parse_texts(texts))
}

/// Parse a policy set from memory: (name, text, directory for relative secret files).
pub fn parse_texts(texts: Vec<(String, String, PathBuf)>) -> Loaded {
    let mut loaded = Loaded {
        sources: Sources::new(),
        files: Vec::new(),
        dirs: Vec::new(),
        diagnostics: Vec::new(),
    };
    for (name, text, dir) in texts {
        loaded.sources.add(name, text);
        loaded.dirs.push(dir);
    }
    for (id, parsed) in parse_all(&loaded.sources) {
        loaded.diagnostics.extend(parsed.diagnostics);
        if let Some(file) = parsed.file {
            loaded.files.push((id, file));
        }
    }
    loaded
}

/// Every file of `sources` parsed, in file order. Files are independent, so a set of several
/// is parsed on as many threads as the machine has cores (a large deployment's policy is
/// many files); one file is parsed on the calling thread.
fn parse_all(sources: &Sources) -> Vec<(u32, parse::Parsed)> {
    let count = sources.len();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = threads.min(count);
    let parse = |id: usize| {
        (
            id as u32,
            parse::parse_file(id as u32, sources.text(id as u32)),
        )
    };
    if threads <= 1 {
        return (0..count).map(parse).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut parsed: Vec<_> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let id = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if id >= count {
                            return done;
                        }
                        done.push(parse(id));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    parsed.sort_by_key(|(id, _)| *id);
    parsed
}
