//! Any document, and any position an editor may send, through the language server itself
//! (`lsp::serve` over an in-memory connection, as an editor drives it): open the document,
//! then hover, completion, go to definition, references, prepare rename, rename and
//! formatting at that position, then shut down.
//!
//! The server answers a request whose handler panicked with an internal error, so that one
//! bad request does not end an editing session; under libFuzzer a panic aborts, so a handler's
//! panic is a crash here all the same. Each run also asserts that every request got its own
//! answer, none of them an internal error, and that the server ended cleanly.
//!
//! Input: a byte for the line (taken modulo the document's lines), one for the UTF-16
//! character, two that send an out-of-range line or character instead when 0xff, then the
//! document. `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run lsp corpus/lsp`

#![no_main]

use libfuzzer_sys::fuzz_target;
use lsp_server::{Connection, Message, Notification, Request, RequestId};
use serde_json::{json, Value};

const ROOT: &str = "file:///nonexistent-rulegate-fuzz";
const DOC: &str = "file:///nonexistent-rulegate-fuzz/fuzz.policy";
/// What the JSON-RPC spec calls an internal error; the server's answer to a panic.
const INTERNAL_ERROR: i32 = -32603;

fn request(id: i32, method: &str, params: Value) -> Message {
    Message::Request(Request::new(RequestId::from(id), method.into(), params))
}

fn notification(method: &str, params: Value) -> Message {
    Message::Notification(Notification::new(method.into(), params))
}

/// The requests asked at `position`, in order.
fn requests(position: Value) -> Vec<(&'static str, Value)> {
    let at = json!({ "textDocument": { "uri": DOC }, "position": position });
    let with = |extra: Value| {
        let mut p = at.clone();
        p.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        p
    };
    vec![
        ("textDocument/hover", at.clone()),
        ("textDocument/completion", at.clone()),
        ("textDocument/definition", at.clone()),
        (
            "textDocument/references",
            with(json!({ "context": { "includeDeclaration": true } })),
        ),
        ("textDocument/prepareRename", at.clone()),
        ("textDocument/rename", with(json!({ "newName": "renamed" }))),
        (
            "textDocument/formatting",
            json!({ "textDocument": { "uri": DOC },
                    "options": { "tabSize": 4, "insertSpaces": true } }),
        ),
    ]
}

fuzz_target!(|data: &[u8]| {
    let Some((&[line, character, far_line, far_character], rest)) = data.split_first_chunk() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let lines = text.lines().count() as u32 + 1;
    let line = if far_line == 0xff {
        u32::MAX
    } else {
        u32::from(line) % lines
    };
    let character = if far_character == 0xff {
        u32::MAX
    } else {
        u32::from(character)
    };

    let (server, client) = Connection::memory();
    let served = std::thread::spawn(move || rulegate::lsp::serve(&server));
    let send = |m: Message| client.sender.send(m).expect("the server listens");
    send(request(
        0,
        "initialize",
        json!({ "capabilities": {}, "rootUri": ROOT }),
    ));
    send(notification("initialized", json!({})));
    send(notification(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": DOC, "languageId": "rulegate", "version": 1, "text": text } }),
    ));
    let asked = requests(json!({ "line": line, "character": character }));
    for (i, (method, params)) in asked.iter().enumerate() {
        send(request(i as i32 + 1, method, params.clone()));
    }
    let shutdown = asked.len() as i32 + 1;
    send(request(shutdown, "shutdown", Value::Null));
    send(notification("exit", Value::Null));
    let ended = served.join().expect("the server thread does not panic");
    assert_eq!(ended, Ok(()), "the server ended with an error");

    let mut answered = Vec::new();
    for m in client.receiver.try_iter() {
        let Message::Response(r) = m else { continue };
        if let Some(e) = &r.error {
            assert_ne!(e.code, INTERNAL_ERROR, "{r:?} for the request it answers");
        }
        answered.push(r.id);
    }
    let wanted: Vec<RequestId> = (0..=shutdown).map(RequestId::from).collect();
    assert_eq!(answered, wanted, "every request answered once, in order");
});
