//! Data generators shared by the benchmarks.

use rand::{Rng, SeedableRng};

/// Source-code-like text: the Rust sources found under `$CARGO_HOME/registry/src`, repeated
/// to `len` bytes, with a pass-numbered comment line after every 64 lines from the second pass
/// on, so repeats do not deduplicate; falls back to generated words when none are found.
pub fn text(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let home = std::env::var("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo")
        });
    let mut files = Vec::new();
    collect_rs(&home.join("registry").join("src"), &mut files, 20_000);
    files.sort();
    let mut pass = 0u64;
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
                if pass == 0 {
                    out.extend_from_slice(&b);
                } else {
                    for (i, line) in b.split_inclusive(|&c| c == b'\n').enumerate() {
                        out.extend_from_slice(line);
                        if i % 64 == 63 {
                            out.extend_from_slice(format!("// pass {pass}\n").as_bytes());
                        }
                    }
                }
                if out.len() >= len {
                    break 'outer;
                }
            }
        }
        pass += 1;
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
