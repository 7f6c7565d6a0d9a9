//! Whether nginx's worker processes can read a directory we publish validation files in: when
//! nginx's master runs as root its workers run as the `user` of nginx.conf (`nobody` by
//! default), and a webroot under a 0700 directory (root's home, `mktemp -d`) answers 403. The
//! preflight uses this to say exactly that, with the fix, instead of guessing at a CDN.
//!
//! Not here: serving or fetching the files ([`crate::publish::http`]).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Group, User};

use crate::nginx::tree::Config;

/// The user nginx's workers run as, with the groups that give it access.
#[derive(Debug, Clone)]
pub struct WorkerUser {
    /// The user's name, as nginx.conf gives it (or nginx's default).
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary group and supplementary groups.
    pub gids: Vec<u32>,
}

/// The user nginx's workers run as when it differs from ours: only when we are root (nginx
/// switches users only when its master runs as root) and the `user` directive (default
/// `nobody`) names someone else. `None` when they run as root or the user is unknown here.
pub fn worker_user(config: &Config) -> Option<WorkerUser> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let main = config.main();
    let given = (main.directives().iter())
        .find(|d| d.is("user", &main.bytes))
        .map(|d| {
            let args = main.args(d);
            let text = |i: usize| args.get(i).map(|w| w.text(&main.bytes));
            (text(0).unwrap_or_default(), text(1))
        });
    let (name, group) = match given {
        Some((name, group)) => {
            let group = group.unwrap_or_else(|| name.clone());
            (name, group)
        }
        None => ("nobody".to_string(), "nogroup".to_string()),
    };
    let user = User::from_name(&name).ok().flatten()?;
    if user.uid.is_root() {
        return None;
    }
    let gid = Group::from_name(&group)
        .ok()
        .flatten()
        .map_or(user.gid, |g| g.gid);
    let mut gids: Vec<u32> = vec![gid.as_raw()];
    if let Ok(c_name) = std::ffi::CString::new(name.clone())
        && let Ok(list) = nix::unistd::getgrouplist(&c_name, gid)
    {
        gids.extend(list.iter().map(|g: &Gid| g.as_raw()));
    }
    Some(WorkerUser {
        name,
        uid: user.uid.as_raw(),
        gids,
    })
}

/// The first directory on the way to `dir` (itself included) that `user` may not enter, with
/// its mode and owner; `None` when every existing one lets it through.
pub fn blocked_at(dir: &Path, user: &WorkerUser) -> Option<(PathBuf, u32, u32)> {
    let mut ancestors: Vec<&Path> = dir.ancestors().collect();
    ancestors.reverse();
    for a in ancestors {
        let Ok(meta) = std::fs::metadata(a) else {
            continue;
        };
        let mode = meta.mode() & 0o7777;
        let bit = if meta.uid() == user.uid {
            0o100
        } else if user.gids.contains(&meta.gid()) {
            0o010
        } else {
            0o001
        };
        if mode & bit == 0 {
            return Some((a.to_path_buf(), mode, meta.uid()));
        }
    }
    None
}

/// Why nginx's workers cannot serve files from `dir`, with the fix; `None` when they can (as
/// far as permissions tell).
pub fn explain(dir: &Path, user: &WorkerUser) -> Option<String> {
    let (blocked, mode, owner) = blocked_at(dir, user)?;
    let owner = User::from_uid(nix::unistd::Uid::from_raw(owner))
        .ok()
        .flatten()
        .map_or(owner.to_string(), |u| u.name);
    Some(format!(
        "nginx's workers run as `{}` and cannot enter {} (mode {mode:04o}, owner {owner}), so \
         they cannot read {} (error.log: \"(13: Permission denied)\"); let them in with \
         `chmod o+x {}` (or move the site somewhere they can read, or set nginx's `user` to \
         one who can)",
        user.name,
        blocked.display(),
        dir.display(),
        blocked.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_directory_closed_to_others_blocks_a_user_who_is_neither_owner_nor_group() {
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("www/site");
        std::fs::create_dir_all(&inner).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let owner = std::fs::metadata(dir.path()).unwrap().uid();
        let stranger = WorkerUser {
            name: "stranger".into(),
            uid: owner + 4242,
            gids: vec![4242_4242],
        };
        let (at, mode, _) = blocked_at(&inner, &stranger).unwrap();
        assert_eq!((at.as_path(), mode), (dir.path(), 0o700));
        assert!(explain(&inner, &stranger).unwrap().contains("chmod o+x"));
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        assert!(blocked_at(&inner, &stranger).is_none());
        let me = WorkerUser {
            name: "me".into(),
            uid: owner,
            gids: vec![],
        };
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(blocked_at(&inner, &me).is_none());
    }
}
