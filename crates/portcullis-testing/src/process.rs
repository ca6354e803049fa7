//! Processes the servers of this crate share: a server started under a `sh` watchdog (which
//! stops it by its pid when the test lets go, even when the test process dies), a helper
//! command run to its end, and whether a pid still runs.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

/// A server started by a watchdog script: the script starts it, prints its pid and waits on
/// its standard input; a line (`keep` where the script keeps the folder), or the end of its
/// input when the test process dies, tells it to stop the server.
pub(crate) struct Watched {
    /// The `sh` running the script.
    pub(crate) watchdog: Child,
    /// The script's input: write a line (or drop it) to stop the server.
    pub(crate) stdin: ChildStdin,
    /// The server's own pid.
    pub(crate) pid: u32,
}

/// Runs `script` with `args` (`$1`...) in `dir` when given, and waits for the pid it prints.
pub(crate) fn watch<S: AsRef<OsStr>>(
    script: &str,
    args: impl IntoIterator<Item = S>,
    dir: Option<&Path>,
) -> Watched {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(script)
        .arg("sh")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let mut watchdog = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start sh: {e}"));
    let stdin = watchdog.stdin.take().expect("its input is piped");
    let mut line = String::new();
    BufReader::new(watchdog.stdout.take().expect("its output is piped"))
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("the watchdog printed no pid: {e}"));
    let pid = line
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("the watchdog printed {line:?}, not a pid: {e}"));
    Watched {
        watchdog,
        stdin,
        pid,
    }
}

/// Runs `command` to its end; fails the test with its output when it fails.
pub(crate) fn run(command: &mut Command) {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Whether `pid` runs (and is no zombie).
pub(crate) fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}
