//! Parses the public Cerebras csl-examples corpus (SDK 1.4) when it is present on this
//! machine as a bare git repository. The corpus is never copied into this repository.

use std::path::Path;
use std::process::Command;

const REPO: &str = "/work/.mirror/Cerebras+csl-examples/repo";

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(REPO)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn csl_examples_corpus() {
    if !Path::new(REPO).exists() {
        eprintln!("skipped: csl-examples corpus not found at {REPO}");
        return;
    }
    let Some(list) = git(&["ls-tree", "-r", "--name-only", "HEAD"]) else {
        eprintln!("skipped: cannot list {REPO} with git");
        return;
    };
    let files: Vec<&str> = list.lines().filter(|l| l.ends_with(".csl")).collect();
    let mut ok = 0;
    let mut failures = Vec::new();
    for f in &files {
        let Some(text) = git(&["show", &format!("HEAD:{f}")]) else {
            continue;
        };
        match pyflame_csl::parse::parse(&text) {
            Ok(_) => ok += 1,
            Err(e) => failures.push(format!("{f}: {e}")),
        }
    }
    println!("csl-examples: {ok} of {} .csl files parse", files.len());
    for f in &failures {
        println!("  {f}");
    }
    assert_eq!(files.len(), 164, "unexpected corpus size");
    assert_eq!(ok, files.len(), "some corpus files do not parse");
}
