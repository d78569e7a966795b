-- Neovim's built-in LSP client against `rulegate lsp`, with editors/neovim/rulegate.lua as a
-- user would load it. tests/lsp.rs runs it headless when `nvim` is installed:
--   nvim --headless --clean --cmd 'let g:rulegate_cmd=[BIN,"lsp"]' \
--     --cmd 'luafile editors/neovim/rulegate.lua' WORKSPACE/shop.policy -c 'luafile tests/lsp/neovim.lua'
-- It types an error, reads the diagnostic, hovers, goes to a definition, formats, and sees the
-- diagnostics cleared; it exits 0 when all held, 1 (with the reason on stdout) otherwise.

local buf = vim.api.nvim_get_current_buf()

local function check(ok, what)
  if not ok then
    io.stdout:write("neovim.lua: " .. what .. "\n")
    vim.cmd("cquit 1")
  end
end

local function client()
  return vim.lsp.get_active_clients()[1]
end

local function row(needle)
  for i, l in ipairs(vim.api.nvim_buf_get_lines(buf, 0, -1, false)) do
    if l:find(needle, 1, true) then
      return i - 1, l
    end
  end
end

local function at(needle, col)
  return {
    textDocument = vim.lsp.util.make_text_document_params(buf),
    position = { line = row(needle), character = col },
  }
end

local function request(method, params)
  for _, res in pairs(vim.lsp.buf_request_sync(buf, method, params, 10000) or {}) do
    return res.result
  end
end

check(vim.bo[buf].filetype == "rulegate", "the filetype is " .. vim.bo[buf].filetype)
check(vim.wait(20000, function()
  return client() ~= nil and vim.lsp.buf_is_attached(buf, client().id)
end), "the server did not attach")

-- type an error
local r = row("forward catalog")
vim.api.nvim_buf_set_lines(buf, r, r + 1, false, { "        forward catalgo" })
check(vim.wait(20000, function()
  return #vim.diagnostic.get(buf) > 0
end), "no diagnostic for the error typed")
local d = vim.diagnostic.get(buf)[1]
local code = d.code or (d.user_data and d.user_data.lsp and d.user_data.lsp.code)
check(code == "APIGATEWAY_NOT_FOUND" and d.lnum == r and d.col == 16, "diagnostic " .. vim.inspect(d))

-- hover on a require line
local hover = request("textDocument/hover", at("require header", 8))
check(hover and hover.contents.value:find("require path|header|query|form", 1, true), "hover " .. vim.inspect(hover))

-- go to definition of a backend
local def = request("textDocument/definition", at("forward orders", 17))
check(def and def[1] and def[1].range.start.line == row("backend orders"), "definition " .. vim.inspect(def))

-- fix it carelessly, format, and the diagnostics clear
vim.api.nvim_buf_set_lines(buf, r, r + 1, false, { "        forward    catalog  " })
local edits = request("textDocument/formatting", {
  textDocument = vim.lsp.util.make_text_document_params(buf),
  options = { tabSize = 4, insertSpaces = true },
})
check(edits and #edits == 1, "formatting " .. vim.inspect(edits))
vim.lsp.util.apply_text_edits(edits, buf, "utf-16")
check(select(2, row("forward catalog")) == "        forward catalog", "not formatted")
check(vim.wait(20000, function()
  return #vim.diagnostic.get(buf) == 0
end), "the diagnostics did not clear")

io.stdout:write("neovim.lua: all held\n")
vim.cmd("qa!")
