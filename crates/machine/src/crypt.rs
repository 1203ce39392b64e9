//! SHA-512 crypt, the password hash /etc/shadow holds (`$6$salt$hash`), and salts derived
//! from the build so the same image and password give the same bytes.

use sha2::{Digest, Sha512};

/// The crypt(3) base-64 alphabet.
const CRYPT_ALPHABET: &[u8; 64] =
    b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Rounds of SHA-crypt without a `rounds=` field (Drepper, "Unix crypt using SHA-256 and
/// SHA-512", rounds_default).
const SHA_CRYPT_ROUNDS: usize = 5000;
/// Longest salt SHA-crypt uses; longer salts are cut (same spec, salt_len_max).
const SHA_CRYPT_SALT_MAX: usize = 16;
/// Output byte order of SHA-512 crypt's base-64 encoding, three bytes per group (same spec,
/// step 22 e for SHA-512); the last byte, 63, is encoded alone.
const SHA512_CRYPT_ORDER: [[usize; 3]; 21] = [
    [0, 21, 42],
    [22, 43, 1],
    [44, 2, 23],
    [3, 24, 45],
    [25, 46, 4],
    [47, 5, 26],
    [6, 27, 48],
    [28, 49, 7],
    [50, 8, 29],
    [9, 30, 51],
    [31, 52, 10],
    [53, 11, 32],
    [12, 33, 54],
    [34, 55, 13],
    [56, 14, 35],
    [15, 36, 57],
    [37, 58, 16],
    [59, 17, 38],
    [18, 39, 60],
    [40, 61, 19],
    [62, 20, 41],
];

/// A 16-character salt of the crypt alphabet `[./0-9A-Za-z]`, derived from `seed` (the lead
/// passes the image digest, so the same image and password give the same hash).
pub fn salt_from(seed: &[u8]) -> String {
    let digest = Sha512::digest(seed);
    digest[..SHA_CRYPT_SALT_MAX]
        .iter()
        .map(|&b| char::from(CRYPT_ALPHABET[usize::from(b) % CRYPT_ALPHABET.len()]))
        .collect()
}

/// SHA-512 crypt (`$6$salt$hash`, 5000 rounds, no `rounds=` field) as glibc's crypt(3)
/// computes it: Drepper, "Unix crypt using SHA-256 and SHA-512". The salt is cut at its
/// first `$` and at 16 bytes.
pub fn sha512_crypt(password: &str, salt: &str) -> String {
    let p = password.as_bytes();
    let salt = salt.split('$').next().unwrap_or_default();
    let s = &salt.as_bytes()[..salt.len().min(SHA_CRYPT_SALT_MAX)];

    // Steps 4-8: digest B.
    let b = Sha512::new()
        .chain_update(p)
        .chain_update(s)
        .chain_update(p)
        .finalize();
    // Steps 1-3, 9-12: digest A.
    let mut a = Sha512::new().chain_update(p).chain_update(s);
    let mut left = p.len();
    while left > b.len() {
        a.update(b.as_slice());
        left -= b.len();
    }
    a.update(&b[..left]);
    let mut n = p.len();
    while n > 0 {
        if n & 1 == 1 {
            a.update(b.as_slice());
        } else {
            a.update(p);
        }
        n >>= 1;
    }
    let a = a.finalize();
    // Steps 13-16: byte sequence P.
    let mut dp = Sha512::new();
    for _ in 0..p.len() {
        dp.update(p);
    }
    let dp = dp.finalize();
    let p_seq: Vec<u8> = dp.iter().cycle().take(p.len()).copied().collect();
    // Steps 17-20: byte sequence S.
    let mut ds = Sha512::new();
    for _ in 0..16 + usize::from(a[0]) {
        ds.update(s);
    }
    let ds = ds.finalize();
    let s_seq: Vec<u8> = ds.iter().cycle().take(s.len()).copied().collect();
    // Step 21: the rounds.
    let mut c = a;
    for i in 0..SHA_CRYPT_ROUNDS {
        let mut h = Sha512::new();
        if i % 2 == 1 {
            h.update(&p_seq);
        } else {
            h.update(c.as_slice());
        }
        if i % 3 != 0 {
            h.update(&s_seq);
        }
        if i % 7 != 0 {
            h.update(&p_seq);
        }
        if i % 2 == 1 {
            h.update(c.as_slice());
        } else {
            h.update(&p_seq);
        }
        c = h.finalize();
    }
    // Step 22: the string.
    let mut out = format!("$6${}$", String::from_utf8_lossy(s));
    let mut push = |w: u32, chars: usize| {
        let mut w = w;
        for _ in 0..chars {
            out.push(char::from(CRYPT_ALPHABET[(w & 0x3f) as usize]));
            w >>= 6;
        }
    };
    for [i, j, k] in SHA512_CRYPT_ORDER {
        push(
            u32::from(c[i]) << 16 | u32::from(c[j]) << 8 | u32::from(c[k]),
            4,
        );
    }
    push(u32::from(c[63]), 2);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha512_crypt_spec_vectors() {
        // Drepper's test vectors with the default rounds.
        assert_eq!(
            sha512_crypt("Hello world!", "saltstring"),
            "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
        );
        assert_eq!(
            sha512_crypt("This is just a test", "toolongsaltstring"),
            "$6$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0"
        );
    }

    #[test]
    fn salt_is_sixteen_crypt_characters_and_deterministic() {
        let salt = salt_from(b"sha256:0123");
        assert_eq!(salt.len(), 16);
        assert!(salt.bytes().all(|b| CRYPT_ALPHABET.contains(&b)));
        assert_eq!(salt, salt_from(b"sha256:0123"));
        assert_ne!(salt, salt_from(b"sha256:0124"));
    }
}
