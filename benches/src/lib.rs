//! Data generators shared by the benchmarks.

use rand::{Rng, SeedableRng};

/// Source-code-like text: the Rust sources found under `$CARGO_HOME/registry/src`, repeated
/// to `len` bytes; falls back to generated words when none are found.
pub fn text(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let home = std::env::var("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo")
        });
    let mut files = Vec::new();
    collect_rs(&home.join("registry").join("src"), &mut files, 4000);
    files.sort();
    'outer: while out.len() < len {
        if files.is_empty() {
            let mut rng = rand::rngs::StdRng::seed_from_u64(out.len() as u64);
            while out.len() < len {
                out.extend_from_slice(
                    format!(
                        "let value_{} = compute({});\n",
                        rng.gen::<u16>(),
                        rng.gen::<u8>()
                    )
                    .as_bytes(),
                );
            }
            break;
        }
        for f in &files {
            if let Ok(b) = std::fs::read(f) {
                out.extend_from_slice(&b);
                if out.len() >= len {
                    break 'outer;
                }
            }
        }
    }
    out.truncate(len);
    out
}

fn collect_rs(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>, max: usize) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        if out.len() >= max {
            return;
        }
        let p = e.path();
        if p.is_dir() {
            collect_rs(&p, out, max);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Incompressible bytes.
pub fn random(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(1).fill(&mut v[..]);
    v
}
