fn main() {
    let paths: Vec<std::path::PathBuf> = std::env::args().skip(1).map(Into::into).collect();
    let loaded = rulegate::policy::load(&paths).unwrap();
    let c = rulegate::compile::compile(&loaded, &rulegate::compile::ProcessSecrets);
    print!(
        "{}",
        rulegate::policy::diag::render_human(&loaded.sources, &c.diagnostics, false)
    );
    if let Some(s) = c.snapshot {
        print!("{}", s.render());
    }
}
