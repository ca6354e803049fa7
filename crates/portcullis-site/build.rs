//! Embeds the accounts schema: every `migrations/<dialect>/NNNN_description.sql` becomes an
//! entry of `MIGRATIONS_<DIALECT>` in `$OUT_DIR/migrations.rs`, included by
//! `src/accounts/users.rs`. A new migration is one more file in each folder, nothing else.
//!
//! This is what `sqlx::migrate!` does, without sqlx's `macros` feature (see `Embedded` in
//! `users.rs` for why that feature stays off).

use std::path::Path;

/// The folders under `migrations/`, one per SQL dialect, and the constant each becomes.
const DIALECTS: [(&str, &str); 2] = [
    ("sqlite", "MIGRATIONS_SQLITE"),
    ("postgres", "MIGRATIONS_POSTGRES"),
];

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    println!("cargo::rerun-if-changed={}", root.display());
    let mut out = String::new();
    for (folder, constant) in DIALECTS {
        let dir = root.join(folder);
        println!("cargo::rerun-if-changed={}", dir.display());
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| {
                entry
                    .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                    .path()
            })
            .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
            .collect();
        files.sort();
        out += &format!("/// Every file of `migrations/{folder}/`, in order.\n");
        out += &format!("const {constant}: &[(i64, &str, &str)] = &[\n");
        for path in files {
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_else(|| panic!("{}: not UTF-8", path.display()));
            let (version, description) = stem.split_once('_').unwrap_or_else(|| {
                panic!(
                    "{}: a migration is named NNNN_description.sql",
                    path.display()
                )
            });
            let version: i64 = version.parse().unwrap_or_else(|_| {
                panic!(
                    "{}: a migration is named NNNN_description.sql",
                    path.display()
                )
            });
            let description = description.replace('_', " ");
            let file = path.display().to_string();
            out += &format!("    ({version}, {description:?}, include_str!({file:?})),\n");
        }
        out += "];\n";
    }
    let target = Path::new(&std::env::var("OUT_DIR").unwrap_or_else(|e| panic!("OUT_DIR: {e}")))
        .join("migrations.rs");
    std::fs::write(&target, out).unwrap_or_else(|e| panic!("{}: {e}", target.display()));
}
