//! `shoko start`, `stop` and `status`: the server in the background, with
//! its pid, address and log in the data dir — one command each, for the
//! operator who stops and starts it several times a day.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

fn pid_file(data_dir: &Path) -> PathBuf {
    data_dir.join("shoko.pid")
}

fn addr_file(data_dir: &Path) -> PathBuf {
    data_dir.join("shoko.addr")
}

fn alive(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmd| String::from_utf8_lossy(&cmd).contains("shoko"))
}

/// The pid of the background server, if it runs.
fn running(data_dir: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file(data_dir))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    alive(pid).then_some(pid)
}

/// Starts `shoko serve` in its own process group with its output appended
/// to `DATA_DIR/shoko.log`, and waits until it says it serves.
pub fn start(data_dir: &Path, database: Option<&str>, listen: Option<&str>) -> anyhow::Result<()> {
    if let Some(pid) = running(data_dir) {
        bail!(
            "Shoko already runs from {} (pid {pid}); `shoko stop` first",
            data_dir.display()
        );
    }
    std::fs::create_dir_all(data_dir)?;
    let log_path = data_dir.join("shoko.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let start_at = log.metadata()?.len();
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.arg("--data-dir").arg(data_dir);
    if let Some(db) = database {
        cmd.arg("--database").arg(db);
    }
    cmd.arg("serve");
    if let Some(l) = listen {
        cmd.arg("--listen").arg(l);
    }
    use std::os::unix::process::CommandExt;
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("cannot start the server")?;
    std::fs::write(pid_file(data_dir), child.id().to_string())?;
    // Follow the log until the server says where it serves, or dies.
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut reader = std::fs::File::open(&log_path)?;
    std::io::Seek::seek(&mut reader, std::io::SeekFrom::Start(start_at))?;
    let mut lines = BufReader::new(reader);
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line)? > 0 {
            if let Some(rest) = line.trim().strip_prefix("Shoko is serving on ") {
                let addr = rest.trim_start_matches("http://").trim_end_matches('/');
                std::fs::write(addr_file(data_dir), addr)?;
                println!(
                    "Shoko is serving on http://{addr}/ (pid {}, log {})",
                    child.id(),
                    log_path.display()
                );
                return Ok(());
            }
            continue;
        }
        if let Some(status) = child.try_wait()? {
            let _ = std::fs::remove_file(pid_file(data_dir));
            bail!(
                "the server stopped while starting ({status}); see {}",
                log_path.display()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "the server has not said it serves after 5 minutes; see {}",
                log_path.display()
            );
        }
        // Waiting for the server's next log line.
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends SIGTERM and waits for the server to finish its requests and exit.
pub fn stop(data_dir: &Path, grace_seconds: u64) -> anyhow::Result<()> {
    let Some(pid) = running(data_dir) else {
        let _ = std::fs::remove_file(pid_file(data_dir));
        println!("Shoko is not running from {}", data_dir.display());
        return Ok(());
    };
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .context("cannot run kill")?;
    if !sent.success() {
        bail!("cannot signal pid {pid}");
    }
    let deadline = Instant::now() + Duration::from_secs(grace_seconds + 30);
    while alive(pid) {
        if Instant::now() > deadline {
            bail!(
                "pid {pid} has not stopped; its log is in {}",
                data_dir.join("shoko.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_file(pid_file(data_dir));
    let _ = std::fs::remove_file(addr_file(data_dir));
    println!("Shoko stopped (pid {pid})");
    Ok(())
}

/// Prints whether the server runs, where, and what `/health/ready` says.
pub fn status(data_dir: &Path) -> anyhow::Result<bool> {
    let Some(pid) = running(data_dir) else {
        println!("Shoko is not running from {}", data_dir.display());
        return Ok(false);
    };
    let addr = std::fs::read_to_string(addr_file(data_dir)).unwrap_or_default();
    let ready = ready_line(addr.trim()).unwrap_or_else(|e| format!("no answer: {e}"));
    println!(
        "Shoko is running (pid {pid}) on http://{}/ — /health/ready: {ready}",
        addr.trim()
    );
    Ok(true)
}

/// The status line of `GET /health/ready`, over a plain connection.
fn ready_line(addr: &str) -> anyhow::Result<String> {
    let answer = get(addr, "/health/ready")?;
    Ok(answer.lines().next().unwrap_or("").trim().to_owned())
}

/// The whole answer (status line, headers, body) to `GET path` from the
/// server at `addr`, over a plain connection with a 5-second bound.
pub fn get(addr: &str, path: &str) -> anyhow::Result<String> {
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

/// The address of the server running from this data dir, if one runs.
pub fn running_addr(data_dir: &Path) -> Option<String> {
    running(data_dir)?;
    let addr = std::fs::read_to_string(addr_file(data_dir)).ok()?;
    Some(addr.trim().to_owned())
}
