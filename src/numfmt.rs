//! Numbers into text on the request path, without `core::fmt`'s dynamic machinery (and its
//! float formatting, which cost more than the rest of an access-log line together).

/// Appends `n` in decimal.
pub fn push_u64(s: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // A char at a time: a UTF-8 check and a `memcpy` call per number cost more than the digits.
    for &d in &buf[i..] {
        s.push(char::from(d));
    }
}

/// Appends `n` in decimal, with a sign when negative.
pub fn push_i64(s: &mut String, n: i64) {
    if n < 0 {
        s.push('-');
    }
    push_u64(s, n.unsigned_abs());
}

/// Appends `n` zero-padded to `width` digits (wider numbers are written whole).
pub fn push_padded(s: &mut String, n: u64, width: usize) {
    let mut digits = 1;
    let mut m = n / 10;
    while m > 0 {
        digits += 1;
        m /= 10;
    }
    for _ in digits..width {
        s.push('0');
    }
    push_u64(s, n);
}

/// Appends a duration given in microseconds as milliseconds with one decimal, rounded:
/// 12_345 -> `12.3`, 50 -> `0.1`.
pub fn push_millis(s: &mut String, micros: u64) {
    let tenths = micros.saturating_add(50) / 100;
    push_u64(s, tenths / 10);
    s.push('.');
    push_u64(s, tenths % 10);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut String)) -> String {
        let mut s = String::new();
        f(&mut s);
        s
    }

    #[test]
    fn integers_and_millis() {
        for n in [0, 7, 10, 99, 1000, 65_535, u64::MAX] {
            assert_eq!(with(|s| push_u64(s, n)), n.to_string());
        }
        for n in [0, -1, -300, i64::MIN, i64::MAX] {
            assert_eq!(with(|s| push_i64(s, n)), n.to_string());
        }
        assert_eq!(with(|s| push_padded(s, 42, 6)), "000042");
        assert_eq!(with(|s| push_padded(s, 1_234_567, 6)), "1234567");
        assert_eq!(with(|s| push_padded(s, 0, 2)), "00");
        assert_eq!(with(|s| push_millis(s, 12_345)), "12.3");
        assert_eq!(with(|s| push_millis(s, 12_350)), "12.4");
        assert_eq!(with(|s| push_millis(s, 49)), "0.0");
        assert_eq!(with(|s| push_millis(s, 999_960)), "1000.0");
    }
}
