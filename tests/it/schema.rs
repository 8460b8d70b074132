//! The committed JSON Schema is what the code generates, and every manifest we ship conforms to
//! it according to an independent JSON Schema validator.

use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn committed_schema_matches_the_generated_one() {
    let committed = std::fs::read_to_string(root().join("schema/comfy.schema.json")).unwrap();
    let generated =
        serde_json::to_string_pretty(&comfyprov::manifest::raw::schema()).unwrap() + "\n";
    assert!(
        committed == generated,
        "schema/comfy.schema.json is stale: run `cargo run -- schema > schema/comfy.schema.json`"
    );
}

fn toml_as_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    let value: toml::Value = toml::from_str(&text).unwrap();
    serde_json::to_value(value).unwrap()
}

#[test]
fn shipped_manifests_conform_to_the_schema() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("schema/comfy.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let mut files = vec![root().join("comfy.toml")];
    for dir in ["examples", "tests/fixtures/manifests/valid"] {
        for e in std::fs::read_dir(root().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                files.push(p);
            }
        }
    }
    assert!(files.len() >= 7);
    for f in files {
        let errors: Vec<String> = validator
            .iter_errors(&toml_as_json(&f))
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "{} does not conform: {errors:?}",
            f.display()
        );
    }
}

#[test]
fn the_schema_rejects_what_the_checker_rejects_structurally() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("schema/comfy.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for name in [
        "unknown-key-in-node",
        "type-port-string",
        "port-too-large",
        "missing-node-rev",
        "gpu-mode-typo",
    ] {
        let f = root().join(format!("tests/fixtures/manifests/invalid/{name}.toml"));
        assert!(
            !validator.is_valid(&toml_as_json(&f)),
            "{name} passed the JSON Schema"
        );
    }
}

#[test]
fn shipped_manifests_point_at_the_schema() {
    let mut files = vec![(root().join("comfy.toml"), "./schema/comfy.schema.json")];
    for e in std::fs::read_dir(root().join("examples")).unwrap() {
        files.push((e.unwrap().path(), "../schema/comfy.schema.json"));
    }
    for (f, expected) in files {
        let first = std::fs::read_to_string(&f)
            .unwrap()
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        assert_eq!(first, format!("#:schema {expected}"), "{}", f.display());
        let target = f.parent().unwrap().join(expected);
        assert!(
            target.exists(),
            "{} points at a missing schema",
            f.display()
        );
    }
}

/// TOML has no null, so the schema never offers one: an optional table given the wrong type is
/// answered by editors (Taplo) with the type it wants, not "matches none of anyOf".
#[test]
fn optional_tables_are_their_type_not_an_any_of_with_null() {
    let text = std::fs::read_to_string(root().join("schema/comfy.schema.json")).unwrap();
    assert!(!text.contains("\"null\""), "a null in the schema");
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    for table in ["container", "python", "comfyui"] {
        let prop = &schema["properties"][table];
        assert!(prop.get("anyOf").is_none(), "{table}: {prop}");
        assert!(prop.get("$ref").is_some(), "{table}: {prop}");
    }
    // `container = 3` is refused by the schema alone, with the table's own type error.
    let validator = jsonschema::validator_for(&schema).unwrap();
    let doc = serde_json::json!({"project": {"name": "x"}, "container": 3});
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("is not of type \"object\"")),
        "{errors:?}"
    );
}
