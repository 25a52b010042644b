//! Byte counts in the SI form etcdctl's `DB SIZE` column uses
//! (`25 kB`, `1.5 MB`): one decimal below 10 of a unit, none above.

/// Formats `n` bytes with SI (powers of 1000) units.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 10 {
        return format!("{n} B");
    }
    let exp = ((n as f64).ln() / 1000f64.ln()).floor() as usize;
    let exp = exp.min(UNITS.len() - 1);
    let value = ((n as f64) / 1000f64.powi(exp as i32) * 10.0 + 0.5).floor() / 10.0;
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[exp])
    } else {
        format!("{value:.0} {}", UNITS[exp])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_etcdctl() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(100), "100 B");
        assert_eq!(bytes(20480), "20 kB");
        assert_eq!(bytes(24576), "25 kB");
        assert_eq!(bytes(1500), "1.5 kB");
        assert_eq!(bytes(2_000_000), "2.0 MB");
        assert_eq!(bytes(1000), "1.0 kB");
    }
}
