//! Embeds the console's built assets (`console/dist`, made by `npm run build`
//! in `console/`, which `infra/install.sh` runs) into the binary: one
//! `include_bytes!` per file, listed in `$OUT_DIR/assets.rs`. Without a build
//! the list is empty and the console answers 503 (`console_not_built`).
//! `CONSOLE_DIST` names another directory.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=CONSOLE_DIST");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let dist = std::env::var_os("CONSOLE_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../../console/dist"));
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut files = Vec::new();
    if dist.is_dir() {
        collect(&dist, &dist, &mut files);
    } else {
        println!(
            "cargo:warning=console assets not built ({}): run infra/install.sh",
            dist.display()
        );
    }
    files.sort();
    let mut code = String::from(
        "/// The built assets, by path below `/console/`.\npub static ASSETS: &[(&str, &[u8])] = &[\n",
    );
    for (path, file) in &files {
        let file = file.canonicalize().expect("asset path");
        code.push_str(&format!(
            "    ({path:?}, include_bytes!({:?})),\n",
            file.display().to_string()
        ));
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("assets.rs");
    std::fs::write(out, code).expect("write assets.rs");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    for entry in std::fs::read_dir(dir).expect("read console/dist") {
        let path = entry.expect("console/dist entry").path();
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let relative = path.strip_prefix(root).expect("below dist");
            let name = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            files.push((name, path));
        }
    }
}
