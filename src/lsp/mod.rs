//! `rulegate lsp`: a Language Server Protocol server on stdio for a policy directory opened as
//! a workspace, running the same parser, compiler and formatter as `check` and `fmt`.
//!
//! The protocol is spoken by `lsp-server` and typed by `lsp-types`, rust-analyzer's crates:
//! a synchronous message loop over crossbeam channels, no async runtime, three small
//! dependencies (tower-lsp would bring its own tower and async stack for a server whose every
//! answer is computed in microseconds). Nothing here writes JSON-RPC by hand.
//!
//! One file per feature, each saying why it is built the way it is:
//! - [`workspace`]: the policy directory, open buffers over the disk, one compile per change;
//! - [`diagnostics`]: `check`'s diagnostics and the `.tests` parser's, published per file;
//! - [`hover`]: a statement's usage and meaning ([`docs`]), and a check's error rows;
//! - [`names`]: definition, references and rename of backends, apps, providers, plans and
//!   throttles;
//! - [`completion`]: keywords valid in the block at the cursor, and names in scope;
//! - [`formatting`]: `fmt`'s formatter;
//! - [`text`]: byte offsets ↔ LSP (UTF-16) positions, the only place that converts.
//!
//! The server never panics on what a client or the disk sends: requests before `initialize`
//! are refused by `lsp-server`, positions are clamped, unreadable files are reported on
//! themselves, and a handler that panicked all the same answers its request with an internal
//! error instead of ending the session.

pub mod completion;
pub mod diagnostics;
pub mod docs;
pub mod formatting;
pub mod hover;
pub mod names;
pub mod text;
pub mod workspace;

use lsp_server::{Connection, ErrorCode, Message, Notification, Request, Response};
use lsp_types::notification::{self as note, Notification as _};
use lsp_types::request::{self as req, Request as _};
use lsp_types::{
    CompletionOptions, CompletionResponse, GotoDefinitionResponse, Hover, HoverContents,
    HoverProviderCapability, InitializeParams, Location, MarkupContent, MarkupKind, OneOf,
    Position, PrepareRenameResponse, RenameOptions, ServerCapabilities, TextDocumentSyncCapability,
    TextDocumentSyncKind, TextDocumentSyncOptions, TextDocumentSyncSaveOptions, TextEdit, Url,
    WorkspaceEdit,
};
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use text::LineIndex;
use workspace::Workspace;

/// Serve on standard input and output until the client says `exit` or goes away.
pub fn run() -> Result<(), String> {
    let (connection, io_threads) = Connection::stdio();
    let served = serve(&connection);
    drop(connection);
    let joined = io_threads.join().map_err(|e| e.to_string());
    served.and(joined)
}

/// The protocol on `connection`: the handshake, then every message until `exit`.
pub fn serve(connection: &Connection) -> Result<(), String> {
    let (id, params) = connection.initialize_start().map_err(|e| e.to_string())?;
    let params: InitializeParams = serde_json::from_value(params).unwrap_or_default();
    let result = serde_json::json!({
        "capabilities": capabilities(),
        "serverInfo": { "name": "rulegate", "version": env!("CARGO_PKG_VERSION") },
    });
    connection
        .initialize_finish(id, result)
        .map_err(|e| e.to_string())?;
    let mut server = Server {
        ws: Workspace::new(root(&params)),
        published: BTreeSet::new(),
        names: Vec::new(),
    };
    server.publish(connection)?;
    for msg in &connection.receiver {
        match msg {
            Message::Request(r) => {
                if connection.handle_shutdown(&r).map_err(|e| e.to_string())? {
                    return Ok(());
                }
                let response = server.request(r);
                send(connection, response.into())?;
            }
            Message::Notification(n) if n.method == note::Exit::METHOD => return Ok(()),
            Message::Notification(n) => {
                if server.notification(n).is_some() {
                    server.publish(connection)?;
                }
            }
            Message::Response(_) => {}
        }
    }
    Ok(())
}

fn send(connection: &Connection, msg: Message) -> Result<(), String> {
    connection
        .sender
        .send(msg)
        .map_err(|_| "the client has gone".to_string())
}

fn capabilities() -> ServerCapabilities {
    ServerCapabilities {
        text_document_sync: Some(TextDocumentSyncCapability::Options(
            TextDocumentSyncOptions {
                open_close: Some(true),
                change: Some(TextDocumentSyncKind::FULL),
                save: Some(TextDocumentSyncSaveOptions::Supported(true)),
                ..Default::default()
            },
        )),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        definition_provider: Some(OneOf::Left(true)),
        references_provider: Some(OneOf::Left(true)),
        rename_provider: Some(OneOf::Right(RenameOptions {
            prepare_provider: Some(true),
            work_done_progress_options: Default::default(),
        })),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(vec![" ".to_string()]),
            ..Default::default()
        }),
        document_formatting_provider: Some(OneOf::Left(true)),
        ..Default::default()
    }
}

/// The policy directory: the first workspace folder, else the root URI (or path).
#[allow(deprecated)]
fn root(p: &InitializeParams) -> Option<PathBuf> {
    let folder = p.workspace_folders.as_ref().and_then(|f| f.first());
    folder
        .map(|f| &f.uri)
        .or(p.root_uri.as_ref())
        .and_then(|u| u.to_file_path().ok())
        .or_else(|| p.root_path.as_ref().map(PathBuf::from))
}

/// An error answer: (JSON-RPC code, message).
type Failure = (i32, String);

fn failed(message: impl Into<String>) -> Failure {
    (ErrorCode::RequestFailed as i32, message.into())
}

fn params<P: serde::de::DeserializeOwned>(r: Request) -> Result<P, Failure> {
    serde_json::from_value(r.params).map_err(|e| {
        (
            ErrorCode::InvalidParams as i32,
            format!("{}: {e}", r.method),
        )
    })
}

fn json<T: serde::Serialize>(v: T) -> Result<serde_json::Value, Failure> {
    serde_json::to_value(v).map_err(|e| (ErrorCode::InternalError as i32, e.to_string()))
}

/// A document notification's parameters and the file on disk it is about.
fn about<P: serde::de::DeserializeOwned>(
    params: serde_json::Value,
    uri: impl Fn(&P) -> &Url,
) -> Option<(P, PathBuf)> {
    let p: P = serde_json::from_value(params).ok()?;
    let path = path(uri(&p))?;
    Some((p, path))
}

fn path(uri: &Url) -> Option<PathBuf> {
    (uri.scheme() == "file").then(|| uri.to_file_path().ok())?
}

struct Server {
    ws: Workspace,
    /// The files whose last published diagnostics were not empty.
    published: BTreeSet<Url>,
    /// The names completion offers: the workspace's when the file at the cursor last parsed.
    names: Vec<names::Occurrence>,
}

impl Server {
    fn publish(&mut self, connection: &Connection) -> Result<(), String> {
        let analysis = self.ws.analysis();
        for p in diagnostics::publish(analysis, &mut self.published) {
            send(
                connection,
                Notification::new(note::PublishDiagnostics::METHOD.to_string(), p).into(),
            )?;
        }
        Ok(())
    }

    /// Apply a notification; whether the workspace changed (`None`: it did not, or the
    /// notification is not one of ours, or is malformed).
    fn notification(&mut self, n: Notification) -> Option<()> {
        match n.method.as_str() {
            note::DidOpenTextDocument::METHOD => {
                let (p, path) = about::<lsp_types::DidOpenTextDocumentParams>(n.params, |p| {
                    &p.text_document.uri
                })?;
                self.ws.open(path, p.text_document.text);
            }
            note::DidChangeTextDocument::METHOD => {
                let (p, path) = about::<lsp_types::DidChangeTextDocumentParams>(n.params, |p| {
                    &p.text_document.uri
                })?;
                let mut text = self.ws.buffer(&path).unwrap_or_default().to_string();
                for change in p.content_changes {
                    match change.range {
                        None => text = change.text,
                        // Full sync is what the server asks for; a client that sends ranges
                        // anyway is still understood.
                        Some(range) => {
                            let ix = LineIndex::new(&text);
                            let (a, b) = (ix.offset(range.start), ix.offset(range.end));
                            text.replace_range(a..b.max(a), &change.text);
                        }
                    }
                }
                self.ws.change(path, text);
            }
            note::DidCloseTextDocument::METHOD => {
                let (_, path) = about::<lsp_types::DidCloseTextDocumentParams>(n.params, |p| {
                    &p.text_document.uri
                })?;
                self.ws.close(&path);
            }
            note::DidSaveTextDocument::METHOD | note::DidChangeWatchedFiles::METHOD => {
                self.ws.touched()
            }
            _ => return None,
        }
        Some(())
    }

    /// Answer a request. A handler that panics answers with an internal error: one bad
    /// request does not end the editing session.
    fn request(&mut self, r: Request) -> Response {
        let id = r.id.clone();
        let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.dispatch(r)));
        match answer {
            Ok(Ok(value)) => Response::new_ok(id, value),
            Ok(Err((code, message))) => Response::new_err(id, code, message),
            Err(_) => {
                // The cache may be half-built: start over.
                self.ws.touched();
                Response::new_err(
                    id,
                    ErrorCode::InternalError as i32,
                    "rulegate lsp: internal error (its standard error says where)".to_string(),
                )
            }
        }
    }

    fn dispatch(&mut self, r: Request) -> Result<serde_json::Value, Failure> {
        match r.method.as_str() {
            req::HoverRequest::METHOD => {
                let p: lsp_types::HoverParams = params(r)?;
                json(self.hover(p.text_document_position_params))
            }
            req::GotoDefinition::METHOD => {
                let p: lsp_types::GotoDefinitionParams = params(r)?;
                let at = p.text_document_position_params;
                let found = self.names(&at.text_document.uri, at.position, |all, o| {
                    names::definitions(all, o)
                });
                json(found.map(GotoDefinitionResponse::Array))
            }
            req::References::METHOD => {
                let p: lsp_types::ReferenceParams = params(r)?;
                let at = p.text_document_position;
                let declarations = p.context.include_declaration;
                json(self.names(&at.text_document.uri, at.position, |all, o| {
                    names::references(all, o, declarations)
                }))
            }
            req::PrepareRenameRequest::METHOD => {
                let p: lsp_types::TextDocumentPositionParams = params(r)?;
                json(self.prepare_rename(&p.text_document.uri, p.position))
            }
            req::Rename::METHOD => {
                let p: lsp_types::RenameParams = params(r)?;
                let at = p.text_document_position;
                json(self.rename(&at.text_document.uri, at.position, &p.new_name)?)
            }
            req::Completion::METHOD => {
                let p: lsp_types::CompletionParams = params(r)?;
                json(self.complete(p.text_document_position))
            }
            req::Formatting::METHOD => {
                let p: lsp_types::DocumentFormattingParams = params(r)?;
                json(self.format(&p.text_document.uri)?)
            }
            method => Err((
                ErrorCode::MethodNotFound as i32,
                format!("rulegate lsp does not answer {method}"),
            )),
        }
    }

    /// The policy file and byte offset of a position.
    fn locate(&mut self, uri: &Url, pos: Position) -> Option<(u32, usize)> {
        let path = path(uri)?;
        let a = self.ws.analysis();
        let file = a.file_id(&path)?;
        Some((file, LineIndex::new(a.text(file)).offset(pos)))
    }

    fn hover(&mut self, at: lsp_types::TextDocumentPositionParams) -> Option<Hover> {
        let (file, offset) = self.locate(&at.text_document.uri, at.position)?;
        let a = self.ws.analysis();
        let (value, span) = hover::hover(a, file, offset)?;
        Some(Hover {
            contents: HoverContents::Markup(MarkupContent {
                kind: MarkupKind::Markdown,
                value,
            }),
            range: Some(LineIndex::new(a.text(file)).range(span.start as usize, span.end as usize)),
        })
    }

    /// The locations `pick` chooses for the name at a position.
    fn names(
        &mut self,
        uri: &Url,
        pos: Position,
        pick: impl for<'a> Fn(&'a [names::Occurrence], &names::Occurrence) -> Vec<&'a names::Occurrence>,
    ) -> Option<Vec<Location>> {
        let (file, offset) = self.locate(uri, pos)?;
        let a = self.ws.analysis();
        let all = names::occurrences(a.loaded.files.iter().map(|(_, f)| f));
        let o = names::at(&all, file, offset)?;
        let locations: Vec<Location> = pick(&all, o)
            .into_iter()
            .filter_map(|x| {
                let ix = LineIndex::new(a.text(x.span.file));
                let range = ix.range(x.span.start as usize, x.span.end as usize);
                Some(Location::new(a.uri(x.span.file)?, range))
            })
            .collect();
        (!locations.is_empty()).then_some(locations)
    }

    fn prepare_rename(&mut self, uri: &Url, pos: Position) -> Option<PrepareRenameResponse> {
        let (file, offset) = self.locate(uri, pos)?;
        let a = self.ws.analysis();
        let all = names::occurrences(a.loaded.files.iter().map(|(_, f)| f));
        let o = names::at(&all, file, offset)?;
        let ix = LineIndex::new(a.text(file));
        Some(PrepareRenameResponse::Range(
            ix.range(o.span.start as usize, o.span.end as usize),
        ))
    }

    fn rename(&mut self, uri: &Url, pos: Position, new: &str) -> Result<WorkspaceEdit, Failure> {
        let (file, offset) = self
            .locate(uri, pos)
            .ok_or_else(|| failed("no policy file here"))?;
        let a = self.ws.analysis();
        let all = names::occurrences(a.loaded.files.iter().map(|(_, f)| f));
        let o = names::at(&all, file, offset)
            .ok_or_else(|| failed("no backend, app, provider, plan or throttle name here"))?;
        if let Some(why) = names::refuse_rename(&all, o, new) {
            return Err(failed(why));
        }
        let mut changes: HashMap<Url, Vec<TextEdit>> = HashMap::new();
        for x in names::references(&all, o, true) {
            let Some(uri) = a.uri(x.span.file) else {
                continue;
            };
            let ix = LineIndex::new(a.text(x.span.file));
            changes.entry(uri).or_default().push(TextEdit {
                range: ix.range(x.span.start as usize, x.span.end as usize),
                new_text: new.to_string(),
            });
        }
        Ok(WorkspaceEdit {
            changes: Some(changes),
            ..Default::default()
        })
    }

    fn complete(
        &mut self,
        at: lsp_types::TextDocumentPositionParams,
    ) -> Option<CompletionResponse> {
        let path = path(&at.text_document.uri)?;
        if path.extension().is_none_or(|e| e != "policy") {
            return None;
        }
        let text = self.ws.buffer(&path)?.to_string();
        let offset = LineIndex::new(&text).offset(at.position);
        let cx = completion::context(&text, offset);
        let a = self.ws.analysis();
        // While a block is being typed its braces rarely balance and the file has no AST:
        // the names then are those of the last time it had one.
        if a.file_id(&path).and_then(|id| a.ast(id)).is_some() {
            self.names = names::occurrences(a.loaded.files.iter().map(|(_, f)| f));
        }
        Some(CompletionResponse::Array(completion::complete(
            &cx,
            &self.names,
        )))
    }

    fn format(&mut self, uri: &Url) -> Result<Option<Vec<TextEdit>>, Failure> {
        let Some(path) = path(uri).filter(|p| p.extension().is_some_and(|e| e == "policy")) else {
            return Ok(None);
        };
        let text = match self.ws.buffer(&path) {
            Some(text) => text.to_string(),
            None => {
                let a = self.ws.analysis();
                match a.file_id(&path) {
                    Some(id) => a.text(id).to_string(),
                    None => return Ok(None),
                }
            }
        };
        formatting::format(&text).map(Some).map_err(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(id: i32, method: &str, params: serde_json::Value) -> Message {
        Message::Request(Request::new(id.into(), method.to_string(), params))
    }

    fn answer(client: &Connection) -> Response {
        loop {
            match client.receiver.recv().expect("the server answers") {
                Message::Response(r) => return r,
                Message::Notification(_) => continue,
                m => panic!("{m:?}"),
            }
        }
    }

    #[test]
    fn early_and_malformed_requests_get_errors_and_the_session_goes_on() {
        let (server, client) = Connection::memory();
        let running = std::thread::spawn(move || serve(&server));
        let hover = json!({
            "textDocument": { "uri": "file:///nowhere/x.policy" },
            "position": { "line": 99, "character": 99 },
        });
        client
            .sender
            .send(request(1, "textDocument/hover", hover.clone()))
            .unwrap();
        let r = answer(&client);
        assert_eq!(
            r.error.unwrap().code,
            ErrorCode::ServerNotInitialized as i32
        );

        client
            .sender
            .send(request(2, "initialize", json!({ "capabilities": {} })))
            .unwrap();
        let r = answer(&client);
        assert_eq!(
            r.result.unwrap()["capabilities"]["hoverProvider"],
            json!(true)
        );
        let initialized = Notification::new("initialized".to_string(), json!({}));
        client.sender.send(initialized.into()).unwrap();

        client
            .sender
            .send(request(3, "textDocument/hover", json!({ "x": 1 })))
            .unwrap();
        let r = answer(&client);
        assert_eq!(r.error.unwrap().code, ErrorCode::InvalidParams as i32);
        client
            .sender
            .send(request(4, "textDocument/hover", hover))
            .unwrap();
        assert_eq!(answer(&client).result, Some(serde_json::Value::Null));
        client
            .sender
            .send(request(5, "workspace/symbol", json!({})))
            .unwrap();
        let r = answer(&client);
        assert_eq!(r.error.unwrap().code, ErrorCode::MethodNotFound as i32);

        client
            .sender
            .send(request(6, "shutdown", json!(null)))
            .unwrap();
        assert!(answer(&client).error.is_none());
        let exit = Notification::new("exit".to_string(), json!(null));
        client.sender.send(exit.into()).unwrap();
        running.join().unwrap().unwrap();
    }
}
