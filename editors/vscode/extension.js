// Starts `rulegate lsp` for .policy and .tests files (the setting `rulegate.server.command`
// names the binary). Untested in CI: the server itself is tested with a real client in
// tests/lsp.rs.
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const command = vscode.workspace.getConfiguration("rulegate").get("server.command", "rulegate");
  client = new LanguageClient(
    "rulegate",
    "rulegate lsp",
    { command, args: ["lsp"] },
    {
      documentSelector: [
        { scheme: "file", language: "rulegate" },
        { scheme: "file", language: "rulegate-tests" },
      ],
      synchronize: {
        fileEvents: vscode.workspace.createFileSystemWatcher("**/*.{policy,tests}"),
      },
    }
  );
  context.subscriptions.push(client);
  client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
