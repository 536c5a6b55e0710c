//! Fuzz target: the Kubernetes manifest reader (YAML and JSON, several documents, lists),
//! and label selectors and namespace globs as users type them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let m = repo_k8s::manifest::read(data, "fuzz.yaml");
    for (o, origin) in &m.objects {
        assert!(!o.kind().is_empty() && !o.api_version().is_empty() && !o.name().is_empty());
        assert!(origin.starts_with("fuzz.yaml"));
        let _ = o.to_json();
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let line = s.lines().next().unwrap_or_default();
        let _ = repo_k8s::selector::LabelSelector::parse(line);
        if let Ok(g) = repo_k8s::filter::Glob::new(line) {
            let _ = g.matches("some-namespace-1");
        }
    }
});
