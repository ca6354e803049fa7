//! `docs/SECURITY.md` names, for every checklist item and review finding, the test that fails
//! without it: each named test must exist, so the table cannot point at a test that was
//! renamed or removed.

use std::path::Path;

/// Every `` `crates/<file>.rs::<module>::<test>` `` in the text: the file and the test's name.
fn named_tests(text: &str) -> Vec<(String, String)> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|span| {
            let (file, name) = span.split_once(".rs::")?;
            file.starts_with("crates/").then(|| {
                let test = name.rsplit("::").next().unwrap_or(name);
                (format!("{file}.rs"), test.to_owned())
            })
        })
        .collect()
}

#[test]
fn docs_name_only_tests_that_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let doc = std::fs::read_to_string(root.join("docs/SECURITY.md")).unwrap();
    let named = named_tests(&doc);
    assert!(
        named.len() >= 30,
        "a test for each checklist item: {named:?}"
    );
    for (file, test) in named {
        let source = std::fs::read_to_string(root.join(&file))
            .unwrap_or_else(|error| panic!("docs/SECURITY.md names {file}: {error}"));
        assert!(
            source.contains(&format!("fn {test}(")) || source.contains(&format!("fn {test}<")),
            "docs/SECURITY.md names {file}::{test}, which is not there"
        );
    }
}

#[test]
fn every_checklist_item_names_a_test() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let doc = std::fs::read_to_string(root.join("docs/SECURITY.md")).unwrap();
    for item in 1..=30 {
        let row = doc
            .lines()
            .find(|line| line.starts_with(&format!("| {item} |")))
            .unwrap_or_else(|| panic!("checklist item {item} has no row"));
        assert!(
            !named_tests(row).is_empty(),
            "item {item} names no test: {row}"
        );
    }
}
