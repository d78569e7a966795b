-- rulegate for Neovim (0.7 or later): filetypes for *.policy and *.tests, and `rulegate lsp`
-- started for them, one server per policy directory (the outermost directory above the file
-- that still holds .policy files, else the file's own).
--
-- Use: copy this file to ~/.config/nvim/plugin/rulegate.lua, or load it for one session with
-- `nvim --cmd 'luafile editors/neovim/rulegate.lua' policies/shop.policy`. `rulegate` must be on
-- PATH, or set vim.g.rulegate_cmd = { "/path/to/rulegate", "lsp" } before it loads.
-- Then: K hovers (with the error rows a check can answer), gd goes to a definition (with the
-- mappings below), :lua vim.lsp.buf.format() formats (0.8+; 0.7: vim.lsp.buf.formatting()),
-- :lua vim.lsp.buf.rename() renames, and diagnostics show as you type.

local group = vim.api.nvim_create_augroup("rulegate", { clear = true })

vim.api.nvim_create_autocmd({ "BufRead", "BufNewFile" }, {
  group = group,
  pattern = "*.policy",
  command = "setfiletype rulegate",
})
vim.api.nvim_create_autocmd({ "BufRead", "BufNewFile" }, {
  group = group,
  pattern = "*.tests",
  command = "setfiletype rulegate-tests",
})

local function root_dir(file)
  local dir = vim.fn.fnamemodify(file, ":p:h")
  local root = dir
  while true do
    local parent = vim.fn.fnamemodify(dir, ":h")
    if parent == dir or #vim.fn.glob(parent .. "/*.policy", false, true) == 0 then
      return root
    end
    root, dir = parent, parent
  end
end

local clients = {} -- root → client id (Neovim 0.7, which lacks vim.lsp.start)

vim.api.nvim_create_autocmd("FileType", {
  group = group,
  pattern = { "rulegate", "rulegate-tests" },
  callback = function(args)
    local buf = args.buf
    local config = {
      name = "rulegate",
      cmd = vim.g.rulegate_cmd or { "rulegate", "lsp" },
      root_dir = root_dir(vim.api.nvim_buf_get_name(buf)),
    }
    if vim.lsp.start then
      vim.lsp.start(config, { bufnr = buf })
    else
      local id = clients[config.root_dir]
      if not id then
        id = vim.lsp.start_client(config)
        clients[config.root_dir] = id
      end
      vim.lsp.buf_attach_client(buf, id)
    end
    vim.bo[buf].commentstring = "# %s"
    local map = function(lhs, fn)
      vim.keymap.set("n", lhs, fn, { buffer = buf })
    end
    map("K", vim.lsp.buf.hover)
    map("gd", vim.lsp.buf.definition)
    map("gr", vim.lsp.buf.references)
  end,
})
