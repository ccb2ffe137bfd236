/*
 * ops.c - FUSE low-level callbacks. Each is: resolve the request, one core call, one reply.
 * Locks (flock, fcntl) are left to the kernel, which keeps them correct within one host.
 */
#define FUSE_USE_VERSION 34
#include "fs/ops.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <limits.h>
#include <fuse_lowlevel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/core.h"
#include "fs/log.h"
#include "fs/util.h"

struct ops_ctx {
	struct rfs_fs *fs;
	double timeout;
	struct fuse_session *se;
	unsigned max_read; /* mount option and INIT reply must agree */
};

/* Called from the sync thread for changes made by other hosts. */
static void invalidate(void *arg, uint64_t ino, uint64_t parent, const char *name)
{
	struct ops_ctx *c = arg;
	if (name)
		fuse_lowlevel_notify_inval_entry(c->se, parent, name, strlen(name));
	else
		fuse_lowlevel_notify_inval_inode(c->se, ino, 0, 0);
}

static struct ops_ctx *ctx_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static void reply_entry(fuse_req_t req, const struct stat *st, int rc, int is_lookup)
{
	if (rc < 0) {
		if (rc == -ENOENT && is_lookup) {
			/* negative entry: the kernel may cache the absence like a positive entry */
			struct fuse_entry_param e = {0};
			e.entry_timeout = ctx_of(req)->timeout;
			fuse_reply_entry(req, &e);
			return;
		}
		fuse_reply_err(req, -rc);
		return;
	}
	struct fuse_entry_param e = {0};
	e.ino = st->st_ino;
	e.attr = *st;
	e.attr_timeout = ctx_of(req)->timeout;
	e.entry_timeout = ctx_of(req)->timeout;
	fuse_reply_entry(req, &e);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct ops_ctx *ctx = userdata;
	conn->max_read = ctx->max_read;
	if (conn->capable & FUSE_CAP_SPLICE_READ)
		conn->want &= ~FUSE_CAP_SPLICE_READ;
	conn->want |= conn->capable & (FUSE_CAP_ATOMIC_O_TRUNC | FUSE_CAP_SPLICE_WRITE); /* reply_spliced */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE; /* mtime/size stay exact; see docs */
	/* The kernel enforces and caches POSIX ACLs (one GETXATTR per inode, not one per `ls -l`
	 * entry); we store them, keep modes in step and inherit default ACLs, which needs the
	 * unmasked mode and the umask (core.h, rfs_mknod). */
	if ((conn->capable & FUSE_CAP_POSIX_ACL) && (conn->capable & FUSE_CAP_DONT_MASK))
		conn->want |= FUSE_CAP_POSIX_ACL | FUSE_CAP_DONT_MASK;
	conn->max_write = 1 << 20;
	conn->max_readahead = 16 << 20; /* libfuse clamps it to what the kernel offers */
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct stat st;
	int rc = rfs_lookup(ctx_of(req)->fs, parent, name, &st);
	reply_entry(req, &st, rc, 1);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	(void)ino;
	(void)nlookup;
	fuse_reply_none(req); /* inodes live in the DB, not in memory */
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	struct stat st;
	int rc = rfs_getattr(ctx_of(req)->fs, ino, &st);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, ctx_of(req)->timeout);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi)
{
	(void)fi;
	int set = 0;
	if (to_set & FUSE_SET_ATTR_MODE)
		set |= RFS_SET_MODE;
	if (to_set & FUSE_SET_ATTR_UID)
		set |= RFS_SET_UID;
	if (to_set & FUSE_SET_ATTR_GID)
		set |= RFS_SET_GID;
	if (to_set & FUSE_SET_ATTR_SIZE)
		set |= RFS_SET_SIZE;
	if (to_set & FUSE_SET_ATTR_ATIME)
		set |= RFS_SET_ATIME;
	if (to_set & FUSE_SET_ATTR_MTIME)
		set |= RFS_SET_MTIME;
	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		set |= RFS_SET_ATIME_NOW;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		set |= RFS_SET_MTIME_NOW;
	if (to_set & FUSE_SET_ATTR_CTIME)
		set |= RFS_SET_CTIME;
	struct stat st;
	int rc = rfs_setattr(ctx_of(req)->fs, ino, attr, set, &st);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, ctx_of(req)->timeout);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[PATH_MAX + 1];
	int rc = rfs_readlink(ctx_of(req)->fs, ino, buf, sizeof(buf));
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_readlink(req, buf);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	struct stat st;
	int rc = rfs_mknod(ctx_of(req)->fs, parent, name, mode, rdev, c->umask, c->uid, c->gid, &st);
	reply_entry(req, &st, rc, 0);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	struct stat st;
	int rc = rfs_mknod(ctx_of(req)->fs, parent, name, S_IFDIR | (mode & 07777), 0, c->umask, c->uid, c->gid, &st);
	reply_entry(req, &st, rc, 0);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	struct stat st;
	int rc = rfs_symlink(ctx_of(req)->fs, parent, name, link, c->uid, c->gid, &st);
	reply_entry(req, &st, rc, 0);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct stat st;
	int rc = rfs_link(ctx_of(req)->fs, ino, newparent, newname, &st);
	reply_entry(req, &st, rc, 0);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, -rfs_unlink(ctx_of(req)->fs, parent, name));
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, -rfs_rmdir(ctx_of(req)->fs, parent, name));
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	fuse_reply_err(req, -rfs_rename(ctx_of(req)->fs, parent, name, newparent, newname, flags));
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	int rc = rfs_open(ctx_of(req)->fs, ino, fi->flags);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	fi->keep_cache = 1; /* every change on this host goes through this kernel's page cache */
	if (fuse_reply_open(req, fi) == -ENOENT)
		rfs_release(ctx_of(req)->fs, ino, fi->flags); /* interrupted: undo the open */
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	struct stat st;
	int rc = rfs_create(ctx_of(req)->fs, parent, name, mode, fi->flags, c->umask, c->uid, c->gid, &st);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	struct fuse_entry_param e = {0};
	e.ino = st.st_ino;
	e.attr = st;
	e.attr_timeout = ctx_of(req)->timeout;
	e.entry_timeout = ctx_of(req)->timeout;
	fi->keep_cache = 1;
	if (fuse_reply_create(req, &e, fi) == -ENOENT)
		rfs_release(ctx_of(req)->fs, st.st_ino, fi->flags);
}

/* Read replies from the SSD cache are spliced, not copied: the reply's pieces go into a pipe
 * of this thread - buffer pieces written, cache file ranges spliced (page references, no
 * copy) - and libfuse moves the pipe's content behind the reply header into /dev/fuse (one
 * copy, in the kernel, instead of pread into the daemon and writev out of it). Filling the
 * pipe ourselves, rather than handing libfuse the file ranges, keeps an I/O error of the
 * cache disk ours: the read is then done again the copying way, which fetches the block
 * from the store. The pipe holds a whole reply: max_read is sized for it (splice_max_read). */
struct reply_pipe {
	int fd[2];
	size_t size;
	size_t refused; /* a size F_SETPIPE_SZ refused (0: none): replies that big are copied */
};
static pthread_key_t pipe_key;
static pthread_once_t pipe_once = PTHREAD_ONCE_INIT;

static void pipe_free(void *arg)
{
	struct reply_pipe *p = arg;
	close(p->fd[0]);
	close(p->fd[1]);
	free(p);
}

static void pipe_key_init(void)
{
	if (pthread_key_create(&pipe_key, pipe_free) != 0)
		pipe_key = (pthread_key_t)-1; /* no per-thread pipes: every reply is copied */
}

/* This thread's pipe, grown to hold need bytes, or NULL (then the caller copies). */
static struct reply_pipe *pipe_get(size_t need)
{
	pthread_once(&pipe_once, pipe_key_init);
	if (pipe_key == (pthread_key_t)-1)
		return NULL;
	struct reply_pipe *p = pthread_getspecific(pipe_key);
	if (!p) {
		p = calloc(1, sizeof(*p));
		if (!p || pipe2(p->fd, O_CLOEXEC | O_NONBLOCK) < 0) {
			free(p);
			return NULL;
		}
		if (pthread_setspecific(pipe_key, p) != 0) {
			pipe_free(p);
			return NULL;
		}
	}
	if (p->size < need) {
		if (p->refused && need >= p->refused)
			return NULL;
		int sz = fcntl(p->fd[0], F_SETPIPE_SZ, (int)need);
		if (sz < 0) {
			p->refused = need; /* e.g. a -o max_read above pipe-max-size: not asked again */
			return NULL;
		}
		p->size = (size_t)sz;
	}
	return p;
}

/* The pipe size a reply of up to size bytes needs: a slot per page, and one more per piece
 * (a piece may start mid-page). */
static size_t pipe_need(size_t size)
{
	return size + (RFS_READ_SEGS + 2) * rfs_page_size();
}

/* Drops this thread's pipe (its content is unknown after a failure). */
static void pipe_drop(void)
{
	struct reply_pipe *p = pthread_getspecific(pipe_key);
	if (p) {
		pthread_setspecific(pipe_key, NULL);
		pipe_free(p);
	}
}

/* Puts the reply's pieces into the pipe: 0, or -errno (the pipe is then dropped). */
static int pipe_fill(struct reply_pipe *p, const char *buf, const struct rfs_read_reply *zc)
{
	for (size_t i = 0; i < zc->nsegs; i++) {
		const struct rfs_read_seg *sg = &zc->seg[i];
		loff_t pos = (loff_t)sg->pos;
		for (size_t done = 0; done < sg->len;) {
			ssize_t r = sg->fd < 0
					? write(p->fd[1], buf + sg->pos + done, sg->len - done)
					: splice(sg->fd, &pos, p->fd[1], NULL, sg->len - done, SPLICE_F_NONBLOCK);
			if (r <= 0) {
				int err = r < 0 ? errno : EIO; /* 0: the file is shorter than it was */
				/* at most one line a minute: a failing disk fails every read */
				static int64_t last_ms;
				int64_t now = rfs_monotonic_ms(), was = __atomic_load_n(&last_ms, __ATOMIC_RELAXED);
				if ((!was || now - was >= 60000) &&
				    __atomic_compare_exchange_n(&last_ms, &was, now, 0, __ATOMIC_RELAXED,
								__ATOMIC_RELAXED))
					RFS_LOG(LOG_WARNING, "cannot %s a read reply (%s); reading it again by copying",
						sg->fd < 0 ? "queue" : "splice the SSD cache into", strerror(err));
				pipe_drop();
				return -err;
			}
			done += (size_t)r;
		}
	}
	return 0;
}

/* Sends a reply made of buffer pieces and cache file ranges through the pipe p (closing the
 * files). 0, or -errno when the pieces could not be gathered and nothing was sent. */
static int reply_spliced(fuse_req_t req, struct reply_pipe *p, const char *buf, size_t total, struct rfs_read_reply *zc)
{
	int rc = pipe_fill(p, buf, zc);
	for (size_t i = 0; i < zc->nsegs; i++)
		if (zc->seg[i].fd >= 0)
			close(zc->seg[i].fd);
	if (rc < 0)
		return rc;
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(total);
	bv.buf[0].flags = FUSE_BUF_IS_FD;
	bv.buf[0].fd = p->fd[0];
	fuse_reply_data(req, &bv, 0);
	int left = 0;
	if (ioctl(p->fd[0], FIONREAD, &left) < 0 || left)
		pipe_drop(); /* libfuse gave up part way: never send those bytes with another reply */
	return 0;
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)fi;
	struct rfs_fs *fs = ctx_of(req)->fs;
	char *buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* no pipe for this thread (or not one that big): copy, as libfuse would */
	struct reply_pipe *p = pipe_get(pipe_need(size));
	struct rfs_read_reply zc = {0};
	ssize_t n = rfs_read(fs, ino, (uint64_t)off, size, buf, p ? &zc : NULL);
	if (n >= 0 && zc.nsegs && reply_spliced(req, p, buf, (size_t)n, &zc) == 0)
		goto out;
	if (n >= 0 && zc.nsegs) /* not spliced: read again, copying (a bad cache file is fetched) */
		n = rfs_read_again(fs, ino, (uint64_t)off, size, buf);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
out:
	free(buf);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)fi;
	ssize_t n = rfs_write(ctx_of(req)->fs, ino, (uint64_t)off, buf, size);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, -rfs_release(ctx_of(req)->fs, ino, fi->flags));
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)fi;
	fuse_reply_err(req, -rfs_fsync(ctx_of(req)->fs, ino, datasync));
}

struct dirbuf {
	fuse_req_t req;
	char *buf;
	size_t size, used;
};

static int fill_dir(void *arg, const char *name, uint64_t ino, uint32_t mode, uint64_t next)
{
	struct dirbuf *d = arg;
	struct stat st = {0};
	st.st_ino = ino;
	st.st_mode = mode;
	size_t need = fuse_add_direntry(d->req, NULL, 0, name, NULL, 0);
	if (d->used + need > d->size)
		return 1;
	fuse_add_direntry(d->req, d->buf + d->used, d->size - d->used, name, &st, (off_t)next);
	d->used += need;
	return 0;
}

/* The kernel keeps directory listings in its page cache (a warm `find` or import sends no
 * READDIR). Local changes invalidate them in the kernel itself; remote ones through the sync
 * thread's notifications (an entry invalidation marks its parent changed). .trash changes
 * inside the daemon (expiry), so it is always listed afresh. */
static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino != RFS_TRASH_INO) {
		fi->cache_readdir = 1;
		fi->keep_cache = 1;
	}
	fuse_reply_open(req, fi);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)fi;
	struct dirbuf d = {req, malloc(size ? size : 1), size, 0};
	if (!d.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	int rc = rfs_readdir(ctx_of(req)->fs, ino, (uint64_t)off, fill_dir, &d);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, d.buf, d.used);
	free(d.buf);
}

struct plus_ent {
	char *name;
	uint64_t ino, next;
};

struct plus_list {
	struct plus_ent *v;
	size_t n, max;
};

static int collect_plus(void *arg, const char *name, uint64_t ino, uint32_t mode, uint64_t next)
{
	(void)mode;
	struct plus_list *l = arg;
	if (l->n == l->max)
		return 1;
	l->v[l->n].name = strdup(name);
	if (!l->v[l->n].name)
		return 1;
	l->v[l->n].ino = ino;
	l->v[l->n].next = next;
	l->n++;
	return 0;
}

/* readdir with attributes: `ls -l`, `find -type f` and Python's scandir cost one request per
 * directory block instead of one lookup per entry. Entries are collected first (the core
 * holds the metadata lock while listing), then stat'ed. */
static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)fi;
	struct ops_ctx *c = ctx_of(req);
	struct plus_list l = {NULL, 0, size / 48 + 2};
	char *buf = malloc(size ? size : 1);
	l.v = calloc(l.max, sizeof(*l.v));
	if (!buf || !l.v) {
		free(buf);
		free(l.v);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	int rc = rfs_readdir(c->fs, ino, (uint64_t)off, collect_plus, &l);
	size_t used = 0;
	for (size_t i = 0; rc == 0 && i < l.n; i++) {
		struct fuse_entry_param e = {0};
		int dots = !strcmp(l.v[i].name, ".") || !strcmp(l.v[i].name, "..");
		if (!dots && rfs_getattr(c->fs, l.v[i].ino, &e.attr) == 0) {
			e.ino = l.v[i].ino;
			e.attr_timeout = c->timeout;
			e.entry_timeout = c->timeout;
		} else {
			/* no lookup reference for . and .. (or a vanished entry): ino 0 */
			e.attr.st_ino = l.v[i].ino;
			e.attr.st_mode = S_IFDIR;
		}
		size_t need = fuse_add_direntry_plus(req, NULL, 0, l.v[i].name, NULL, 0);
		if (used + need > size)
			break;
		fuse_add_direntry_plus(req, buf + used, size - used, l.v[i].name, &e, (off_t)l.v[i].next);
		used += need;
	}
	for (size_t i = 0; i < l.n; i++)
		free(l.v[i].name);
	free(l.v);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, buf, used);
	free(buf);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)fi;
	fuse_reply_err(req, -rfs_fsync(ctx_of(req)->fs, ino, datasync));
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	(void)ino;
	struct statvfs st;
	int rc = rfs_statfs(ctx_of(req)->fs, &st);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_statfs(req, &st);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size, int flags)
{
	fuse_reply_err(req, -rfs_setxattr(ctx_of(req)->fs, ino, name, value, size, flags));
}

static void reply_xattr(fuse_req_t req, ssize_t n, const char *buf, size_t size)
{
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	char *buf = size ? malloc(size) : NULL;
	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ssize_t n = rfs_getxattr(ctx_of(req)->fs, ino, name, buf, size);
	reply_xattr(req, n, buf, size);
	free(buf);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	char *buf = size ? malloc(size) : NULL;
	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ssize_t n = rfs_listxattr(ctx_of(req)->fs, ino, buf, size);
	reply_xattr(req, n, buf, size);
	free(buf);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	fuse_reply_err(req, -rfs_removexattr(ctx_of(req)->fs, ino, name));
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len, struct fuse_file_info *fi)
{
	(void)fi;
	fuse_reply_err(req, -rfs_fallocate(ctx_of(req)->fs, ino, mode, (uint64_t)off, (uint64_t)len));
}

static const struct fuse_lowlevel_ops rfs_ll_ops = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .readlink = op_readlink,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_rmdir,
    .symlink = op_symlink,
    .rename = op_rename,
    .link = op_link,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    /* no .flush: libfuse answers ENOSYS once and the kernel stops sending FLUSH on every
	 * close(2) (one round trip per file in an import or a copy). Locks are the kernel's own,
	 * and release already wakes the flusher when the last writer closes. */
    .release = op_release,
    .fsync = op_fsync,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .fsyncdir = op_fsyncdir,
    .statfs = op_statfs,
    .setxattr = op_setxattr,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
    .removexattr = op_removexattr,
    .create = op_create,
    .fallocate = op_fallocate,
};

/* Detaches from the terminal once the mount is live and tells the waiting parent (a 0 byte
 * on ready_fd; a failure is reported by closing it unwritten: the parent sees EOF). */
static void report_ready(int ready_fd)
{
	setsid(); /* only now: until the mount is live, Ctrl-C stops it with its parent */
	if (chdir("/") < 0) {
		/* keep going: the cwd only matters for relative paths, and we use none */
	}
	int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nul >= 0) {
		dup2(nul, 0);
		dup2(nul, 1);
		dup2(nul, 2);
		if (nul > 2)
			close(nul);
	}
	char ok = 0;
	(void)!write(ready_fd, &ok, 1);
	close(ready_fd);
}

/* The largest READ whose reply libfuse can splice: it needs the reply plus a page per piece
 * (and two more) in one pipe, and a pipe grows to pipe-max-size (1 MiB by default) only,
 * without CAP_SYS_RESOURCE. Capping reads a few pages under it keeps every cached read on
 * the splice path; at most 1 MiB (the kernel's max_pages for us). A max_read=N among the
 * user's -o options wins (the last one, as for libfuse and the kernel). */
static unsigned splice_max_read(const char *user_opts)
{
	const char *user = NULL;
	for (const char *p = user_opts; p && *p;) {
		if (strncmp(p, "max_read=", 9) == 0)
			user = p + 9;
		p = strchr(p, ',');
		p = p ? p + 1 : NULL;
	}
	if (user)
		return (unsigned)strtoul(user, NULL, 10);
	unsigned long pipe_max = 1 << 20;
	FILE *f = fopen("/proc/sys/fs/pipe-max-size", "r");
	if (f) {
		if (fscanf(f, "%lu", &pipe_max) != 1)
			pipe_max = 1 << 20;
		fclose(f);
	}
	unsigned long page = rfs_page_size(), reserve = (RFS_READ_SEGS + 3) * page;
	if (pipe_max > (1 << 20) + reserve)
		return 1 << 20;
	if (pipe_max < reserve + 64 * page)
		return 1 << 20; /* tiny pipes: no splice anyway, keep 1 MiB reads */
	return (unsigned)((pipe_max - reserve) / page * page);
}

int rfs_fuse_run(struct rfs_fs *fs, const struct rfs_mount_opts *o, int (*started)(void *arg), void *arg, char *err,
		 size_t errlen)
{
	struct ops_ctx ctx = {fs, o->attr_timeout, NULL, splice_max_read(o->fuse_opts)};
	char opts[4096];
	/* max_read goes first: a user's own max_read later in the list is the one that counts */
	int olen =
	    snprintf(opts, sizeof(opts), "max_read=%u,default_permissions,fsname=%s,subtype=roamfs%s%s", ctx.max_read,
		     o->fsname, o->fuse_opts && o->fuse_opts[0] ? "," : "", o->fuse_opts ? o->fuse_opts : "");
	if (olen < 0 || (size_t)olen >= sizeof(opts)) {
		snprintf(err, errlen,
			 "the mount options are too long (%d bytes; at most %zu): shorten -o or the store URL", olen,
			 sizeof(opts) - 1);
		return -EINVAL;
	}
	char *argv[] = {"roamfs", "-o", opts, o->fuse_debug ? "-d" : NULL, NULL};
	struct fuse_args args = FUSE_ARGS_INIT(o->fuse_debug ? 4 : 3, argv);
	int rc = 0;
	struct fuse_session *se = fuse_session_new(&args, &rfs_ll_ops, sizeof(rfs_ll_ops), &ctx);
	if (!se) {
		snprintf(err, errlen, "cannot start a FUSE session (bad -o options '%s'?)",
			 o->fuse_opts ? o->fuse_opts : "");
		rc = -EINVAL;
		goto out1;
	}
	ctx.se = se;
	if (fuse_set_signal_handlers(se) != 0) {
		snprintf(err, errlen, "cannot install signal handlers");
		rc = -EIO;
		goto out2;
	}
	if (fuse_session_mount(se, o->mountpoint) != 0) {
		snprintf(err, errlen,
			 "cannot mount on '%s' (is /dev/fuse available, is fuse3 installed, "
			 "and is the mountpoint an existing, unmounted directory?)",
			 o->mountpoint);
		rc = -EIO;
		goto out3;
	}
	rfs_fs_set_invalidate(fs, invalidate, &ctx);
	rc = started ? started(arg) : 0;
	/* the parent exits only now: pid file, registry and threads are all in place */
	if (o->ready_fd >= 0 && rc == 0)
		report_ready(o->ready_fd);
	if (rc < 0) {
		snprintf(err, errlen, "cannot start the background threads: %s", strerror(-rc));
		goto out4;
	}
	struct fuse_loop_config cfg = {.clone_fd = 0,
				       .max_idle_threads = (unsigned)(o->max_threads > 0 ? o->max_threads : 16)};
	int lr = fuse_session_loop_mt(se, &cfg);
	if (lr < 0)
		RFS_LOG(LOG_ERR, "FUSE session ended with an error: %s", strerror(-lr));
out4:
	rfs_fs_set_invalidate(fs, NULL, NULL);
	fuse_session_unmount(se);
out3:
	fuse_remove_signal_handlers(se);
out2:
	fuse_session_destroy(se);
out1:
	fuse_opt_free_args(&args);
	return rc;
}
