//! The harness's layers hold: `ui → jobs → test → nemesis → cluster`, imports pointing down
//! only (a module may use its own layer and those below it), `duration` a leaf, and the report
//! reading only the checker's files, the fault windows and the run's store (lib.rs and
//! CONTRIBUTING.md draw the map). Read from the sources, so a new upward import fails here
//! with the file and line that made it.

use std::path::{Path, PathBuf};

/// The layers, lowest first.
const LAYERS: [&str; 5] = ["cluster", "nemesis", "test", "jobs", "ui"];

/// What `ui/report/` may use of the crate besides itself.
const REPORT_MAY_USE: [&str; 5] = [
    "nemesis::windows",
    "test::error",
    "test::store",
    "ui::progress",
    "duration",
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `crate::a::b` path in the file's code (comments skipped), with its line number.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let mut paths = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        for (at, _) in code.match_indices("crate::") {
            let path: String = code[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            paths.push((number + 1, path.trim_end_matches(':').to_string()));
        }
    }
    paths
}

fn rank(layer: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == layer)
}

#[test]
fn every_import_points_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in &files {
        let relative = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let own_layer = relative.split('/').next().unwrap().trim_end_matches(".rs");
        let own_rank = rank(own_layer);
        let text = std::fs::read_to_string(file).unwrap();
        for (line, path) in crate_paths(&text) {
            checked += 1;
            let used_layer = path.split("::").next().unwrap_or("");
            let allowed = match (own_rank, rank(used_layer)) {
                // duration and lib.rs: duration is a leaf; lib.rs only declares the layers.
                (None, _) => own_layer == "lib",
                // A leaf every layer may use.
                (Some(_), None) => used_layer == "duration",
                (Some(own), Some(used)) => used <= own,
            };
            let report_ok = !relative.starts_with("ui/report/")
                || path.starts_with("ui::report")
                || REPORT_MAY_USE.iter().any(|p| path.starts_with(p));
            if !allowed || !report_ok {
                broken.push(format!("src/{relative}:{line}: uses crate::{path}"));
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} crate paths found: is the scan broken?"
    );
    assert!(
        broken.is_empty(),
        "imports against the layers (ui → jobs → test → nemesis → cluster):\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_scan_sees_an_upward_import() {
    let text = "use crate::ui::cli::Cli; // crate::jobs in a comment\nlet x = crate::duration::parse_duration(s);";
    assert_eq!(
        crate_paths(text),
        vec![
            (1, "ui::cli::Cli".to_string()),
            (2, "duration::parse_duration".to_string())
        ]
    );
}
