//! Reads every manifest under a directory and prints counts and problems.
//! `cargo run -p repo-k8s --example read_dir -- DIR`
fn main() {
    let dir = std::env::args().nth(1).expect("DIR");
    let (mut objects, mut problems) = (0, 0);
    let mut kinds = std::collections::BTreeMap::new();
    let mut stack = vec![std::path::PathBuf::from(dir)];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
            continue;
        }
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !["yaml", "yml", "json"].contains(&ext) {
            continue;
        }
        let m = repo_k8s::manifest::read(&std::fs::read(&p).unwrap(), &p.display().to_string());
        objects += m.objects.len();
        for (o, _) in &m.objects {
            *kinds.entry(o.kind().to_string()).or_insert(0) += 1;
        }
        for e in &m.problems {
            problems += 1;
            println!("problem: {e}");
        }
    }
    println!(
        "{objects} objects, {problems} problems, {} kinds",
        kinds.len()
    );
}
