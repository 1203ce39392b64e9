//! Issue 18's completions and manual pages: `d2l completions bash|zsh|fish` prints scripts
//! that each shell's own parser accepts and that complete d2l's commands and options, and
//! `d2l man --dir` (what `cargo xtask man` runs) writes pages that groff renders without a
//! warning, one per command, listing every option.

mod common;

use std::process::Command;

use common::{d2l, run_ok, stderr};

/// Every visible command, as the pages and completions must know them.
const COMMANDS: &[&str] = &[
    "build",
    "export",
    "inspect",
    "run",
    "pull",
    "cache",
    "convert",
    "completions",
];

fn script(shell: &str) -> String {
    let out = d2l(&["completions", shell]);
    assert!(
        out.status.success(),
        "d2l completions {shell}: {}",
        stderr(&out)
    );
    String::from_utf8(out.stdout).expect("a script is text")
}

#[test]
fn completion_scripts_parse_in_their_shells_and_know_the_options() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, check) in [
        ("bash", vec!["bash", "-n"]),
        ("zsh", vec!["zsh", "-n"]),
        ("fish", vec!["fish", "--no-execute"]),
    ] {
        let text = script(shell);
        // fish names long options without their dashes (`-l firmware`).
        for needle in ["build", "install-kernel", "firmware", "convert"] {
            assert!(text.contains(needle), "{shell}: no {needle}");
        }
        let file = dir.path().join(format!("d2l.{shell}"));
        std::fs::write(&file, &text).unwrap();
        let mut args: Vec<&str> = check[1..].to_vec();
        args.push(file.to_str().unwrap());
        run_ok(check[0], &args);
    }
    // bash: sourced, it registers a completion for d2l, which offers the commands.
    let file = dir.path().join("d2l.bash");
    let completed = run_ok(
        "bash",
        &[
            "-c",
            &format!(
                "source {} && complete -p d2l && COMP_WORDS=(d2l b) COMP_CWORD=1 \
                 && _d2l d2l b d2l && printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                file.display()
            ),
        ],
    );
    assert!(completed.contains("-F _d2l d2l"), "{completed}");
    assert!(completed.lines().any(|l| l == "build"), "{completed}");
    let out = d2l(&["completions", "tcsh"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

#[test]
fn manual_pages_render_without_warnings_and_list_every_option() {
    let dir = tempfile::tempdir().unwrap();
    let out = d2l(&["man", "--dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "d2l man: {}", stderr(&out));
    let mut expected: Vec<String> = COMMANDS.iter().map(|c| format!("d2l-{c}.1")).collect();
    expected.push("d2l.1".into());
    expected.sort();
    assert_eq!(common::list_dir(dir.path()), expected);
    for page in &expected {
        let path = dir.path().join(page);
        let groff = Command::new("groff")
            .args(["-ww", "-z", "-man"])
            .arg(&path)
            .output()
            .expect("groff (package groff)");
        assert!(
            groff.status.success() && groff.stderr.is_empty(),
            "{page}: {}",
            stderr(&groff)
        );
    }
    let rendered = Command::new("man")
        .args(["-l", "-P", "cat"])
        .arg(dir.path().join("d2l-build.1"))
        .env("MANWIDTH", "100")
        .output()
        .expect("man");
    let text = String::from_utf8_lossy(&rendered.stdout);
    for option in [
        "--output",
        "--table",
        "--firmware",
        "--install-kernel",
        "--install",
        "--ssh-key",
        "--format",
        "--cache-dir",
    ] {
        assert!(text.contains(option), "d2l-build(1) lacks {option}");
    }
    let top = std::fs::read_to_string(dir.path().join("d2l.1")).unwrap();
    for command in COMMANDS {
        assert!(top.contains(command), "d2l(1) lacks {command}");
    }
}
