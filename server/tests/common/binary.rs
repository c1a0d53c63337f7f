//! The real `otter-server` binary as an operator runs it: `serve` in a directory, its
//! output read line by line, SIGTERM to stop it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_otter-server");

/// A running `otter-server serve` and every line it has printed so far.
pub struct Running {
    pub child: Child,
    /// `http://127.0.0.1:PORT` (or `https://`), from its "listening on" line.
    pub url: String,
    lines: mpsc::Receiver<String>,
    /// Lines of stdout and stderr read so far.
    pub seen: Vec<String>,
}

/// Starts `otter-server serve` in `dir` on a free port and waits for its "listening" line.
pub fn serve(dir: &Path, extra: &[&str]) -> Running {
    spawn(
        Command::new(BIN)
            .current_dir(dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra),
    )
}

/// Runs `command` (an `otter-server serve` with a free port) with its output captured and
/// waits for its "listening" line. The test database setting is not passed on.
pub fn spawn(command: &mut Command) -> Running {
    let mut child = command
        .env_remove("OTTER_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let mut running = Running {
        child,
        url: String::new(),
        lines,
        seen: Vec::new(),
    };
    let line = running.wait_for("listening on");
    let at = line.find("http").unwrap();
    running.url = line[at..]
        .split(|c: char| c == '"' || c.is_whitespace())
        .next()
        .unwrap()
        .to_owned();
    running
}

impl Running {
    /// The first line containing `needle`, waiting up to 60 s for it.
    pub fn wait_for(&mut self, needle: &str) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        loop {
            match self.lines.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "no {needle:?} within 60 s; output so far:\n{}",
                    self.seen.join("\n")
                ),
                Err(mpsc::RecvTimeoutError::Disconnected) => panic!(
                    "the server exited ({:?}) before printing {needle:?}; output:\n{}",
                    self.child.wait(),
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// `url` + `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Kills the server with SIGKILL and reaps it.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Waits for a server that killed itself (a fault point) and checks it was SIGKILL.
    pub fn wait_killed(mut self) {
        use std::os::unix::process::ExitStatusExt;
        let status = self.child.wait().unwrap();
        assert_eq!(status.signal(), Some(9), "{status:?}");
    }

    /// The initial admin token printed by a first start.
    pub fn admin_token(&mut self) -> String {
        self.wait_for("POST /api/v1/tokens");
        self.seen
            .iter()
            .find(|l| l.trim_start().starts_with("tok_"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// Sends SIGTERM, checks the server stops cleanly, and returns everything it printed.
    pub fn terminate(mut self) -> Vec<String> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.wait_for("stopped");
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "exit {exit:?}");
        self.seen
    }
}
