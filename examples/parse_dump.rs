fn main() {
    let paths: Vec<std::path::PathBuf> = std::env::args().skip(1).map(Into::into).collect();
    let loaded = rulegate::policy::load(&paths).unwrap();
    for (_, f) in &loaded.files {
        println!("{} items", f.items.len());
    }
    print!(
        "{}",
        rulegate::policy::diag::render_human(&loaded.sources, &loaded.diagnostics, false)
    );
}
