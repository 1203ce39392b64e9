//! The account databases (/etc/passwd, shadow, group, gshadow): parsed line by line, edited
//! (root's password, a new user with its group and home), written back whole.
//!
//! Every line is checked before anything is written: a line d2l cannot read is an error
//! naming the file and line, never a file rewritten around it. Lines that are not entries
//! (blank lines, comments, NIS `+`/`-` lines) are kept as they are.

use d2l_rootfs::ContentStore;

use crate::error::{Error, Result};
use crate::files::{Files, Kind};
use crate::Outcome;

pub(crate) const PASSWD: &str = "/etc/passwd";
pub(crate) const SHADOW: &str = "/etc/shadow";
pub(crate) const GROUP: &str = "/etc/group";
pub(crate) const GSHADOW: &str = "/etc/gshadow";
/// Where login.defs(5) gives the range of ids for new users and groups.
const LOGIN_DEFS: &str = "/etc/login.defs";
/// The skeleton of new home directories (useradd -m).
const SKEL: &str = "/etc/skel";
/// login.defs(5) defaults: UID_MIN, UID_MAX (GID_* alike).
const ID_MIN: u32 = 1000;
const ID_MAX: u32 = 60000;
/// Longest user name useradd accepts (`LOGIN_NAME_MAX` - 1 on Linux is 255, but utmp and
/// most tools stop at 32).
const NAME_MAX: usize = 32;
/// Seconds in a day, for shadow's "days since the epoch" field (shadow(5)).
const SECONDS_PER_DAY: i64 = 86_400;
/// Groups whose members may use sudo: Debian's, then Fedora's and Alpine's.
const ADMIN_GROUPS: &[&str] = &["sudo", "wheel"];
/// Where sudo is, in the images that have it.
const SUDO: &[&str] = &["/usr/bin/sudo", "/bin/sudo"];
/// The directory of sudoers(5) drop-ins every distribution's sudoers includes.
const SUDOERS_D: &str = "/etc/sudoers.d";
/// Shells for a new user, the first the image has.
const SHELLS: &[&str] = &["/bin/bash", "/bin/sh"];
/// Deepest /etc/skel copied (it is a handful of dot files).
const MAX_SKEL_DEPTH: usize = 8;

/// One line of an account database.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    /// An entry, split at `:`.
    Entry(Vec<String>),
    /// Anything else, kept verbatim.
    Other(String),
}

/// One account database file, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Table {
    path: &'static str,
    lines: Vec<Line>,
}

/// The shape of each database: fields per entry, and which must be numbers.
struct Schema {
    fields: usize,
    numeric: &'static [usize],
    /// shadow(5) entries may stop early (old tools write fewer than nine fields).
    at_least: bool,
}

fn schema(path: &str) -> Schema {
    match path {
        PASSWD => Schema {
            fields: 7,
            numeric: &[2, 3],
            at_least: false,
        },
        GROUP => Schema {
            fields: 4,
            numeric: &[2],
            at_least: false,
        },
        GSHADOW => Schema {
            fields: 4,
            numeric: &[],
            at_least: false,
        },
        _ => Schema {
            fields: 2,
            numeric: &[],
            at_least: true,
        },
    }
}

impl Table {
    /// Parses `text` as the database `path`, checking every entry.
    pub(crate) fn parse(path: &'static str, text: &str) -> Result<Table> {
        let schema = schema(path);
        let mut lines = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let bad = |reason: String| Error::Malformed {
                path: path.to_owned(),
                line: n + 1,
                reason,
            };
            if line.trim().is_empty() || line.starts_with('#') || line.starts_with(['+', '-']) {
                lines.push(Line::Other(line.to_owned()));
                continue;
            }
            let fields: Vec<String> = line.split(':').map(str::to_owned).collect();
            let count_ok = if schema.at_least {
                fields.len() >= schema.fields
            } else {
                fields.len() == schema.fields
            };
            if !count_ok {
                return Err(bad(format!(
                    "{} fields separated by `:`, expected {}{}",
                    fields.len(),
                    if schema.at_least { "at least " } else { "" },
                    schema.fields
                )));
            }
            if fields[0].is_empty() {
                return Err(bad("empty name".to_owned()));
            }
            for &i in schema.numeric {
                if fields[i].parse::<u32>().is_err() {
                    return Err(bad(format!(
                        "field {} is {:?}, not an id",
                        i + 1,
                        fields[i]
                    )));
                }
            }
            lines.push(Line::Entry(fields));
        }
        Ok(Table { path, lines })
    }

    /// The text to write back.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            match line {
                Line::Entry(fields) => out.push_str(&fields.join(":")),
                Line::Other(text) => out.push_str(text),
            }
            out.push('\n');
        }
        out
    }

    fn entries(&self) -> impl Iterator<Item = &Vec<String>> {
        self.lines.iter().filter_map(|l| match l {
            Line::Entry(f) => Some(f),
            Line::Other(_) => None,
        })
    }

    fn entry(&self, name: &str) -> Option<&Vec<String>> {
        self.entries().find(|f| f[0] == name)
    }

    fn entry_mut(&mut self, name: &str) -> Option<&mut Vec<String>> {
        self.lines.iter_mut().find_map(|l| match l {
            Line::Entry(f) if f[0] == name => Some(f),
            _ => None,
        })
    }

    /// The ids in field `field` (checked numeric by [`Table::parse`]).
    fn ids(&self, field: usize) -> impl Iterator<Item = u32> + '_ {
        self.entries().filter_map(move |f| f[field].parse().ok())
    }

    fn push(&mut self, fields: Vec<String>) {
        self.lines.push(Line::Entry(fields));
    }
}

/// A user's passwd entry, as the other jobs need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) home: String,
}

/// The passwd entry of `name` in `passwd`'s text.
pub(crate) fn lookup(passwd: &Table, name: &str) -> Option<Account> {
    passwd.entry(name).map(|f| Account {
        uid: f[2].parse().unwrap_or_default(),
        gid: f[3].parse().unwrap_or_default(),
        home: f[5].clone(),
    })
}

/// The range of ids for new users from login.defs' text (`UID_MIN`, `UID_MAX`), else the
/// defaults.
fn id_range(login_defs: &str) -> (u32, u32) {
    let value = |key: &str| {
        login_defs.lines().find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some(key))
                .then(|| words.next()?.parse::<u32>().ok())
                .flatten()
        })
    };
    let min = value("UID_MIN").unwrap_or(ID_MIN);
    let max = value("UID_MAX").unwrap_or(ID_MAX).max(min);
    (min, max)
}

/// A user name as useradd accepts it by default: a lower-case letter or `_`, then letters,
/// digits, `_`, `-`, at most [`NAME_MAX`] bytes.
pub(crate) fn check_user_name(name: &str) -> Result<()> {
    let bad = |reason: &str| Error::Option {
        option: "--user",
        reason: format!("{name:?}: {reason}"),
    };
    if name.is_empty() || name.len() > NAME_MAX {
        return Err(bad("must be 1 to 32 characters"));
    }
    let mut bytes = name.bytes();
    let first = bytes.next().unwrap_or_default();
    if !(first.is_ascii_lowercase() || first == b'_')
        || !bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(bad(
            "a lower-case letter or `_`, then lower-case letters, digits, `_` or `-`",
        ));
    }
    Ok(())
}

/// The four databases of an image (shadow and gshadow may be missing).
pub(crate) struct Databases {
    pub(crate) passwd: Table,
    pub(crate) shadow: Table,
    pub(crate) group: Table,
    pub(crate) gshadow: Option<Table>,
    /// Whether /etc/shadow existed (else it is created).
    shadow_existed: bool,
}

/// A user to add.
pub(crate) struct NewUser<'a> {
    pub(crate) name: &'a str,
    /// The password hash, or `None` for no password (`*`: key logins only, not "locked",
    /// which sshd would refuse without PAM).
    pub(crate) hash: Option<String>,
    /// Days since the epoch for shadow's last-change field.
    pub(crate) days: Option<i64>,
    pub(crate) shell: &'a str,
    /// UID_MIN and UID_MAX (GID alike).
    pub(crate) range: (u32, u32),
}

/// What [`Databases::add_user`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Added {
    pub(crate) account: Account,
    /// The admin group the user joined, if the image has one.
    pub(crate) admin: Option<String>,
}

impl Databases {
    /// Reads the databases of the tree.
    pub(crate) fn read<S: ContentStore>(files: &mut Files<'_, S>) -> Result<Databases> {
        let mut table = |path: &'static str| -> Result<Option<Table>> {
            files
                .read_text(path)?
                .map(|t| Table::parse(path, &t))
                .transpose()
        };
        let passwd = table(PASSWD)?.unwrap_or(Table {
            path: PASSWD,
            lines: Vec::new(),
        });
        let shadow = table(SHADOW)?;
        let group = table(GROUP)?.unwrap_or(Table {
            path: GROUP,
            lines: Vec::new(),
        });
        let gshadow = table(GSHADOW)?;
        Ok(Databases {
            passwd,
            shadow_existed: shadow.is_some(),
            shadow: shadow.unwrap_or(Table {
                path: SHADOW,
                lines: Vec::new(),
            }),
            group,
            gshadow,
        })
    }

    /// Root's password field, if there is a root entry in shadow.
    pub(crate) fn root_password(&self) -> Option<&str> {
        self.shadow.entry("root").map(|f| f[1].as_str())
    }

    /// Sets root's password to `hash` and its last-change field to `days` (kept when
    /// `None`, but never left at 0, which would force a change at login); adds a root entry
    /// first when there is none.
    pub(crate) fn set_root_password(&mut self, hash: &str, days: Option<i64>) {
        match self.shadow.entry_mut("root") {
            Some(fields) => {
                // name:password:lastchg:min:max:warn:inactive:expire:reserved
                fields.resize(fields.len().max(9), String::new());
                fields[1] = hash.to_owned();
                match days {
                    Some(d) => fields[2] = d.to_string(),
                    None if fields[2] == "0" => fields[2].clear(),
                    None => {}
                }
            }
            None => {
                let days = days.map(|d| d.to_string()).unwrap_or_default();
                let line = format!("root:{hash}:{days}:0:99999:7:::");
                let fields = line.split(':').map(str::to_owned).collect();
                self.shadow.lines.insert(0, Line::Entry(fields));
            }
        }
    }

    /// Adds `user` with a group of its own name, to every database; joins the first admin
    /// group the image has. Its name must be new to all four files; its ids are the lowest
    /// free in `user.range` (the group's the same as the user's when free).
    pub(crate) fn add_user(&mut self, user: &NewUser<'_>) -> Result<Added> {
        let name = user.name;
        check_user_name(name)?;
        let collision = |path: &str, what: String| Error::Collision {
            name: name.to_owned(),
            path: path.to_owned(),
            what,
        };
        if let Some(f) = self.passwd.entry(name) {
            return Err(collision(PASSWD, format!("a user {name} (uid {})", f[2])));
        }
        if self.shadow.entry(name).is_some() {
            return Err(collision(SHADOW, format!("an entry for {name}")));
        }
        if let Some(f) = self.group.entry(name) {
            return Err(collision(GROUP, format!("a group {name} (gid {})", f[2])));
        }
        if self
            .gshadow
            .as_ref()
            .is_some_and(|g| g.entry(name).is_some())
        {
            return Err(collision(GSHADOW, format!("an entry for {name}")));
        }
        let (min, max) = user.range;
        let used_uids: Vec<u32> = self.passwd.ids(2).collect();
        let used_gids: Vec<u32> = self.group.ids(2).collect();
        let uid = (min..=max)
            .find(|id| !used_uids.contains(id))
            .ok_or_else(|| collision(PASSWD, format!("every uid from {min} to {max}")))?;
        let gid = if used_gids.contains(&uid) {
            (min..=max)
                .find(|id| !used_gids.contains(id))
                .ok_or_else(|| collision(GROUP, format!("every gid from {min} to {max}")))?
        } else {
            uid
        };
        let home = format!("/home/{name}");
        let fields = |text: String| text.split(':').map(str::to_owned).collect::<Vec<_>>();
        self.passwd.push(fields(format!(
            "{name}:x:{uid}:{gid}::{home}:{}",
            user.shell
        )));
        let days = user.days.map(|d| d.to_string()).unwrap_or_default();
        let hash = user.hash.as_deref().unwrap_or("*");
        self.shadow
            .push(fields(format!("{name}:{hash}:{days}:0:99999:7:::")));
        self.group.push(fields(format!("{name}:x:{gid}:")));
        if let Some(gshadow) = &mut self.gshadow {
            gshadow.push(fields(format!("{name}:!::")));
        }
        let admin = ADMIN_GROUPS
            .iter()
            .find(|g| self.group.entry(g).is_some())
            .map(|g| g.to_string());
        if let Some(admin) = &admin {
            join(self.group.entry_mut(admin), 3, name);
            if let Some(gshadow) = &mut self.gshadow {
                join(gshadow.entry_mut(admin), 3, name);
            }
        }
        Ok(Added {
            account: Account { uid, gid, home },
            admin,
        })
    }

    /// Writes the databases back (passwd, group and gshadow only when `users_changed`),
    /// keeping each existing file's mode and owner; a new shadow is 0640 root:shadow when the
    /// image has a shadow group, else 0600 root:root.
    pub(crate) fn write<S: ContentStore>(
        &self,
        files: &mut Files<'_, S>,
        users_changed: bool,
    ) -> Result<()> {
        let keep = |files: &mut Files<'_, S>, path: &str, mode: u16| {
            files.file_meta(path).unwrap_or_else(|| files.root(mode))
        };
        if users_changed {
            let meta = keep(files, PASSWD, 0o644);
            files.write(PASSWD, meta, self.passwd.render().as_bytes())?;
            let meta = keep(files, GROUP, 0o644);
            files.write(GROUP, meta, self.group.render().as_bytes())?;
            if let Some(gshadow) = &self.gshadow {
                let meta = keep(files, GSHADOW, 0o640);
                files.write(GSHADOW, meta, gshadow.render().as_bytes())?;
            }
        }
        let meta = match files.file_meta(SHADOW) {
            Some(meta) if self.shadow_existed => meta,
            _ => {
                let shadow_gid = self.group.entry("shadow").and_then(|f| f[2].parse().ok());
                match shadow_gid {
                    Some(gid) => files.meta(0o640, 0, gid),
                    None => files.root(0o600),
                }
            }
        };
        files.write(SHADOW, meta, self.shadow.render().as_bytes())
    }
}

/// Adds `name` to the comma-separated member list in field `field` of `entry`.
fn join(entry: Option<&mut Vec<String>>, field: usize, name: &str) {
    let Some(fields) = entry else { return };
    let members = &mut fields[field];
    if !members.split(',').any(|m| m == name) {
        if !members.is_empty() {
            members.push(',');
        }
        members.push_str(name);
    }
}

/// Days since the epoch at `seconds`, for shadow's last-change field; `None` before 1970.
pub(crate) fn days(seconds: i64) -> Option<i64> {
    (seconds > 0).then_some(seconds / SECONDS_PER_DAY)
}

/// The id range for new users from the image's /etc/login.defs.
pub(crate) fn new_id_range<S: ContentStore>(files: &mut Files<'_, S>) -> Result<(u32, u32)> {
    Ok(id_range(&files.read_text(LOGIN_DEFS)?.unwrap_or_default()))
}

/// The shell a new user gets: the first of [`SHELLS`] the image has.
pub(crate) fn shell<S: ContentStore>(files: &mut Files<'_, S>) -> &'static str {
    files.first(SHELLS).unwrap_or("/bin/sh")
}

/// Lets `name` use sudo without a password: `/etc/sudoers.d/NAME` (0440, as sudo requires
/// of its drop-ins), when the image has sudo; a warning when it has not.
pub(crate) fn passwordless_sudo<S: ContentStore>(
    files: &mut Files<'_, S>,
    name: &str,
) -> Result<Outcome> {
    let mut out = Outcome::default();
    if files.first(SUDO).is_none() {
        out.warn(format!(
            "no sudo in the image: {name} cannot become root (install sudo for Vagrant's \
             provisioners)"
        ));
        return Ok(out);
    }
    if !files.exists(SUDOERS_D) {
        let meta = files.root(0o750);
        files.mkdir(SUDOERS_D, meta, false)?;
    }
    // User names are checked: letters, digits, `_` and `-`, which sudo reads as a file name
    // in sudoers.d (it skips names with a dot) and as a user in the rule.
    let path = format!("{SUDOERS_D}/{name}");
    let meta = files.root(0o440);
    files.write(
        &path,
        meta,
        format!("{name} ALL=(ALL) NOPASSWD: ALL\n").as_bytes(),
    )?;
    out.change(format!("sudo without a password for {name} ({path})"));
    Ok(out)
}

/// Makes `account`'s home directory (0700), with a copy of /etc/skel, owned by the user.
pub(crate) fn make_home<S: ContentStore>(
    files: &mut Files<'_, S>,
    account: &Account,
) -> Result<()> {
    let home = &account.home;
    let parent = home.rsplit_once('/').map_or("/", |(p, _)| p);
    if !parent.is_empty() && !files.exists(parent) {
        let meta = files.root(0o755);
        files.mkdir(parent, meta, false)?;
    }
    let meta = files.meta(0o700, account.uid, account.gid);
    files.mkdir(home, meta, true)?;
    copy_skel(files, SKEL, home, account, 0)
}

fn copy_skel<S: ContentStore>(
    files: &mut Files<'_, S>,
    from: &str,
    to: &str,
    account: &Account,
    depth: usize,
) -> Result<()> {
    if depth > MAX_SKEL_DEPTH {
        return Ok(());
    }
    for name in files.list(from) {
        let (src, dst) = (format!("{from}/{name}"), format!("{to}/{name}"));
        match files.kind(&src) {
            Some(Kind::Dir(mode)) => {
                let meta = files.meta(mode, account.uid, account.gid);
                files.mkdir(&dst, meta, true)?;
                copy_skel(files, &src, &dst, account, depth + 1)?;
            }
            Some(Kind::File(mode)) => {
                let content = files.read(&src)?.unwrap_or_default();
                let meta = files.meta(mode, account.uid, account.gid);
                files.write(&dst, meta, &content)?;
            }
            Some(Kind::Symlink(target)) => files.symlink(&dst, &target)?,
            Some(Kind::Other) | None => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD_TEXT: &str = "root:x:0:0:root:/root:/bin/bash\n\
                               daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
                               bob:x:1000:1000::/home/bob:/bin/bash\n";
    const SHADOW_TEXT: &str = "root:*:19000:0:99999:7:::\nbob:!:19000:0:99999:7:::\n";
    const GROUP_TEXT: &str = "root:x:0:\nsudo:x:27:bob\nshadow:x:42:\nbob:x:1000:\nstaff:x:1001:\n";
    const GSHADOW_TEXT: &str = "root:*::\nsudo:*::bob\nbob:!::\nstaff:!::\n";

    fn databases() -> Databases {
        Databases {
            passwd: Table::parse(PASSWD, PASSWD_TEXT).unwrap(),
            shadow: Table::parse(SHADOW, SHADOW_TEXT).unwrap(),
            group: Table::parse(GROUP, GROUP_TEXT).unwrap(),
            gshadow: Some(Table::parse(GSHADOW, GSHADOW_TEXT).unwrap()),
            shadow_existed: true,
        }
    }

    fn alice(hash: Option<&str>) -> NewUser<'static> {
        NewUser {
            name: "alice",
            hash: hash.map(str::to_owned),
            days: Some(19675),
            shell: "/bin/bash",
            range: (1000, 60000),
        }
    }

    #[test]
    fn round_trip_keeps_every_line() {
        let text = "root:x:0:0:root:/root:/bin/bash\n\n# a comment\n+@nis::::::\n";
        assert_eq!(Table::parse(PASSWD, text).unwrap().render(), text);
        let shadow = "root:*:1\nold:!:1:0:99999:7:::\n";
        assert_eq!(Table::parse(SHADOW, shadow).unwrap().render(), shadow);
    }

    #[test]
    fn malformed_lines_are_errors_naming_file_and_line() {
        let cases = [
            (
                PASSWD,
                "root:x:0:0:root:/root:/bin/bash\nbroken:x:1\n",
                2,
                "3 fields",
            ),
            (
                PASSWD,
                "root:x:zero:0:root:/root:/bin/bash\n",
                1,
                "not an id",
            ),
            (PASSWD, ":x:0:0::/:/bin/sh\n", 1, "empty name"),
            (GROUP, "root:x:0:\nsudo:x:27\n", 2, "expected 4"),
            (GROUP, "root:x:-1:\n", 1, "not an id"),
            (GSHADOW, "root:*:\n", 1, "expected 4"),
            (SHADOW, "root\n", 1, "at least 2"),
        ];
        for (path, text, line, why) in cases {
            let err = Table::parse(path, text).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!("{path} line {line}: ")) && msg.contains(why),
                "{path} {text:?}: {msg}"
            );
        }
    }

    #[test]
    fn new_user_gets_free_ids_its_group_and_sudo() {
        let mut db = databases();
        let added = db.add_user(&alice(Some("$6$s$h"))).unwrap();
        // uid 1000 is bob's, gid 1001 is staff's: the lowest free of each.
        assert_eq!(
            added,
            Added {
                account: Account {
                    uid: 1001,
                    gid: 1002,
                    home: "/home/alice".into()
                },
                admin: Some("sudo".into()),
            }
        );
        assert_eq!(
            db.passwd.render(),
            format!("{PASSWD_TEXT}alice:x:1001:1002::/home/alice:/bin/bash\n")
        );
        assert_eq!(
            db.shadow.render(),
            format!("{SHADOW_TEXT}alice:$6$s$h:19675:0:99999:7:::\n")
        );
        assert_eq!(
            db.group.render(),
            "root:x:0:\nsudo:x:27:bob,alice\nshadow:x:42:\nbob:x:1000:\nstaff:x:1001:\nalice:x:1002:\n"
        );
        assert_eq!(
            db.gshadow.as_ref().unwrap().render(),
            "root:*::\nsudo:*::bob,alice\nbob:!::\nstaff:!::\nalice:!::\n"
        );
    }

    #[test]
    fn same_gid_as_uid_when_free_wheel_when_no_sudo() {
        let mut db = Databases {
            passwd: Table::parse(PASSWD, "root:x:0:0::/root:/bin/sh\n").unwrap(),
            shadow: Table::parse(SHADOW, "").unwrap(),
            group: Table::parse(GROUP, "root:x:0:\nwheel:x:10:\n").unwrap(),
            gshadow: None,
            shadow_existed: false,
        };
        let added = db.add_user(&alice(None)).unwrap();
        assert_eq!((added.account.uid, added.account.gid), (1000, 1000));
        assert_eq!(added.admin.as_deref(), Some("wheel"));
        assert!(db.group.render().contains("wheel:x:10:alice\n"));
        // No password: `*`, which sshd accepts for key logins (`!` would lock it).
        assert_eq!(db.shadow.render(), "alice:*:19675:0:99999:7:::\n");
        assert!(db.gshadow.is_none());
    }

    #[test]
    fn collisions_are_refused_and_nothing_changes() {
        for (passwd, shadow, group, gshadow, file) in [
            ("alice:x:5000:5000::/h:/bin/sh\n", "", "", "", PASSWD),
            ("", "alice:*:1::::::\n", "", "", SHADOW),
            ("", "", "alice:x:5000:\n", "", GROUP),
            ("", "", "", "alice:!::\n", GSHADOW),
        ] {
            let mut db = Databases {
                passwd: Table::parse(PASSWD, passwd).unwrap(),
                shadow: Table::parse(SHADOW, shadow).unwrap(),
                group: Table::parse(GROUP, group).unwrap(),
                gshadow: Some(Table::parse(GSHADOW, gshadow).unwrap()),
                shadow_existed: true,
            };
            let before = (db.passwd.clone(), db.group.clone(), db.shadow.clone());
            let err = db.add_user(&alice(None)).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with(&format!("--user alice: {file} already has")),
                "{err}"
            );
            assert_eq!(before, (db.passwd, db.group, db.shadow));
        }
        // Existing users are never touched: root is a collision too.
        let mut db = databases();
        let mut root = alice(None);
        root.name = "root";
        assert!(matches!(db.add_user(&root), Err(Error::Collision { .. })));
        // Every id in the range taken.
        let mut db = databases();
        let mut narrow = alice(None);
        narrow.range = (1000, 1000);
        let err = db.add_user(&narrow).unwrap_err();
        assert!(
            err.to_string().contains("every uid from 1000 to 1000"),
            "{err}"
        );
    }

    #[test]
    fn user_names() {
        for good in ["alice", "_svc", "a-b_c9"] {
            check_user_name(good).unwrap();
        }
        for bad in ["", "Alice", "9lives", "a b", "a:b", "a\n", &"a".repeat(33)] {
            check_user_name(bad).unwrap_err();
        }
    }

    #[test]
    fn login_defs_range() {
        assert_eq!(id_range(""), (1000, 60000));
        assert_eq!(
            id_range("# c\nUID_MIN\t\t 500\nUID_MAX 999\nGID_MIN 1\n"),
            (500, 999)
        );
    }

    #[test]
    fn root_password_replaces_the_field_keeps_the_rest() {
        let mut db = databases();
        db.set_root_password("$6$s$h", Some(19500));
        assert_eq!(
            db.shadow.render(),
            "root:$6$s$h:19500:0:99999:7:::\nbob:!:19000:0:99999:7:::\n"
        );
        db.set_root_password("$6$s$i", None);
        assert!(db.shadow.render().starts_with("root:$6$s$i:19500:"));
        // Last change 0 would force a password change at the first login.
        let mut db = databases();
        db.shadow = Table::parse(SHADOW, "root:!:0::::::").unwrap();
        db.set_root_password("$6$s$h", None);
        assert_eq!(db.shadow.render(), "root:$6$s$h:::::::\n");
        // No root entry: one is added first.
        let mut db = databases();
        db.shadow = Table::parse(SHADOW, "bin:*:1:0:99999:7:::\n").unwrap();
        db.set_root_password("$6$s$h", Some(2));
        assert_eq!(
            db.shadow.render(),
            "root:$6$s$h:2:0:99999:7:::\nbin:*:1:0:99999:7:::\n"
        );
    }
}
