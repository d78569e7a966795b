-- rulegate for Neovim (0.8 or later): filetypes for *.policy and *.tests, and `rulegate lsp`
-- started for them with the policy directory as its root (the nearest directory holding
-- .policy files, else the file's own).
--
-- Use: copy this file to ~/.config/nvim/plugin/rulegate.lua (or `:luafile` it); `rulegate`
-- must be on PATH, or set vim.g.rulegate_cmd = { "/path/to/rulegate", "lsp" } first.

vim.filetype.add({
  extension = {
    policy = "rulegate",
    tests = "rulegate-tests",
  },
})

local function root_dir(file)
  local dir = vim.fs.dirname(file)
  -- the outermost directory above the file that still holds .policy files
  local root = dir
  for parent in vim.fs.parents(file) do
    if #vim.fn.glob(parent .. "/*.policy", false, true) == 0 then
      break
    end
    root = parent
  end
  return root
end

vim.api.nvim_create_autocmd("FileType", {
  pattern = { "rulegate", "rulegate-tests" },
  callback = function(args)
    local file = vim.api.nvim_buf_get_name(args.buf)
    vim.lsp.start({
      name = "rulegate",
      cmd = vim.g.rulegate_cmd or { "rulegate", "lsp" },
      root_dir = root_dir(file),
    })
    -- `#` comments, for `gc` and formatoptions
    vim.bo[args.buf].commentstring = "# %s"
  end,
})
