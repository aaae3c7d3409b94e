//! The store: where runs live. `store/<test-name>/<start-time>/` holds one run; `store/latest`
//! points at the newest. It creates the directory and writes `test.json` (first, before
//! anything can fail) and small JSON files; it does not decide their contents.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use faultline_checker::config::TestConfig;

/// Creates `store/<name>/<start-time>/` and points `store/latest` at it.
pub fn create_run_dir(store: &Path, name: &str, start: SystemTime) -> anyhow::Result<PathBuf> {
    let stamp = timestamp(start);
    let parent = store.join(name);
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("creating store directory {}", parent.display()))?;
    // Two runs started in the same millisecond get distinct directories.
    let mut dir = parent.join(&stamp);
    for n in 1..1000 {
        match std::fs::create_dir(&dir) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                dir = parent.join(format!("{stamp}-{n}"));
            }
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
    }
    point_latest(store, &dir)?;
    Ok(dir)
}

/// Replaces `store/latest` atomically (a new link renamed over the old one).
fn point_latest(store: &Path, dir: &Path) -> anyhow::Result<()> {
    let target = dir.strip_prefix(store).unwrap_or(dir);
    let tmp = store.join(format!(".latest-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    std::fs::rename(&tmp, store.join("latest")).context("updating store/latest")?;
    Ok(())
}

pub fn write_json(path: &Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_vec_pretty(value)?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

pub fn write_test_config(dir: &Path, config: &TestConfig) -> anyhow::Result<()> {
    write_json(&dir.join("test.json"), config)
}

pub fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// UTC time as `20250102T030405.678Z`: sortable and safe in a path.
pub fn timestamp(time: SystemTime) -> String {
    let ms = unix_ms(time);
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_utc_and_sortable() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(timestamp(t), "20231114T221320.123Z");
        assert_eq!(timestamp(UNIX_EPOCH), "19700101T000000.000Z");
    }

    #[test]
    fn latest_points_at_the_newest_run() {
        let store = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let a = create_run_dir(store.path(), "t", now).unwrap();
        let b = create_run_dir(store.path(), "t", now).unwrap();
        assert_ne!(a, b);
        let latest = std::fs::canonicalize(store.path().join("latest")).unwrap();
        assert_eq!(latest, std::fs::canonicalize(&b).unwrap());
    }
}
