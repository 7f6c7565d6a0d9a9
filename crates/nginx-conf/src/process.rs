//! Running a child process (nginx, a reload command, a user hook) with a time limit that covers
//! everything it starts: the child leads a process group of its own, its output is read on threads,
//! and at the time limit we stop reading and kill the whole group — so a grandchild that keeps the
//! output pipes open (`sleep 25 &`, a daemon started without closing them) cannot hold the run.
//!
//! A child that exits in time may leave processes behind (a hook that starts a daemon): they are
//! not killed, but their output is read only for [`LINGER`] after the child exits.
//!
//! Not here: which environment a child gets (the caller builds the [`Command`]).

use std::io::Read;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// How long the output pipes are read after the child has exited (a process it left behind may
/// hold them open for ever).
pub const LINGER: Duration = Duration::from_secs(2);

/// At most this much of each output stream is kept.
const OUTPUT_CAP: usize = 1 << 20;

/// How a bounded run ended.
#[derive(Debug)]
pub struct Finished {
    /// The exit status, or `None` when the time limit stopped it (its group was killed).
    pub status: Option<ExitStatus>,
    /// What it wrote to stdout (up to 1 MiB).
    pub stdout: Vec<u8>,
    /// What it wrote to stderr (up to 1 MiB).
    pub stderr: Vec<u8>,
}

/// Runs `command` with stdin from /dev/null and its output captured, in a new process group;
/// after `timeout` the group is killed and `status` is `None`. Fails only when it cannot start.
pub fn run_bounded(command: &mut Command, timeout: Duration) -> std::io::Result<Finished> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let group = child.id() as libc::pid_t;
    let (tx, rx) = mpsc::channel();
    let streams: [Buffer; 2] = [Arc::default(), Arc::default()];
    let out = reader(child.stdout.take(), streams[0].clone(), tx.clone());
    let err = reader(child.stderr.take(), streams[1].clone(), tx);
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                // SAFETY: killpg only sends a signal; `group` is our child's own group, which
                // exists while the child (not yet reaped) does.
                unsafe { libc::killpg(group, libc::SIGKILL) };
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let stop = match status {
        Some(_) => deadline.min(Instant::now() + LINGER),
        None => Instant::now() + Duration::from_millis(200),
    };
    let mut open = 2;
    while open > 0 {
        let left = stop.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(()) => open -= 1,
            Err(_) => break,
        }
    }
    // Readers still blocked (a process left behind holds the pipe) are abandoned, not joined;
    // what they have read so far is kept.
    drop((out, err));
    let [stdout, stderr] = streams.map(|s| std::mem::take(&mut *lock(&s)));
    Ok(Finished {
        status,
        stdout,
        stderr,
    })
}

type Buffer = Arc<Mutex<Vec<u8>>>;

fn lock(buffer: &Buffer) -> std::sync::MutexGuard<'_, Vec<u8>> {
    buffer
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Reads `pipe` into `kept` on a thread until its end, then sends `()` on `done`.
fn reader(
    pipe: Option<impl Read + Send + 'static>,
    kept: Buffer,
    done: mpsc::Sender<()>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        if let Some(mut pipe) = pipe {
            let mut buf = [0u8; 8192];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let mut kept = lock(&kept);
                        let room = OUTPUT_CAP.saturating_sub(kept.len());
                        kept.extend_from_slice(&buf[..n.min(room)]);
                    }
                }
            }
        }
        let _ = done.send(());
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn output_and_status_are_captured() {
        let done = run_bounded(
            &mut sh("echo out; echo err >&2; exit 3"),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(done.status.and_then(|s| s.code()), Some(3));
        assert_eq!(done.stdout, b"out\n");
        assert_eq!(done.stderr, b"err\n");
    }

    #[test]
    fn a_background_grandchild_holding_the_pipes_does_not_hold_the_caller() {
        let started = Instant::now();
        let done = run_bounded(&mut sh("echo hi; sleep 25 &"), Duration::from_secs(60)).unwrap();
        assert!(done.status.unwrap().success());
        assert_eq!(done.stdout, b"hi\n");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "held for {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn at_the_time_limit_the_whole_group_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let script = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
        let started = Instant::now();
        let done = run_bounded(&mut sh(&script), Duration::from_millis(500)).unwrap();
        assert!(done.status.is_none(), "stopped by the time limit");
        assert!(started.elapsed() < Duration::from_secs(10));
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The grandchild is gone (or a zombie awaiting init) once the group was killed.
        std::thread::sleep(Duration::from_millis(200));
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false);
        assert!(!alive, "the grandchild {pid} outlived the time limit");
    }
}
