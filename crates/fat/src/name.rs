//! Names: what a FAT long name may be, when it needs long-name entries, the short name
//! generated beside it, and the long-name entries themselves (fatgen103, "FAT Long Directory
//! Entries", "Name Limits and Character Sets", "The Basis-Name Generation Algorithm",
//! "The Numeric-Tail Generation Algorithm").

use crate::ondisk::{
    LfnEntry, ATTR_LONG_NAME, ENTRY_KANJI_E5, LFN_CHARS, LFN_LAST, MAX_LONG_NAME, NT_LOWER_BASE,
    NT_LOWER_EXT,
};

/// A short name as stored: 8 bytes of base name and 3 of extension, space padded.
pub(crate) type ShortName = [u8; 11];

/// Characters a short name may hold besides A-Z and 0-9: every printable ASCII character
/// but `" * + , . / : ; < = > ? [ \ ] |`, space and lower case.
const SHORT_NAME_SPECIALS: &[u8] = b"$%'-_@~`!(){}^#&";
/// Characters no FAT name may hold (besides those below 0x20): Linux's and Windows' list.
const FORBIDDEN_IN_NAMES: &[char] = &['"', '*', '/', ':', '<', '>', '?', '\\', '|'];
/// Numeric tails go up to `~999999`, leaving one character of the base name.
const MAX_NUMERIC_TAIL: u32 = 999_999;

/// Whether `b` may appear in a short name as it is stored.
pub(crate) fn is_short_name_char(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit() || SHORT_NAME_SPECIALS.contains(&b)
}

/// Checks a long name and returns it in UCS-2, or why it cannot be a FAT name.
pub(crate) fn check_long_name(name: &str) -> Result<Vec<u16>, String> {
    if name.is_empty() {
        return Err("empty path component".into());
    }
    if name == "." || name == ".." {
        return Err(format!("{name:?} is not a name"));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| c < ' ' || FORBIDDEN_IN_NAMES.contains(&c))
    {
        return Err(format!("{c:?} cannot appear in a FAT name"));
    }
    if let Some(c) = name.chars().find(|&c| u32::from(c) > 0xFFFF) {
        return Err(format!(
            "{c:?} is outside UCS-2, the long names' character set"
        ));
    }
    // FAT drivers drop trailing dots and spaces and ignore leading spaces: such a name
    // would not be found under the spelling given.
    if name.ends_with(['.', ' ']) || name.starts_with(' ') {
        return Err("begins with a space or ends with a dot or a space".into());
    }
    let ucs2: Vec<u16> = name.encode_utf16().collect();
    if ucs2.len() > MAX_LONG_NAME {
        return Err(format!(
            "{} characters, more than {MAX_LONG_NAME}",
            ucs2.len()
        ));
    }
    Ok(ucs2)
}

/// `name` as stored when it is a valid upper-case 8.3 name (and needs no long name).
pub(crate) fn exact_short_name(name: &str) -> Option<ShortName> {
    let (base, ext) = name.split_once('.').unwrap_or((name, ""));
    let fits = (1..=8).contains(&base.len())
        && ext.len() <= 3
        && (ext.is_empty() != name.contains('.'))
        && base.bytes().chain(ext.bytes()).all(is_short_name_char);
    fits.then(|| padded(base.as_bytes(), ext.as_bytes()))
}

/// The short name of `name` when upper case is all it lacks to be one ("grub.cfg" is
/// "GRUB.CFG"): no numeric tail is needed.
pub(crate) fn lossless_short_name(name: &str) -> Option<ShortName> {
    exact_short_name(&name.to_ascii_uppercase())
}

/// The basis name of fatgen103: upper case, characters a short name cannot hold as `_`,
/// spaces and leading dots dropped, the base up to the first dot (8 at most), the
/// extension after the last dot (3 at most).
pub(crate) fn basis_name(name: &str) -> (Vec<u8>, Vec<u8>) {
    let mapped: Vec<u8> = name
        .chars()
        .filter(|&c| c != ' ')
        .map(|c| match u8::try_from(c) {
            Ok(b'.') => b'.',
            Ok(b) if is_short_name_char(b.to_ascii_uppercase()) => b.to_ascii_uppercase(),
            _ => b'_',
        })
        .skip_while(|&b| b == b'.')
        .collect();
    let mut base: Vec<u8> = mapped
        .iter()
        .take_while(|&&b| b != b'.')
        .take(8)
        .copied()
        .collect();
    let ext: Vec<u8> = match mapped.iter().rposition(|&b| b == b'.') {
        Some(dot) => mapped[dot + 1..].iter().take(3).copied().collect(),
        None => Vec::new(),
    };
    if base.is_empty() {
        // Only a name of dots and spaces has none, and those are refused; kept total.
        base.push(b'_');
    }
    (base, ext)
}

/// The basis name with numeric tail `~n`, the base cut to leave room for it.
pub(crate) fn with_numeric_tail(base: &[u8], ext: &[u8], n: u32) -> Option<ShortName> {
    if !(1..=MAX_NUMERIC_TAIL).contains(&n) {
        return None;
    }
    let tail = format!("~{n}");
    let keep = base.len().min(8 - tail.len());
    let mut with_tail = base[..keep].to_vec();
    with_tail.extend_from_slice(tail.as_bytes());
    Some(padded(&with_tail, ext))
}

fn padded(base: &[u8], ext: &[u8]) -> ShortName {
    let mut out = [b' '; 11];
    out[..base.len()].copy_from_slice(base);
    out[8..8 + ext.len()].copy_from_slice(ext);
    out
}

/// The checksum of a short name that ties its long-name entries to it.
pub(crate) fn checksum(short: &ShortName) -> u8 {
    short
        .iter()
        .fold(0u8, |sum, &b| sum.rotate_right(1).wrapping_add(b))
}

/// The long-name entries of `ucs2`, in the order they are stored: the last piece first,
/// marked [`LFN_LAST`]; a name that does not fill its last piece ends with 0x0000 and
/// 0xFFFF padding.
pub(crate) fn long_name_entries(ucs2: &[u16], short: &ShortName) -> Vec<LfnEntry> {
    let pieces = ucs2.len().div_ceil(LFN_CHARS);
    let mut chars = ucs2.to_vec();
    if chars.len() < pieces * LFN_CHARS {
        chars.push(0);
        chars.resize(pieces * LFN_CHARS, 0xFFFF);
    }
    let sum = checksum(short);
    (0..pieces)
        .rev()
        .map(|piece| {
            let c = &chars[piece * LFN_CHARS..(piece + 1) * LFN_CHARS];
            let order = u8::try_from(piece + 1).expect("at most 20 pieces");
            LfnEntry {
                ldir_ord: if piece + 1 == pieces {
                    order | LFN_LAST
                } else {
                    order
                },
                ldir_name1: std::array::from_fn(|i| c[i].into()),
                ldir_attr: ATTR_LONG_NAME,
                ldir_type: 0,
                ldir_chksum: sum,
                ldir_name2: std::array::from_fn(|i| c[5 + i].into()),
                ldir_fst_clus_lo: 0.into(),
                ldir_name3: std::array::from_fn(|i| c[11 + i].into()),
            }
        })
        .collect()
}

/// The 13 characters of one long-name entry, in order.
pub(crate) fn long_name_piece(entry: &LfnEntry) -> impl Iterator<Item = u16> + '_ {
    entry
        .ldir_name1
        .iter()
        .chain(&entry.ldir_name2)
        .chain(&entry.ldir_name3)
        .map(|c| c.get())
}

/// A stored short name as text: "BASE.EXT", in lower case where Windows NT's flags say so;
/// bytes above 0x7F read as Latin-1 (the code page is unknown).
pub(crate) fn short_name_text(short: &ShortName, nt_flags: u8) -> String {
    let mut bytes = *short;
    if bytes[0] == ENTRY_KANJI_E5 {
        bytes[0] = crate::ondisk::ENTRY_DELETED;
    }
    let part = |b: &[u8], lower: bool| -> String {
        let text: String = b.iter().map(|&b| char::from(b)).collect();
        let text = text.trim_end_matches(' ');
        if lower {
            text.to_ascii_lowercase()
        } else {
            text.to_owned()
        }
    };
    let base = part(&bytes[..8], nt_flags & NT_LOWER_BASE != 0);
    let ext = part(&bytes[8..], nt_flags & NT_LOWER_EXT != 0);
    if ext.is_empty() {
        base
    } else {
        format!("{base}.{ext}")
    }
}

/// How names compare: FAT looks names up without regard to case.
pub(crate) fn fold_case(name: &str) -> String {
    name.to_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &ShortName) -> &str {
        std::str::from_utf8(s).unwrap()
    }

    #[test]
    fn upper_case_8_3_names_are_stored_as_they_are() {
        assert_eq!(
            text(&exact_short_name("BOOTX64.EFI").unwrap()),
            "BOOTX64 EFI"
        );
        assert_eq!(text(&exact_short_name("EFI").unwrap()), "EFI        ");
        assert_eq!(
            text(&exact_short_name("A-B_C$~1.X").unwrap()),
            "A-B_C$~1X  "
        );
        for needs_long_name in [
            "grub.cfg",
            "Boot",
            "BOOTX64.EFI2",
            "TOOLONGNAME",
            "A.B.C",
            "A B",
            "A+B",
            ".X",
            "X.",
            "é",
        ] {
            assert_eq!(exact_short_name(needs_long_name), None, "{needs_long_name}");
        }
        assert_eq!(
            text(&lossless_short_name("grub.cfg").unwrap()),
            "GRUB    CFG"
        );
        assert_eq!(lossless_short_name("grub.conf"), None);
    }

    #[test]
    fn basis_names_follow_fatgen103() {
        let basis = |n: &str| {
            let (b, e) = basis_name(n);
            (String::from_utf8(b).unwrap(), String::from_utf8(e).unwrap())
        };
        // fatgen103's own examples: "The quick brown.fox" -> THEQUI~1.FOX,
        // ".bashrc.swp" -> BASHRC~1.SWP.
        assert_eq!(
            basis("The quick brown.fox"),
            ("THEQUICK".into(), "FOX".into())
        );
        assert_eq!(basis(".bashrc.swp"), ("BASHRC".into(), "SWP".into()));
        assert_eq!(basis("foo.bar.baz"), ("FOO".into(), "BAZ".into()));
        assert_eq!(basis("a+b=c[d].e;f"), ("A_B_C_D_".into(), "E_F".into()));
        assert_eq!(basis("grüße.txt"), ("GR__E".into(), "TXT".into()));
        let (b, e) = basis_name("The quick brown.fox");
        assert_eq!(text(&with_numeric_tail(&b, &e, 1).unwrap()), "THEQUI~1FOX");
        assert_eq!(
            text(&with_numeric_tail(&b, &e, 12345).unwrap()),
            "TH~12345FOX"
        );
        assert_eq!(
            text(&with_numeric_tail(b"AB", b"", 7).unwrap()),
            "AB~7       "
        );
        assert_eq!(with_numeric_tail(&b, &e, 1_000_000), None);
    }

    #[test]
    fn long_names_are_checked() {
        assert!(check_long_name("grub.cfg").is_ok());
        assert_eq!(check_long_name(&"x".repeat(255)).unwrap().len(), 255);
        for bad in [
            "", ".", "..", "a:b", "a\\b", "a*", "tab\t", "end.", "end ", " lead", "😀",
        ] {
            assert!(check_long_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_long_name(&"x".repeat(256)).is_err());
    }

    #[test]
    fn long_name_entries_match_the_layout_of_the_spec() {
        // "grub.cfg": one entry, 8 characters, then 0x0000 and four 0xFFFF.
        let short = *b"GRUB    CFG";
        let ucs2: Vec<u16> = "grub.cfg".encode_utf16().collect();
        let entries = long_name_entries(&ucs2, &short);
        assert_eq!(entries.len(), 1);
        let e = &entries[0];
        assert_eq!(e.ldir_ord, 0x41);
        assert_eq!(e.ldir_attr, 0x0F);
        assert_eq!(e.ldir_chksum, checksum(&short));
        let piece: Vec<u16> = long_name_piece(e).collect();
        let mut expected = ucs2.clone();
        expected.push(0);
        expected.resize(13, 0xFFFF);
        assert_eq!(piece, expected);
        // 26 characters exactly: two entries, no terminator, stored last piece first.
        let ucs2: Vec<u16> = "abcdefghijklmnopqrstuvwxyz".encode_utf16().collect();
        let entries = long_name_entries(&ucs2, &short);
        assert_eq!(
            entries.iter().map(|e| e.ldir_ord).collect::<Vec<_>>(),
            [0x42, 0x01]
        );
        assert_eq!(long_name_piece(&entries[0]).next(), Some(u16::from(b'n')));
    }

    #[test]
    fn checksum_of_a_known_short_name() {
        // Computed by hand from the rotate-right-and-add definition: a name of 11 spaces
        // is 0x20 added to a rotating sum eleven times.
        let mut sum = 0u8;
        for _ in 0..11 {
            sum = (if sum & 1 == 1 { 0x80u8 } else { 0 })
                .wrapping_add(sum >> 1)
                .wrapping_add(0x20);
        }
        assert_eq!(checksum(b"           "), sum);
        assert_ne!(checksum(b"GRUB    CFG"), checksum(b"GRUB~1  CFG"));
    }

    #[test]
    fn short_names_read_back_as_text() {
        assert_eq!(short_name_text(b"BOOTX64 EFI", 0), "BOOTX64.EFI");
        assert_eq!(short_name_text(b"EFI        ", 0), "EFI");
        assert_eq!(
            short_name_text(b"GRUB    CFG", NT_LOWER_BASE | NT_LOWER_EXT),
            "grub.cfg"
        );
        assert_eq!(short_name_text(b"\x05BC        ", 0), "\u{e5}BC");
    }
}
