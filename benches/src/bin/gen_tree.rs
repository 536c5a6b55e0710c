//! Generates the small-files benchmark tree: N files of SIZE bytes spread over D directories,
//! each file's content distinct (so nothing deduplicates away) and deterministic.
//!
//! `gen-tree DIR [FILES=1000000] [DIRS=1000] [SIZE=100]`

use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(root) = args.get(1) else {
        eprintln!("usage: gen-tree DIR [FILES] [DIRS] [SIZE]");
        std::process::exit(2);
    };
    let arg = |i: usize, d: usize| {
        args.get(i)
            .map(|s| s.parse().expect("a number"))
            .unwrap_or(d)
    };
    let (files, dirs, size) = (arg(2, 1_000_000), arg(3, 1000), arg(4, 100));
    let root = std::path::Path::new(root);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut buf = Vec::with_capacity(size);
    for d in 0..dirs {
        let dir = root.join(format!("d{d:04}"));
        std::fs::create_dir_all(&dir).expect("create directory");
        for f in 0..files / dirs {
            buf.clear();
            write!(buf, "{d}/{f} ").unwrap();
            while buf.len() < size {
                // xorshift: cheap, deterministic, printable.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                buf.push(b'a' + (state % 26) as u8);
            }
            std::fs::write(dir.join(format!("f{f:05}.txt")), &buf).expect("write file");
        }
    }
}
