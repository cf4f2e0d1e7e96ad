//! Running commands with a deadline: every external process the tests start ends within a
//! bounded time, either by itself or killed by its PID.
use std::fmt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Default deadline of a one-shot command.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(20);

/// The outcome of a finished command, printable in panic messages.
#[derive(Clone)]
pub struct Run {
    /// The command line, for messages.
    pub cmdline: String,
    /// Exit code; `None` when killed by a signal (including our own timeout).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The command ran past its deadline and was killed.
    pub timed_out: bool,
}

impl Run {
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }

    /// (transmitted, received) from ping's summary line.
    pub fn ping_counts(&self) -> (u32, u32) {
        let line = self
            .stdout
            .lines()
            .find(|l| l.contains("packets transmitted"))
            .unwrap_or_else(|| panic!("no ping summary in {self}"));
        let nums: Vec<u32> = line
            .split(',')
            .filter_map(|part| part.split_whitespace().next()?.parse().ok())
            .collect();
        assert!(nums.len() >= 2, "cannot parse ping summary {line:?}");
        (nums[0], nums[1])
    }

    /// Non-empty lines of stderr.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }

    fn from_output(cmdline: String, out: Output, timed_out: bool) -> Self {
        Run {
            cmdline,
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            timed_out,
        }
    }

    pub fn into_output(self) -> Output {
        use std::os::unix::process::ExitStatusExt;
        let raw = match self.code {
            Some(c) => c << 8,
            None => libc::SIGKILL,
        };
        Output {
            status: ExitStatus::from_raw(raw),
            stdout: self.stdout.into_bytes(),
            stderr: self.stderr.into_bytes(),
        }
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` -> exit {:?}{}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.cmdline,
            self.code,
            if self.timed_out { " (TIMED OUT)" } else { "" },
            self.stdout,
            self.stderr
        )
    }
}

impl fmt::Debug for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

pub fn cmdline(program: &str, args: &[&str]) -> String {
    let mut s = program.to_string();
    for a in args {
        s.push(' ');
        if a.contains(' ') || a.is_empty() {
            s.push_str(&format!("'{a}'"));
        } else {
            s.push_str(a);
        }
    }
    s
}

/// Runs `program args` to completion or kills it after `timeout`. Panics only if the
/// program cannot be started at all (a missing tool must fail loudly).
pub fn run_timeout(program: &str, args: &[&str], envs: &[(&str, &str)], timeout: Duration) -> Run {
    let line = cmdline(program, args);
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{line}`: {e} (is it installed?)"));
    wait_output(child, line, timeout)
}

/// Runs with [`CMD_TIMEOUT`].
pub fn run(program: &str, args: &[&str]) -> Run {
    run_timeout(program, args, &[], CMD_TIMEOUT)
}

/// Waits for a child whose stdout/stderr are pipes, killing it at the deadline. Pipes are
/// drained on threads so a chatty child cannot block on a full pipe.
pub fn wait_output(mut child: Child, cmdline: String, timeout: Duration) -> Run {
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let read = |p: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = p {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let t_out = read(stdout.map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let t_err = read(stderr.map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let (status, timed_out) = match wait_child(&mut child, timeout) {
        Some(s) => (s, false),
        None => {
            kill_pid(child.id(), libc::SIGKILL);
            let s = wait_child(&mut child, Duration::from_secs(5))
                .unwrap_or_else(|| panic!("`{cmdline}` survived SIGKILL"));
            (s, true)
        }
    };
    // A grandchild that inherited the pipe could keep it open: bound the join too.
    let out = join_bounded(t_out);
    let err = join_bounded(t_err);
    Run::from_output(
        cmdline,
        Output {
            status,
            stdout: out,
            stderr: err,
        },
        timed_out,
    )
}

fn join_bounded(t: std::thread::JoinHandle<Vec<u8>>) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !t.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    if t.is_finished() {
        t.join().unwrap_or_default()
    } else {
        b"<output pipe still open after the process exited>".to_vec()
    }
}

/// The exit status of a server still starting, if it has already exited; the child is
/// then taken out of `child` (there is nothing left to stop).
pub fn exited(child: &mut Option<Child>) -> Option<ExitStatus> {
    let status = child.as_mut()?.try_wait().ok().flatten()?;
    *child = None;
    Some(status)
}

/// The last `keep` lines of `what`'s log at `path` for which `shown` holds, framed for a
/// panic message.
pub fn log_tail(path: &Path, what: &str, keep: usize, shown: impl Fn(&str) -> bool) -> String {
    let body = std::fs::read_to_string(path).unwrap_or_else(|e| format!("<{e}>"));
    let lines: Vec<&str> = body.lines().filter(|l| shown(l)).collect();
    let tail = &lines[lines.len().saturating_sub(keep)..];
    format!(
        "----- {what} log ({}, last {} lines) -----\n{}\n----- end of {what} log -----",
        path.display(),
        tail.len(),
        tail.join("\n")
    )
}

/// Polls `try_wait` until the child exits or `timeout` passes.
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) => {}
            Err(e) => panic!("waiting for pid {}: {e}", child.id()),
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn kill_pid(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on a PID this process started and has not reaped yet.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A process running in the background (e.g. a ping under traffic). Killed by its PID on
/// drop if still running.
pub struct Background {
    child: Option<Child>,
    cmdline: String,
    deadline: Instant,
}

impl Background {
    /// Starts `program args`; it gets `timeout` in total before [`Background::finish`]
    /// kills it.
    pub fn spawn(program: &str, args: &[&str], timeout: Duration) -> Background {
        let line = cmdline(program, args);
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{line}`: {e} (is it installed?)"));
        Background {
            child: Some(child),
            cmdline: line,
            deadline: Instant::now() + timeout,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Waits for the process to end (killing it at its deadline) and returns its output.
    pub fn finish(mut self) -> Run {
        let child = self.child.take().expect("finished twice");
        let left = self.deadline.saturating_duration_since(Instant::now());
        wait_output(child, self.cmdline.clone(), left)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_pid(c.id(), libc::SIGKILL);
            let _ = wait_child(&mut c, Duration::from_secs(5));
        }
    }
}

/// True if `path` exists (a tool's binary, a pin, a netns file).
pub fn exists(path: impl AsRef<Path>) -> bool {
    path.as_ref().exists()
}
