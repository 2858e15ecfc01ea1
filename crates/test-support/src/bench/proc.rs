//! What a process uses, from `/proc`: resident memory and CPU time, of
//! this process or of a child (a `wasmsched run` measured as a black box).

/// Resident memory of this process, in MiB.
pub fn rss_mib() -> f64 {
    rss_mib_of("self")
}

/// CPU time this process used so far (user + system), in seconds.
pub fn cpu_seconds() -> f64 {
    cpu_seconds_of("self")
}

/// Resident memory of process `pid` (`"self"` or a number), in MiB.
pub fn rss_mib_of(pid: &str) -> f64 {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap();
    let pages: f64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096.0 / 1048576.0
}

/// CPU time process `pid` (`"self"` or a number) used so far (user +
/// system), in seconds.
pub fn cpu_seconds_of(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0 // USER_HZ
}
