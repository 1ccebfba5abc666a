//! Numbers into text on the request path, without `core::fmt`'s dynamic machinery (and its
//! float formatting, which costs more than the rest of an access-log line together).

/// "00" to "99", for writing two digits at a time.
const PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Appends `n` in decimal.
pub(crate) fn push_u64(s: &mut String, mut n: u64) {
    // Filled from the end, two digits per division: a number of a log line costs a few
    // instructions instead of a UTF-8 check and a `memcpy` call.
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    while n >= 100 {
        let d = (n % 100) as usize * 2;
        n /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[d..d + 2]);
    }
    if n >= 10 {
        let d = n as usize * 2;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[d..d + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + n as u8;
    }
    for &d in &buf[i..] {
        s.push(char::from(d));
    }
}

/// Appends `n` in decimal, with a sign when negative.
pub(crate) fn push_i64(s: &mut String, n: i64) {
    if n < 0 {
        s.push('-');
    }
    push_u64(s, n.unsigned_abs());
}

/// Appends `n` zero-padded to `width` digits (wider numbers are written whole).
pub(crate) fn push_padded(s: &mut String, n: u64, width: usize) {
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
pub(crate) fn push_millis(s: &mut String, micros: u64) {
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
        for n in [
            0,
            7,
            10,
            99,
            100,
            101,
            999,
            1000,
            65_535,
            1_000_000,
            u64::MAX,
        ] {
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
