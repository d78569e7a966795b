"""`rulegate lsp` driven by a real LSP client (pytest-lsp, with Neovim's client capabilities).

Run by tests/lsp.rs, which sets RULEGATE_BIN (the built binary) and RULEGATE_LSP_WORKSPACE
(tests/lsp/workspace). Every edit here is sent as didOpen/didChange: the disk is never
written, except a scratch copy for `rulegate fmt`.
"""

import asyncio
import os
import pathlib
import shutil
import subprocess
import tempfile

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

BIN = os.environ["RULEGATE_BIN"]
WORKSPACE = pathlib.Path(os.environ["RULEGATE_LSP_WORKSPACE"]).resolve()
POLICY = WORKSPACE / "shop.policy"
POLICY_URI = POLICY.as_uri()
TEXT = POLICY.read_text()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[BIN, "lsp"]))
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=pytest_lsp.client_capabilities("neovim"),
            root_uri=WORKSPACE.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=WORKSPACE.as_uri(), name="policies")],
        )
    )
    yield
    await lsp_client.shutdown_session()


def open_doc(client, uri, text, language="rulegate"):
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id=language, version=1, text=text)
        )
    )


def change(client, uri, text, version):
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeEvent_Type2(text=text)],
        )
    )


async def diagnostics(client, uri, wanted, timeout=20.0):
    """The file's diagnostics once `wanted(list)` holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        got = client.diagnostics.get(uri)
        if got is not None and wanted(got):
            return got
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"diagnostics for {uri}: {got!r}")
        await asyncio.sleep(0.05)


def position(text, needle, nth=0, delta=0):
    """The LSP position of the nth occurrence of needle (plus delta characters)."""
    index = -1
    for _ in range(nth + 1):
        index = text.index(needle, index + 1)
    index += delta
    line = text.count("\n", 0, index)
    col = index - (text.rfind("\n", 0, index) + 1)
    return types.Position(line=line, character=col)


def at(text, needle, nth=0, delta=0):
    return types.TextDocumentPositionParams(
        text_document=types.TextDocumentIdentifier(uri=POLICY_URI),
        position=position(text, needle, nth, delta),
    )


def errors_rows(step):
    """The contract lines `rulegate errors --route` prints for a step of GET /orders/{id}."""
    out = subprocess.run(
        [BIN, "errors", "--policy", str(WORKSPACE), "--route", "GET /orders/{id}"],
        check=True, capture_output=True, text=True,
    ).stdout
    return [line for line in out.splitlines() if line.split(" ", 1)[0] == step]


async def test_a_typed_error_is_diagnosed_with_code_range_related_and_a_fix_clears_it(client):
    open_doc(client, POLICY_URI, TEXT)
    await diagnostics(client, POLICY_URI, lambda d: d == [])
    broken = TEXT.replace(
        "    backend catalog {", '    backend orders {\n        targets "http://127.0.0.1:1"\n    }\n\n    backend catalog {'
    )
    change(client, POLICY_URI, broken, 2)
    got = await diagnostics(client, POLICY_URI, lambda d: len(d) > 0)
    dup = [d for d in got if d.code == "E0202"]
    assert dup, got
    d = dup[0]
    assert d.range.start == position(broken, "orders", nth=1), d.range
    assert d.severity == types.DiagnosticSeverity.Error
    assert "orders" in d.message and "help:" in d.message, d.message
    related = d.related_information
    assert related and related[0].location.uri == POLICY_URI
    assert related[0].location.range.start == position(broken, "orders", nth=0)
    change(client, POLICY_URI, TEXT, 3)
    await diagnostics(client, POLICY_URI, lambda d: d == [])


async def test_an_undefined_backend_is_reported_where_it_is_used(client):
    open_doc(client, POLICY_URI, TEXT.replace("forward catalog", "forward catalgo"))
    got = await diagnostics(client, POLICY_URI, lambda d: len(d) > 0)
    undefined = [d for d in got if d.code == "APIGATEWAY_NOT_FOUND"]
    assert len(undefined) == 1, got
    assert undefined[0].range.start == position(TEXT, "catalog", nth=1)


async def hover_rows(client, needle, delta, step, others):
    """Hover at needle+delta shows every row `rulegate errors` gives for step, none of others'."""
    open_doc(client, POLICY_URI, TEXT)
    hover = await client.text_document_hover_async(
        types.HoverParams(**vars_of(at(TEXT, needle, delta=delta)))
    )
    value = hover.contents.value
    rows = errors_rows(step)
    assert rows, f"the route has {step} rows"
    for row in rows:
        assert row in value, (row, value)
    for row in errors_rows(others):
        assert row not in value, row
    return value


async def test_hover_on_require_shows_its_rows_exactly(client):
    value = await hover_rows(client, "require header", 0, "param", "auth")
    assert "require path|header|query|form" in value, value


async def test_hover_on_auth_shows_the_providers_rows(client):
    await hover_rows(client, "auth signed apps", 2, "auth", "param")


async def test_hover_on_a_route_header_shows_the_whole_contract(client):
    open_doc(client, POLICY_URI, TEXT)
    hover = await client.text_document_hover_async(
        types.HoverParams(**vars_of(at(TEXT, 'route GET "/orders')))
    )
    out = subprocess.run(
        [BIN, "errors", "--policy", str(WORKSPACE), "--route", "GET /orders/{id}"],
        check=True, capture_output=True, text=True,
    ).stdout
    for line in out.splitlines():
        if line.strip():
            assert line in hover.contents.value, line


def vars_of(p):
    return {"text_document": p.text_document, "position": p.position}


async def definition(client, needle, nth=0, delta=0):
    got = await client.text_document_definition_async(
        types.DefinitionParams(**vars_of(at(TEXT, needle, nth, delta)))
    )
    assert got and len(got) == 1, got
    return got[0]


async def test_go_to_definition_of_a_backend_an_app_and_a_throttle(client):
    open_doc(client, POLICY_URI, TEXT)
    loc = await definition(client, "forward orders", delta=9)
    assert loc.uri == POLICY_URI
    assert loc.range.start == position(TEXT, "orders")
    loc = await definition(client, "apps mobile", delta=6)
    assert loc.range.start == position(TEXT, "mobile")
    loc = await definition(client, "throttle partners", nth=1, delta=10)
    assert loc.range.start == position(TEXT, "partners")


async def test_references_and_rename(client):
    open_doc(client, POLICY_URI, TEXT)
    refs = await client.text_document_references_async(
        types.ReferenceParams(
            **vars_of(at(TEXT, "orders")),
            context=types.ReferenceContext(include_declaration=True),
        )
    )
    assert sorted(r.range.start.line for r in refs) == [
        position(TEXT, "orders").line,
        position(TEXT, "forward orders").line,
    ]
    edit = await client.text_document_rename_async(
        types.RenameParams(**vars_of(at(TEXT, "forward orders", delta=9)), new_name="sales")
    )
    edits = edit.changes[POLICY_URI]
    assert len(edits) == 2 and all(e.new_text == "sales" for e in edits)
    for taken in ["catalog", "9lives", "from"]:
        with pytest.raises(Exception) as e:
            await client.text_document_rename_async(
                types.RenameParams(**vars_of(at(TEXT, "orders")), new_name=taken)
            )
        assert "catalog" not in taken or "already exists" in str(e.value), e.value


async def test_completion_of_keywords_in_a_route_and_of_backends_after_forward(client):
    text = TEXT.replace("        forward catalog\n", "        forward catalog\n        \n")
    open_doc(client, POLICY_URI, text)
    line = position(text, "forward catalog").line + 1
    got = await client.text_document_completion_async(
        types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=POLICY_URI),
            position=types.Position(line=line, character=8),
        )
    )
    labels = {i.label for i in (got.items if hasattr(got, "items") else got)}
    assert {"require", "forward", "auth", "rate", "mock"} <= labels, labels
    assert "hosts" not in labels and "targets" not in labels, labels
    typed = text.replace("forward catalog\n        \n", "forward catalog\n        forward \n")
    change(client, POLICY_URI, typed, 2)
    got = await client.text_document_completion_async(
        types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=POLICY_URI),
            position=types.Position(line=line, character=16),
        )
    )
    labels = {i.label for i in (got.items if hasattr(got, "items") else got)}
    assert labels == {"orders", "catalog"}, labels
    # a block being typed: its brace is not closed yet, the file does not parse
    cut = typed.index("forward catalog\n        forward ")
    unclosed = typed[:cut] + 'forward catalog\n    }\n    route GET "/new" {\n        forward '
    change(client, POLICY_URI, unclosed, 3)
    end = position(unclosed + "$", "$")
    got = await client.text_document_completion_async(
        types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=POLICY_URI), position=end)
    )
    labels = {i.label for i in (got.items if hasattr(got, "items") else got)}
    assert labels == {"orders", "catalog"}, labels


async def test_formatting_returns_what_fmt_writes(client):
    messy = TEXT.replace("    dialect huawei", "dialect    huawei").replace("per app 10", "per   app 10 ;")
    open_doc(client, POLICY_URI, messy)
    edits = await client.text_document_formatting_async(
        types.DocumentFormattingParams(
            text_document=types.TextDocumentIdentifier(uri=POLICY_URI),
            options=types.FormattingOptions(tab_size=4, insert_spaces=True),
        )
    )
    assert len(edits) == 1
    with tempfile.TemporaryDirectory() as tmp:
        scratch = pathlib.Path(tmp) / "shop.policy"
        scratch.write_text(messy)
        subprocess.run([BIN, "fmt", str(scratch)], check=True)
        assert edits[0].new_text == scratch.read_text()
    assert edits[0].range.start == types.Position(line=0, character=0)
    assert edits[0].range.end == position(messy + "$", "$")


async def test_a_tests_file_gets_its_parse_errors(client):
    uri = (WORKSPACE / "shop.tests").as_uri()
    text = (WORKSPACE / "shop.tests").read_text()
    open_doc(client, uri, text, language="rulegate-tests")
    await diagnostics(client, uri, lambda d: d == [])
    change(client, uri, text.replace("expect forward", "expekt forward"), 2)
    got = await diagnostics(client, uri, lambda d: len(d) > 0)
    assert got[0].code == "T0002", got
    assert got[0].range.start == position(text, "expect forward")


async def test_careless_requests_get_answers_not_a_crash(client):
    open_doc(client, POLICY_URI, TEXT)
    far = types.TextDocumentPositionParams(
        text_document=types.TextDocumentIdentifier(uri=POLICY_URI),
        position=types.Position(line=9999, character=9999),
    )
    assert await client.text_document_hover_async(types.HoverParams(**vars_of(far))) is None
    nowhere = at(TEXT, "dialect huawei", nth=1, delta=3)
    assert await client.text_document_definition_async(types.DefinitionParams(**vars_of(nowhere))) is None
    with pytest.raises(Exception):
        await client.text_document_rename_async(types.RenameParams(**vars_of(nowhere), new_name="x"))
    change(client, POLICY_URI, TEXT + "service {\n", 2)
    with pytest.raises(Exception) as e:
        await client.text_document_formatting_async(
            types.DocumentFormattingParams(
                text_document=types.TextDocumentIdentifier(uri=POLICY_URI),
                options=types.FormattingOptions(tab_size=4, insert_spaces=True),
            )
        )
    assert "does not parse" in str(e.value), e.value
    # a document that is not a file, and one outside the workspace, are taken in stride
    open_doc(client, "untitled:Untitled-1", "service {")
    change(client, POLICY_URI, TEXT, 3)
    hover = await client.text_document_hover_async(types.HoverParams(**vars_of(at(TEXT, "require header"))))
    assert "require" in hover.contents.value
