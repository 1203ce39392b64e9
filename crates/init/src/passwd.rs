//! The image config's `User` (`name`, `uid`, `name:group`, `uid:gid`, any mix) resolved
//! through the image's `/etc/passwd` and `/etc/group`, as container runtimes do: a name must
//! be there, a number need not be (its group is then 0 and its home `/`); supplementary
//! groups are the groups that list the user.

/// Who the command runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserIds {
    /// User ID.
    pub uid: u32,
    /// Primary group ID.
    pub gid: u32,
    /// Supplementary group IDs (the primary one first).
    pub groups: Vec<u32>,
    /// Home directory, for `HOME` when the image's environment has none.
    pub home: String,
}

/// A `User` that cannot be resolved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    /// A user name not in /etc/passwd.
    #[error("user {0:?} is not in the image's /etc/passwd")]
    NoSuchUser(String),
    /// A group name not in /etc/group.
    #[error("group {0:?} is not in the image's /etc/group")]
    NoSuchGroup(String),
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        Some(PasswdEntry {
            name: fields.first()?,
            uid: fields.get(2)?.parse().ok()?,
            gid: fields.get(3)?.parse().ok()?,
            home: fields.get(5).copied().unwrap_or("/"),
        })
    })
}

fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    text.lines().filter_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        Some(GroupEntry {
            name: fields.first()?,
            gid: fields.get(2)?.parse().ok()?,
            members: fields
                .get(3)
                .map(|m| m.split(',').filter(|s| !s.is_empty()).collect())
                .unwrap_or_default(),
        })
    })
}

/// Resolves `user` (empty: root) with the texts of `/etc/passwd` and `/etc/group` (empty when
/// the image has none).
pub fn resolve_user(user: &str, passwd: &str, group: &str) -> Result<UserIds, UserError> {
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let entry = passwd_entries(passwd).find(|e| match user_part.parse::<u32>() {
        Ok(uid) => e.uid == uid,
        Err(_) => e.name == user_part,
    });
    let (uid, mut gid, home, name) = match (entry, user_part.parse::<u32>()) {
        (Some(e), _) => (e.uid, e.gid, e.home.to_owned(), Some(e.name)),
        (None, Ok(uid)) => (uid, 0, "/".to_owned(), None),
        (None, Err(_)) => return Err(UserError::NoSuchUser(user_part.to_owned())),
    };
    let explicit_group = group_part.filter(|g| !g.is_empty());
    if let Some(group_name) = explicit_group {
        gid = match group_name.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group_entries(group)
                .find(|g| g.name == group_name)
                .map(|g| g.gid)
                .ok_or_else(|| UserError::NoSuchGroup(group_name.to_owned()))?,
        };
    }
    let mut groups = vec![gid];
    // An explicit group replaces the user's groups, as `docker run --user u:g` does.
    if let (Some(name), None) = (name, explicit_group) {
        for g in group_entries(group) {
            if g.members.contains(&name) && !groups.contains(&g.gid) {
                groups.push(g.gid);
            }
        }
    }
    Ok(UserIds {
        uid,
        gid,
        groups,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n\
                          broken line\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n";
    const GROUP: &str = "root:x:0:\napp:x:1000:\nstaff:x:50:app,other\naudio:x:29:app\n";

    fn ids(uid: u32, gid: u32, groups: &[u32], home: &str) -> UserIds {
        UserIds {
            uid,
            gid,
            groups: groups.to_vec(),
            home: home.into(),
        }
    }

    #[test]
    fn names_and_numbers_as_runtimes_read_them() {
        let r = |u: &str| resolve_user(u, PASSWD, GROUP);
        assert_eq!(r("").unwrap(), ids(0, 0, &[0], "/root"));
        assert_eq!(
            r("app").unwrap(),
            ids(1000, 1000, &[1000, 50, 29], "/home/app")
        );
        assert_eq!(
            r("1000").unwrap(),
            ids(1000, 1000, &[1000, 50, 29], "/home/app")
        );
        assert_eq!(r("app:staff").unwrap(), ids(1000, 50, &[50], "/home/app"));
        assert_eq!(r("app:7").unwrap(), ids(1000, 7, &[7], "/home/app"));
        assert_eq!(r("4242").unwrap(), ids(4242, 0, &[0], "/"));
        assert_eq!(r("4242:4343").unwrap(), ids(4242, 4343, &[4343], "/"));
        assert_eq!(
            r("ghost").unwrap_err(),
            UserError::NoSuchUser("ghost".into())
        );
        assert_eq!(
            r("app:ghosts").unwrap_err(),
            UserError::NoSuchGroup("ghosts".into())
        );
        assert_eq!(
            resolve_user("65534", "", "").unwrap(),
            ids(65534, 0, &[0], "/"),
            "no passwd at all (FROM scratch)"
        );
    }
}
