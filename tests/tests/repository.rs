//! The repository itself: no tracked file names a path of one machine (this checkout's own
//! absolute path, a home directory), and nothing points at notes outside the repository. Docs
//! show paths a user has (`$PWD/...`, `/opt/...`, `/usr/lib/...`).

use std::process::Command;

use hookvisor_tests::harness::repo_root;

/// Every tracked text file, with its path, but the fuzz corpora (arbitrary bytes by design).
fn tracked_texts() -> Vec<(String, String)> {
    let root = repo_root();
    let out = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(&root)
        .output()
        .expect("git ls-files");
    assert!(out.status.success(), "git ls-files failed");
    out.stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .filter(|p| !p.starts_with("fuzz/corpus/") && !p.starts_with("vendor/"))
        .filter_map(|p| {
            let text = std::fs::read_to_string(root.join(&p)).ok()?;
            Some((p, text))
        })
        .collect()
}

#[test]
fn no_tracked_file_names_this_checkout_or_a_home_directory() {
    let root = repo_root().display().to_string();
    let mut found = Vec::new();
    for (path, text) in tracked_texts() {
        // This file spells the patterns it looks for.
        if path == "tests/tests/repository.rs" {
            continue;
        }
        for (number, line) in text.lines().enumerate() {
            let home = ["/root/", "/Users/"]
                .iter()
                .any(|h| line.contains(h))
                // `/home/agent/...` is the demo's made-up workspace; any other home is a user's.
                || line
                    .match_indices("/home/")
                    .any(|(i, _)| !line[i..].starts_with("/home/agent/"));
            if line.contains(&root) || home {
                found.push(format!("{path}:{}: {}", number + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "paths of one machine in tracked files:\n{}",
        found.join("\n")
    );
}

#[test]
fn nothing_points_at_notes_outside_the_repository() {
    let mut found = Vec::new();
    for (path, text) in tracked_texts() {
        if path == "tests/tests/repository.rs" {
            continue;
        }
        for (number, line) in text.lines().enumerate() {
            let lower = line.to_lowercase();
            if lower.contains("field notes") || lower.contains("field-notes") {
                found.push(format!("{path}:{}: {}", number + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "say the fact itself, not where it was noted:\n{}",
        found.join("\n")
    );
}
