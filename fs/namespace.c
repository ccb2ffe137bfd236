/*
 * namespace.c - the namespace of the filesystem core: creating, linking, removing and
 * renaming names, the trash, directories, xattrs and POSIX ACLs (see core.h for the
 * contract and the lock order, core_int.h for what it shares with core.c and data.c).
 */
#include "fs/core.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <time.h>

#include "fs/acl.h"
#include "fs/core_int.h"
#include "fs/log.h"
#include "fs/meta.h"

/* ---------- namespace ---------- */

/* Reads a directory's attributes inside a transaction and checks it is one. */
static int get_dir(struct rfs_fs *fs, uint64_t ino, struct rfs_attr *a)
{
	int rc = rfs_meta_get_attr(fs->meta, ino, a);
	if (rc == 0 && !S_ISDIR(a->mode))
		rc = -ENOTDIR;
	return rc;
}

static void touch_dir(struct rfs_attr *dir, int64_t now)
{
	dir->mtime = now;
	dir->ctime = now;
}

static int acl_inherit(struct rfs_fs *fs, uint64_t parent, struct rfs_attr *a, uint32_t umask, struct rfs_buf *access,
		       struct rfs_buf *dflt);

/* Creates an inode and its entry in one transaction. */
static int create_node(struct rfs_fs *fs, uint64_t parent, const char *name, uint32_t mode, uint64_t rdev,
		       uint32_t umask, uint32_t uid, uint32_t gid, const char *target, struct rfs_attr *out)
{
	/* the new node's ACLs when the parent has a default ACL (set after its inode row) */
	struct rfs_buf access = {0}, dflt = {0};
	int rc = core_check_writable(fs);
	if (rc < 0)
		return rc;
	if (strlen(name) > NAME_MAX)
		return -ENAMETOOLONG;
	if (parent == RFS_TRASH_INO || (parent == RFS_ROOT_INO && core_trash_on(fs) && !strcmp(name, RFS_TRASH_NAME)))
		return parent == RFS_TRASH_INO ? -EPERM : -EEXIST;
	rc = rfs_meta_begin(fs->meta);
	if (rc < 0)
		return rc;
	struct rfs_attr dir, a;
	uint64_t existing;
	rc = get_dir(fs, parent, &dir);
	if (rc < 0)
		goto fail;
	if (dir.nlink == 0) {
		rc = -ENOENT; /* the directory was removed */
		goto fail;
	}
	if (rfs_meta_lookup(fs->meta, parent, name, &existing) == 0) {
		rc = -EEXIST;
		goto fail;
	}
	memset(&a, 0, sizeof(a));
	rc = rfs_meta_alloc_id(fs->meta, &a.ino);
	if (rc < 0)
		goto fail;
	int64_t now = rfs_now_ns();
	a.mode = mode;
	a.uid = uid;
	/* BSD group semantics when the parent is setgid, as Linux does */
	a.gid = (dir.mode & S_ISGID) ? dir.gid : gid;
	if ((dir.mode & S_ISGID) && S_ISDIR(mode))
		a.mode |= S_ISGID;
	a.nlink = S_ISDIR(mode) ? 2 : 1;
	a.rdev = rdev;
	a.atime = a.mtime = a.ctime = now;
	if (target)
		a.size = strlen(target);
	else
		rc = acl_inherit(fs, parent, &a, umask, &access, &dflt);
	if (rc == 0)
		rc = rfs_meta_put_attr(fs->meta, &a);
	if (rc == 0 && target)
		rc = rfs_meta_set_symlink(fs->meta, a.ino, target);
	if (rc == 0 && access.len)
		rc = rfs_meta_xattr_set(fs->meta, a.ino, RFS_ACL_ACCESS, access.data, access.len, 0);
	if (rc == 0 && dflt.len && S_ISDIR(mode))
		rc = rfs_meta_xattr_set(fs->meta, a.ino, RFS_ACL_DEFAULT, dflt.data, dflt.len, 0);
	if (rc == 0)
		rc = rfs_meta_add_dentry(fs->meta, parent, name, a.ino);
	if (rc < 0)
		goto fail;
	touch_dir(&dir, now);
	if (S_ISDIR(mode))
		dir.nlink++;
	rc = rfs_meta_put_attr(fs->meta, &dir);
	if (rc < 0)
		goto fail;
	rc = rfs_meta_commit(fs->meta);
	if (rc == 0)
		*out = a;
	rfs_buf_free(&access);
	rfs_buf_free(&dflt);
	return rc;
fail:
	rfs_meta_rollback(fs->meta);
	rfs_buf_free(&access);
	rfs_buf_free(&dflt);
	return rc;
}

int rfs_mknod(struct rfs_fs *fs, uint64_t parent, const char *name, uint32_t mode, uint64_t rdev, uint32_t umask,
	      uint32_t uid, uint32_t gid, struct stat *out)
{
	struct rfs_attr a;
	if (!S_ISREG(mode) && !S_ISDIR(mode) && !S_ISCHR(mode) && !S_ISBLK(mode) && !S_ISFIFO(mode) && !S_ISSOCK(mode))
		return -EINVAL;
	int rc = create_node(fs, parent, name, mode, rdev, umask, uid, gid, NULL, &a);
	if (rc == 0)
		core_attr_to_stat(&a, fs->format.block_size, out);
	return rc;
}

int rfs_create(struct rfs_fs *fs, uint64_t parent, const char *name, uint32_t mode, int flags, uint32_t umask,
	       uint32_t uid, uint32_t gid, struct stat *out)
{
	struct rfs_attr a;
	int rc = create_node(fs, parent, name, S_IFREG | (mode & 07777), 0, umask, uid, gid, NULL, &a);
	if (rc < 0)
		return rc;
	core_attr_to_stat(&a, fs->format.block_size, out);
	return rfs_open(fs, a.ino, flags & ~O_TRUNC);
}

int rfs_symlink(struct rfs_fs *fs, uint64_t parent, const char *name, const char *target, uint32_t uid, uint32_t gid,
		struct stat *out)
{
	struct rfs_attr a;
	if (strlen(target) >= PATH_MAX)
		return -ENAMETOOLONG;
	int rc = create_node(fs, parent, name, S_IFLNK | 0777, 0, 0, uid, gid, target, &a);
	if (rc == 0)
		core_attr_to_stat(&a, fs->format.block_size, out);
	return rc;
}

int rfs_readlink(struct rfs_fs *fs, uint64_t ino, char *buf, size_t len)
{
	rfs_meta_lock(fs->meta);
	int rc = rfs_meta_get_symlink(fs->meta, ino, buf, len);
	rfs_meta_unlock(fs->meta);
	return rc == -ENOENT ? -EINVAL : rc;
}

int rfs_link(struct rfs_fs *fs, uint64_t ino, uint64_t newparent, const char *newname, struct stat *out)
{
	int rc = core_check_writable(fs);
	if (rc < 0)
		return rc;
	if (strlen(newname) > NAME_MAX)
		return -ENAMETOOLONG;
	if (newparent == RFS_TRASH_INO || ino == RFS_TRASH_INO)
		return -EPERM;
	rc = rfs_meta_begin(fs->meta);
	if (rc < 0)
		return rc;
	struct rfs_attr a, dir;
	uint64_t existing;
	rc = rfs_meta_get_attr(fs->meta, ino, &a);
	if (rc < 0)
		goto fail;
	if (S_ISDIR(a.mode)) {
		rc = -EPERM;
		goto fail;
	}
	rc = get_dir(fs, newparent, &dir);
	if (rc < 0)
		goto fail;
	if (rfs_meta_lookup(fs->meta, newparent, newname, &existing) == 0) {
		rc = -EEXIST;
		goto fail;
	}
	int64_t now = rfs_now_ns();
	a.nlink++;
	a.ctime = now;
	touch_dir(&dir, now);
	rc = rfs_meta_add_dentry(fs->meta, newparent, newname, ino);
	if (rc == 0)
		rc = rfs_meta_put_attr(fs->meta, &a);
	if (rc == 0)
		rc = rfs_meta_put_attr(fs->meta, &dir);
	if (rc < 0)
		goto fail;
	rc = rfs_meta_commit(fs->meta);
	if (rc < 0)
		return rc;
	/* re-read: a flush may have published newer size/mtime since our transaction */
	return rfs_getattr(fs, ino, out);
fail:
	rfs_meta_rollback(fs->meta);
	return rc;
}

/* Drops an inode's data and row once its last name and last open handle are gone.
 * Runs inside a transaction. */
static int drop_inode_locked(struct rfs_fs *fs, struct rfs_attr *a)
{
	if (a->nlink > 0 || core_node_is_open(fs, a->ino))
		return rfs_meta_put_attr(fs->meta, a);
	return rfs_meta_delete_inode(fs->meta, a->ino);
}

static int collect_trash_cb(void *arg, const char *name, uint64_t ino, uint32_t mode, uint64_t cookie)
{
	(void)name;
	(void)mode;
	(void)cookie;
	struct {
		uint64_t v[256];
		size_t n;
	} *l = arg;
	if (l->n >= 256)
		return 1;
	l->v[l->n++] = ino;
	return 0;
}

/* Removes one name. dir_expected: rmdir (1) or unlink (0). Runs inside a transaction;
 * *gone receives the inode number when its data should be discarded. */
static int remove_name_locked(struct rfs_fs *fs, uint64_t parent, const char *name, int dir_expected,
			      struct rfs_attr *pdir, int64_t now, uint64_t *gone)
{
	uint64_t ino;
	struct rfs_attr a;
	int rc = rfs_meta_lookup(fs->meta, parent, name, &ino);
	if (rc < 0)
		return rc;
	rc = rfs_meta_get_attr(fs->meta, ino, &a);
	if (rc < 0)
		return rc;
	if (dir_expected && !S_ISDIR(a.mode))
		return -ENOTDIR;
	if (!dir_expected && S_ISDIR(a.mode))
		return -EISDIR;
	if (S_ISDIR(a.mode)) {
		rc = rfs_meta_dir_is_empty(fs->meta, ino);
		if (rc < 0)
			return rc;
		if (!rc)
			return -ENOTEMPTY;
		a.nlink = 0;
		pdir->nlink--;
	} else {
		a.nlink--;
	}
	a.ctime = now;
	touch_dir(pdir, now);
	rc = rfs_meta_del_dentry(fs->meta, parent, name);
	if (rc == 0 && a.nlink == 0 && S_ISREG(a.mode) && core_trash_on(fs)) {
		/* the last name of a file: keep it in the trash (still nlink 0, as POSIX says) */
		char tname[NAME_MAX + 1], stamp[32];
		time_t t = (time_t)(now / 1000000000);
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%S", &tm);
		snprintf(tname, sizeof(tname), "%.200s.deleted-%s-%06llx", name, stamp,
			 (unsigned long long)(ino & 0xffffff));
		rc = rfs_meta_trash_add(fs->meta, ino, tname, parent, now);
		if (rc == 0)
			rc = rfs_meta_put_attr(fs->meta, &a);
		return rc;
	}
	if (rc == 0)
		rc = drop_inode_locked(fs, &a);
	if (rc == 0 && a.nlink == 0 && !core_node_is_open(fs, ino))
		*gone = ino;
	return rc;
}

/* Deletes a trashed file for good (expiry, or unlink inside .trash). In a transaction. */
static int trash_delete_locked(struct rfs_fs *fs, uint64_t ino, uint64_t *gone)
{
	int rc = rfs_meta_trash_remove(fs->meta, ino);
	if (rc < 0)
		return rc;
	if (core_node_is_open(fs, ino))
		return 0; /* an open file goes when its last handle closes */
	rc = rfs_meta_delete_inode(fs->meta, ino);
	if (rc == 0)
		*gone = ino;
	return rc;
}

/* Takes a file out of the trash under a new name. In a transaction. */
static int trash_restore_locked(struct rfs_fs *fs, const char *name, uint64_t newparent, const char *newname,
				int64_t now)
{
	uint64_t ino, existing;
	struct rfs_attr a, dir;
	int rc = rfs_meta_trash_lookup(fs->meta, name, &ino);
	if (rc == 0)
		rc = get_dir(fs, newparent, &dir);
	if (rc == 0 && rfs_meta_lookup(fs->meta, newparent, newname, &existing) == 0)
		rc = -EEXIST; /* restoring never replaces a file: move the other one away first */
	if (rc == 0)
		rc = rfs_meta_get_attr(fs->meta, ino, &a);
	if (rc < 0)
		return rc;
	a.nlink = 1;
	a.ctime = now;
	touch_dir(&dir, now);
	rc = rfs_meta_trash_remove(fs->meta, ino);
	if (rc == 0)
		rc = rfs_meta_add_dentry(fs->meta, newparent, newname, ino);
	if (rc == 0)
		rc = rfs_meta_put_attr(fs->meta, &a);
	if (rc == 0)
		rc = rfs_meta_put_attr(fs->meta, &dir);
	return rc;
}

/* Ends a transaction that may have deleted an inode: rollback on error, else commit and then
 * drop the staged data of the inode that is gone (only once the deletion is durable). */
static int finish_removal(struct rfs_fs *fs, int rc, uint64_t gone)
{
	if (rc < 0) {
		rfs_meta_rollback(fs->meta);
		return rc;
	}
	rc = rfs_meta_commit(fs->meta);
	if (rc == 0 && gone)
		core_discard_staging(fs, gone);
	return rc;
}

/* Purges trash entries older than the retention. Called by the flusher thread. */
void core_purge_trash(struct rfs_fs *fs)
{
	struct hash_ino {
		uint64_t v[256];
		size_t n;
	} list = {.n = 0};
	int64_t before = rfs_now_ns() - fs->cfg.trash_seconds * 1000000000LL;
	rfs_meta_lock(fs->meta);
	rfs_meta_trash_list(fs->meta, 0, before, collect_trash_cb, &list);
	rfs_meta_unlock(fs->meta);
	for (size_t i = 0; i < list.n; i++) {
		uint64_t gone = 0;
		if (rfs_meta_begin(fs->meta) < 0)
			return;
		finish_removal(fs, trash_delete_locked(fs, list.v[i], &gone), gone);
	}
	if (list.n)
		RFS_LOG(LOG_INFO, "purged %zu expired files from the trash", list.n);
}

static int remove_name(struct rfs_fs *fs, uint64_t parent, const char *name, int dir_expected)
{
	int rc = core_check_writable(fs);
	if (rc < 0)
		return rc;
	if (parent == RFS_ROOT_INO && core_trash_on(fs) && !strcmp(name, RFS_TRASH_NAME))
		return -EPERM;
	if (parent == RFS_TRASH_INO) {
		if (dir_expected)
			return -ENOTDIR;
		uint64_t ino, gone = 0;
		rc = rfs_meta_begin(fs->meta);
		if (rc < 0)
			return rc;
		rc = rfs_meta_trash_lookup(fs->meta, name, &ino);
		if (rc == 0)
			rc = trash_delete_locked(fs, ino, &gone);
		return finish_removal(fs, rc, gone);
	}
	rc = rfs_meta_begin(fs->meta);
	if (rc < 0)
		return rc;
	struct rfs_attr dir;
	uint64_t gone = 0;
	int64_t now = rfs_now_ns();
	rc = get_dir(fs, parent, &dir);
	if (rc == 0)
		rc = remove_name_locked(fs, parent, name, dir_expected, &dir, now, &gone);
	if (rc == 0)
		rc = rfs_meta_put_attr(fs->meta, &dir);
	return finish_removal(fs, rc, gone);
}

int rfs_unlink(struct rfs_fs *fs, uint64_t parent, const char *name)
{
	return remove_name(fs, parent, name, 0);
}

int rfs_rmdir(struct rfs_fs *fs, uint64_t parent, const char *name)
{
	return remove_name(fs, parent, name, 1);
}

/* Is `ancestor` the directory `dir` or one of its ancestors? */
static int is_ancestor(struct rfs_fs *fs, uint64_t ancestor, uint64_t dir)
{
	for (int depth = 0; depth < 4096; depth++) {
		if (dir == ancestor)
			return 1;
		if (dir == RFS_ROOT_INO)
			return 0;
		uint64_t p;
		if (rfs_meta_parent_of(fs->meta, dir, &p) < 0)
			return 0;
		dir = p;
	}
	return 0;
}

int rfs_rename(struct rfs_fs *fs, uint64_t parent, const char *name, uint64_t newparent, const char *newname,
	       unsigned flags)
{
	int rc = core_check_writable(fs);
	if (rc < 0)
		return rc;
	if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL;
	if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE))
		return -EINVAL;
	if (strlen(newname) > NAME_MAX)
		return -ENAMETOOLONG;
	if (newparent == RFS_TRASH_INO || (flags & RENAME_EXCHANGE && parent == RFS_TRASH_INO))
		return -EPERM;
	if (core_trash_on(fs) && ((parent == RFS_ROOT_INO && !strcmp(name, RFS_TRASH_NAME)) ||
				  (newparent == RFS_ROOT_INO && !strcmp(newname, RFS_TRASH_NAME))))
		return -EPERM;
	if (parent == RFS_TRASH_INO) {
		rc = rfs_meta_begin(fs->meta);
		if (rc < 0)
			return rc;
		rc = trash_restore_locked(fs, name, newparent, newname, rfs_now_ns());
		if (rc < 0) {
			rfs_meta_rollback(fs->meta);
			return rc;
		}
		return rfs_meta_commit(fs->meta);
	}
	rc = rfs_meta_begin(fs->meta);
	if (rc < 0)
		return rc;
	struct rfs_attr src, dst, pdir, ndir;
	uint64_t sino, dino = 0, gone = 0;
	int64_t now = rfs_now_ns();
	int same_dir = parent == newparent;
	rc = get_dir(fs, parent, &pdir);
	if (rc == 0)
		rc = same_dir ? 0 : get_dir(fs, newparent, &ndir);
	if (rc == 0)
		rc = rfs_meta_lookup(fs->meta, parent, name, &sino);
	if (rc == 0)
		rc = rfs_meta_get_attr(fs->meta, sino, &src);
	if (rc < 0)
		goto fail;
	int have_dst = rfs_meta_lookup(fs->meta, newparent, newname, &dino) == 0;
	if (have_dst && dino == sino) {
		rc = 0; /* same inode (hard links or itself): POSIX says do nothing */
		goto fail;
	}
	if (have_dst && (flags & RENAME_NOREPLACE)) {
		rc = -EEXIST;
		goto fail;
	}
	if (!have_dst && (flags & RENAME_EXCHANGE)) {
		rc = -ENOENT;
		goto fail;
	}
	if (S_ISDIR(src.mode) && !same_dir && is_ancestor(fs, sino, newparent)) {
		rc = -EINVAL;
		goto fail;
	}
	struct rfs_attr *np = same_dir ? &pdir : &ndir;
	if (have_dst) {
		rc = rfs_meta_get_attr(fs->meta, dino, &dst);
		if (rc < 0)
			goto fail;
	}
	if (flags & RENAME_EXCHANGE) {
		if (S_ISDIR(dst.mode) && !same_dir && is_ancestor(fs, dino, parent)) {
			rc = -EINVAL;
			goto fail;
		}
		rc = rfs_meta_del_dentry(fs->meta, parent, name);
		if (rc == 0)
			rc = rfs_meta_del_dentry(fs->meta, newparent, newname);
		if (rc == 0)
			rc = rfs_meta_add_dentry(fs->meta, parent, name, dino);
		if (rc == 0)
			rc = rfs_meta_add_dentry(fs->meta, newparent, newname, sino);
		if (rc < 0)
			goto fail;
		if (!same_dir && S_ISDIR(src.mode) != S_ISDIR(dst.mode)) {
			if (S_ISDIR(src.mode)) {
				pdir.nlink--;
				ndir.nlink++;
			} else {
				pdir.nlink++;
				ndir.nlink--;
			}
		}
		dst.ctime = now;
		rc = rfs_meta_put_attr(fs->meta, &dst);
		if (rc < 0)
			goto fail;
	} else {
		if (have_dst) {
			if (S_ISDIR(src.mode) && !S_ISDIR(dst.mode)) {
				rc = -ENOTDIR;
				goto fail;
			}
			if (!S_ISDIR(src.mode) && S_ISDIR(dst.mode)) {
				rc = -EISDIR;
				goto fail;
			}
			rc = remove_name_locked(fs, newparent, newname, S_ISDIR(dst.mode), np, now, &gone);
			if (rc < 0)
				goto fail;
		}
		rc = rfs_meta_del_dentry(fs->meta, parent, name);
		if (rc == 0)
			rc = rfs_meta_add_dentry(fs->meta, newparent, newname, sino);
		if (rc < 0)
			goto fail;
		if (S_ISDIR(src.mode) && !same_dir) {
			pdir.nlink--;
			ndir.nlink++;
		}
	}
	src.ctime = now;
	touch_dir(&pdir, now);
	rc = rfs_meta_put_attr(fs->meta, &src);
	if (rc == 0)
		rc = rfs_meta_put_attr(fs->meta, &pdir);
	if (rc == 0 && !same_dir) {
		touch_dir(&ndir, now);
		rc = rfs_meta_put_attr(fs->meta, &ndir);
	}
	if (rc < 0)
		goto fail;
	return finish_removal(fs, rc, gone);
fail:
	rfs_meta_rollback(fs->meta);
	return rc;
}

/* ---------- directories ---------- */

struct readdir_ctx {
	rfs_fill_cb fill;
	void *arg;
	int full;
};

static int readdir_cb(void *arg, const char *name, uint64_t ino, uint32_t mode, uint64_t cookie)
{
	struct readdir_ctx *c = arg;
	if (c->fill(c->arg, name, ino, mode, cookie)) {
		c->full = 1;
		return 1;
	}
	return 0;
}

int rfs_readdir(struct rfs_fs *fs, uint64_t ino, uint64_t off, rfs_fill_cb fill, void *arg)
{
	struct rfs_attr a;
	if (ino == RFS_TRASH_INO) {
		if (off < 1 && fill(arg, ".", ino, S_IFDIR, 1))
			return 0;
		if (off < 2 && fill(arg, "..", RFS_ROOT_INO, S_IFDIR, 2))
			return 0;
		struct readdir_ctx c = {fill, arg, 0};
		rfs_meta_lock(fs->meta);
		int rc = rfs_meta_trash_list(fs->meta, off < 2 ? 2 : off, INT64_MAX, readdir_cb, &c);
		rfs_meta_unlock(fs->meta);
		return rc;
	}
	uint64_t parent = RFS_ROOT_INO;
	rfs_meta_lock(fs->meta);
	int rc = rfs_meta_get_attr(fs->meta, ino, &a);
	if (rc == 0 && !S_ISDIR(a.mode))
		rc = -ENOTDIR;
	if (rc == 0)
		rfs_meta_parent_of(fs->meta, ino, &parent);
	rfs_meta_unlock(fs->meta);
	if (rc < 0)
		return rc;
	/* offsets 1 and 2 are "." and ".."; entries use their cookie (>= RFS_ID_RANGE) */
	if (off < 1 && fill(arg, ".", ino, S_IFDIR, 1))
		return 0;
	if (off < 2 && fill(arg, "..", parent, S_IFDIR, 2))
		return 0;
	struct readdir_ctx c = {fill, arg, 0};
	rfs_meta_lock(fs->meta);
	rc = rfs_meta_readdir(fs->meta, ino, off < 2 ? 2 : off, readdir_cb, &c);
	rfs_meta_unlock(fs->meta);
	return rc;
}

/* ---------- xattrs and POSIX ACLs ---------- */

/* security.selinux is not stored: FUSE files are labelled by the kernel's genfs rules, and
 * saying "not supported" (instead of "no such attribute") lets `ls -l` stop asking after the
 * first entry of the mount (coreutils caches ENOTSUP per device), which FUSE cannot cache. */
static int xattr_is_selinux(const char *name)
{
	return !strcmp(name, "security.selinux");
}

static int xattr_name_ok(const char *name)
{
	/* system.* other than the two ACLs would be silently not enforced: refuse them */
	if (!strncmp(name, "system.", 7) && !rfs_acl_name(name))
		return -EOPNOTSUPP;
	if (strlen(name) > XATTR_NAME_MAX)
		return -ERANGE;
	return 0;
}

/* Parses a stored or given ACL into a heap copy (an rfs_acl is 8 KiB). */
static int acl_load(const void *data, size_t len, struct rfs_acl **out)
{
	struct rfs_acl *acl = malloc(sizeof(*acl));
	if (!acl)
		return -ENOMEM;
	int rc = rfs_acl_parse(data, len, acl);
	if (rc < 0) {
		free(acl);
		return rc;
	}
	*out = acl;
	return 0;
}

static int acl_store(struct rfs_fs *fs, uint64_t ino, const char *name, const struct rfs_acl *acl)
{
	size_t len = rfs_acl_size(acl);
	uint8_t *buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	rfs_acl_write(acl, buf);
	int rc = rfs_meta_xattr_set(fs->meta, ino, name, buf, len, 0);
	free(buf);
	return rc;
}

/* chmod keeps an access ACL in step with the mode. Inside a metadata transaction. */
int core_acl_chmod(struct rfs_fs *fs, uint64_t ino, uint32_t mode)
{
	struct rfs_buf b = {0};
	struct rfs_acl *acl = NULL;
	int rc = rfs_meta_xattr_get(fs->meta, ino, RFS_ACL_ACCESS, &b);
	if (rc == -ENODATA) {
		rc = 0;
		goto out;
	}
	if (rc == 0)
		rc = acl_load(b.data, b.len, &acl);
	if (rc < 0)
		goto out;
	rfs_acl_chmod(acl, mode);
	rc = acl_store(fs, ino, RFS_ACL_ACCESS, acl);
out:
	free(acl);
	rfs_buf_free(&b);
	return rc;
}

/* A node created under parent: with a default ACL there, the node's access ACL (into
 * *access, if it says more than the mode) and, for a directory, its default ACL (*dflt)
 * come from it and the umask is ignored; without one the umask applies. Inside a metadata
 * transaction; a->mode is updated. */
static int acl_inherit(struct rfs_fs *fs, uint64_t parent, struct rfs_attr *a, uint32_t umask, struct rfs_buf *access,
		       struct rfs_buf *dflt)
{
	struct rfs_acl *acl = NULL;
	int rc = rfs_meta_xattr_get(fs->meta, parent, RFS_ACL_DEFAULT, dflt);
	if (rc == -ENODATA) {
		a->mode &= ~(umask & 0777);
		return 0;
	}
	if (rc == 0)
		rc = acl_load(dflt->data, dflt->len, &acl);
	if (rc < 0)
		goto out;
	if (rfs_acl_create_masq(acl, &a->mode)) {
		rc = rfs_buf_reserve(access, rfs_acl_size(acl));
		if (rc == 0) {
			rfs_acl_write(acl, access->data);
			access->len = rfs_acl_size(acl);
		}
	}
out:
	free(acl);
	return rc;
}

/* Setting an access ACL sets the mode's permission bits; one that says no more than the
 * mode is not stored (as ext4 does). A default ACL is for directories only. */
static int acl_set(struct rfs_fs *fs, struct rfs_attr *a, const char *name, const void *value, size_t size, int flags)
{
	struct rfs_acl *acl = NULL;
	int rc = acl_load(value, size, &acl);
	if (rc < 0)
		return rc;
	if (!strcmp(name, RFS_ACL_DEFAULT)) {
		rc = S_ISDIR(a->mode) ? rfs_meta_xattr_set(fs->meta, a->ino, name, value, size, flags) : -EACCES;
	} else if (rfs_acl_equiv_mode(acl, &a->mode)) {
		rc = rfs_meta_xattr_set(fs->meta, a->ino, name, value, size, flags);
	} else {
		rc = rfs_meta_xattr_remove(fs->meta, a->ino, name);
		if (rc == -ENODATA)
			rc = (flags & XATTR_REPLACE) ? -ENODATA : 0;
	}
	free(acl);
	return rc;
}

int rfs_setxattr(struct rfs_fs *fs, uint64_t ino, const char *name, const void *value, size_t size, int flags)
{
	if (ino == RFS_TRASH_INO)
		return -EPERM;
	int rc = core_check_writable(fs);
	if (rc == 0)
		rc = xattr_is_selinux(name) ? -EOPNOTSUPP : xattr_name_ok(name);
	if (rc < 0)
		return rc;
	if (size > XATTR_SIZE_MAX)
		return -E2BIG;
	rc = rfs_meta_begin(fs->meta);
	if (rc < 0)
		return rc;
	struct rfs_attr a;
	rc = rfs_meta_get_attr(fs->meta, ino, &a);
	if (rc == 0 && rfs_acl_name(name))
		rc = acl_set(fs, &a, name, value, size, flags);
	else if (rc == 0)
		rc = rfs_meta_xattr_set(fs->meta, ino, name, value, size, flags);
	if (rc == 0) {
		a.ctime = rfs_now_ns();
		rc = rfs_meta_put_attr(fs->meta, &a);
	}
	if (rc < 0) {
		rfs_meta_rollback(fs->meta);
		return rc;
	}
	return rfs_meta_commit(fs->meta);
}

/* getxattr/listxattr reply rule: size 0 asks for the length; a short buffer is ERANGE.
 * Frees b. */
static ssize_t xattr_reply(int rc, struct rfs_buf *b, void *buf, size_t size)
{
	ssize_t out = rc;
	if (rc == 0) {
		out = (ssize_t)b->len;
		if (size && b->len > size)
			out = -ERANGE;
		else if (size && b->len)
			memcpy(buf, b->data, b->len);
	}
	rfs_buf_free(b);
	return out;
}

ssize_t rfs_getxattr(struct rfs_fs *fs, uint64_t ino, const char *name, void *buf, size_t size)
{
	if (xattr_is_selinux(name))
		return -EOPNOTSUPP;
	if (xattr_name_ok(name) == -EOPNOTSUPP)
		return -ENODATA; /* never stored */
	struct rfs_buf b = {0};
	rfs_meta_lock(fs->meta);
	int rc = rfs_meta_xattr_get(fs->meta, ino, name, &b);
	rfs_meta_unlock(fs->meta);
	return xattr_reply(rc, &b, buf, size);
}

ssize_t rfs_listxattr(struct rfs_fs *fs, uint64_t ino, char *buf, size_t size)
{
	struct rfs_buf b = {0};
	rfs_meta_lock(fs->meta);
	int rc = rfs_meta_xattr_list(fs->meta, ino, &b);
	rfs_meta_unlock(fs->meta);
	/* a security.selinux row stored by an older version is not listed: it cannot be read */
	for (size_t i = 0; rc == 0 && i < b.len;) {
		size_t n = strnlen((const char *)b.data + i, b.len - i) + 1;
		if (xattr_is_selinux((const char *)b.data + i)) {
			memmove(b.data + i, b.data + i + n, b.len - i - n);
			b.len -= n;
		} else {
			i += n;
		}
	}
	return xattr_reply(rc, &b, buf, size);
}

int rfs_removexattr(struct rfs_fs *fs, uint64_t ino, const char *name)
{
	int rc = core_check_writable(fs);
	if (rc == 0) /* a security.selinux row an older version stored can still go */
		rc = xattr_name_ok(name);
	if (rc < 0)
		return rc == -EOPNOTSUPP ? -ENODATA : rc;
	rc = rfs_meta_begin(fs->meta);
	if (rc < 0)
		return rc;
	struct rfs_attr a;
	rc = rfs_meta_get_attr(fs->meta, ino, &a);
	if (rc == 0)
		rc = rfs_meta_xattr_remove(fs->meta, ino, name);
	if (rc == 0) {
		a.ctime = rfs_now_ns();
		rc = rfs_meta_put_attr(fs->meta, &a);
	}
	if (rc < 0) {
		rfs_meta_rollback(fs->meta);
		return rc == -ENODATA && xattr_is_selinux(name) ? -EOPNOTSUPP : rc;
	}
	return rfs_meta_commit(fs->meta);
}
