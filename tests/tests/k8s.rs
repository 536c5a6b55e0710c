//! repo-k8s against the real-world manifests in `../shared/k8s-corpus` (see its SOURCES.md):
//! every document is read, every object resolves or is kept with a warning, and a backup
//! filter with no options takes every object.

use std::path::{Path, PathBuf};

use repo_k8s::filter::{BackupFilter, Filter};
use repo_k8s::{manifest, Discovery, Object};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/k8s-corpus")
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if matches!(
            p.extension().and_then(|x| x.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(p);
        }
    }
}

#[test]
fn the_corpus_reads_completely_and_a_default_backup_takes_every_object() {
    let mut paths = Vec::new();
    files(&corpus(), &mut paths);
    assert!(paths.len() >= 380, "corpus has {} files", paths.len());
    let mut objects: Vec<Object> = Vec::new();
    for p in &paths {
        let m = manifest::read(&std::fs::read(p).unwrap(), &p.display().to_string());
        assert!(m.problems.is_empty(), "{:?}", m.problems);
        objects.extend(m.objects.into_iter().map(|(o, _)| o));
    }
    // SOURCES.md: "objects after expanding lists: 840".
    assert_eq!(objects.len(), 840);
    let mut d = Discovery::built_in();
    let mut bad_crds = 0;
    for o in objects
        .iter()
        .filter(|o| o.kind() == "CustomResourceDefinition")
    {
        if d.add_crd(o).is_err() {
            bad_crds += 1;
        }
    }
    let unknown = objects.iter().filter(|o| d.for_object(o).is_none()).count();
    eprintln!(
        "{} resources known, {unknown} objects of unknown resources, {bad_crds} unusable CRDs",
        d.resources().len()
    );
    let filter = Filter::new(&BackupFilter::default(), &d).unwrap();
    let sel = filter.select(&objects, &d);
    let skipped: Vec<_> = sel
        .skipped
        .iter()
        .map(|(i, why)| {
            format!(
                "{} {}/{}: {why}",
                objects[*i].kind(),
                objects[*i].namespace().unwrap_or("-"),
                objects[*i].name()
            )
        })
        .collect();
    // Only objects marked for deletion (live dumps) may be left out, and each is named.
    assert!(
        skipped.iter().all(|s| s.contains("being deleted")),
        "{skipped:?}"
    );
    assert_eq!(sel.items.len() + skipped.len(), objects.len());
}
