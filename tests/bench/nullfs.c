/*
 * nullfs.c - the FUSE floor of the benchmark (tests/bench/run.sh): a FUSE file system that
 * keeps names and attributes in memory and drops file data. A small-file copy into it costs
 * exactly the kernel's FUSE requests (per file here: GETATTR of the directory, LOOKUP,
 * CREATE, GETXATTR, WRITE, SETATTR, RELEASE) and nothing else, so W1 on it is the least any
 * FUSE file system can take on this machine with the same mount options as roamfs
 * (default_permissions, no writeback cache). Not a file system to use: no unlink, no reads.
 *
 * Usage: nullfs MOUNTPOINT (foreground; stop it with fusermount3 -u MOUNTPOINT).
 * Build: cc -O2 -o nullfs nullfs.c $(pkg-config fuse3 --cflags --libs)
 */
#define FUSE_USE_VERSION 34
#include <errno.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BUCKETS 65536
#define MAX_INODES (1u << 20)

struct entry {
	struct entry *next;
	fuse_ino_t parent, ino;
	char name[256];
};

static struct entry *names[BUCKETS];
static struct stat *attrs; /* by inode number */
static fuse_ino_t next_ino = 2;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static unsigned bucket(fuse_ino_t parent, const char *name)
{
	unsigned h = (unsigned)parent * 31u;
	while (*name)
		h = h * 131u + (unsigned char)*name++;
	return h % BUCKETS;
}

static void reply_entry(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.ino = ino;
	e.attr_timeout = 1.0;
	e.entry_timeout = 1.0;
	pthread_mutex_lock(&lock);
	e.attr = attrs[ino];
	pthread_mutex_unlock(&lock);
	if (fi)
		fuse_reply_create(req, &e, fi);
	else
		fuse_reply_entry(req, &e);
}

static void nf_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_ino_t ino = 0;
	pthread_mutex_lock(&lock);
	for (struct entry *e = names[bucket(parent, name)]; e; e = e->next)
		if (e->parent == parent && !strcmp(e->name, name))
			ino = e->ino;
	pthread_mutex_unlock(&lock);
	if (ino)
		reply_entry(req, ino, NULL);
	else
		fuse_reply_err(req, ENOENT);
}

static fuse_ino_t make_node(fuse_ino_t parent, const char *name, mode_t mode)
{
	struct entry *e = calloc(1, sizeof(*e));
	if (!e)
		return 0;
	pthread_mutex_lock(&lock);
	if (next_ino >= MAX_INODES) {
		pthread_mutex_unlock(&lock);
		free(e);
		return 0;
	}
	e->parent = parent;
	e->ino = next_ino++;
	snprintf(e->name, sizeof(e->name), "%s", name);
	unsigned b = bucket(parent, name);
	e->next = names[b];
	names[b] = e;
	struct stat *st = &attrs[e->ino];
	st->st_ino = e->ino;
	st->st_mode = mode;
	st->st_nlink = S_ISDIR(mode) ? 2 : 1;
	clock_gettime(CLOCK_REALTIME, &st->st_mtim);
	st->st_atim = st->st_ctim = st->st_mtim;
	attrs[parent].st_mtim = attrs[parent].st_ctim = st->st_mtim;
	pthread_mutex_unlock(&lock);
	return e->ino;
}

static void nf_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	fuse_ino_t ino = make_node(parent, name, S_IFDIR | (mode & 07777));
	if (ino)
		reply_entry(req, ino, NULL);
	else
		fuse_reply_err(req, ENOSPC);
}

static void nf_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi)
{
	fuse_ino_t ino = make_node(parent, name, S_IFREG | (mode & 07777));
	if (ino)
		reply_entry(req, ino, fi);
	else
		fuse_reply_err(req, ENOSPC);
}

static void nf_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	pthread_mutex_lock(&lock);
	struct stat st = attrs[ino];
	pthread_mutex_unlock(&lock);
	fuse_reply_attr(req, &st, 1.0);
}

static void nf_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *in, int to_set, struct fuse_file_info *fi)
{
	(void)fi;
	pthread_mutex_lock(&lock);
	struct stat *st = &attrs[ino];
	if (to_set & FUSE_SET_ATTR_MODE)
		st->st_mode = (st->st_mode & S_IFMT) | (in->st_mode & 07777);
	if (to_set & FUSE_SET_ATTR_SIZE)
		st->st_size = in->st_size;
	if (to_set & FUSE_SET_ATTR_ATIME)
		st->st_atim = in->st_atim;
	if (to_set & FUSE_SET_ATTR_MTIME)
		st->st_mtim = in->st_mtim;
	struct stat out = *st;
	pthread_mutex_unlock(&lock);
	fuse_reply_attr(req, &out, 1.0);
}

static void nf_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)buf;
	(void)fi;
	pthread_mutex_lock(&lock);
	if (off + (off_t)size > attrs[ino].st_size)
		attrs[ino].st_size = off + (off_t)size;
	pthread_mutex_unlock(&lock);
	fuse_reply_write(req, size);
}

static void nf_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	(void)ino;
	(void)name;
	(void)size;
	fuse_reply_err(req, ENODATA);
}

static void nf_ok(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void nf_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	fuse_reply_open(req, fi);
}

static void nf_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* the capabilities roamfs asks for (fs/ops.c, op_init) */
	conn->want &= ~(unsigned)(FUSE_CAP_SPLICE_READ | FUSE_CAP_WRITEBACK_CACHE);
	conn->want |= conn->capable & FUSE_CAP_ATOMIC_O_TRUNC;
	if ((conn->capable & FUSE_CAP_POSIX_ACL) && (conn->capable & FUSE_CAP_DONT_MASK))
		conn->want |= FUSE_CAP_POSIX_ACL | FUSE_CAP_DONT_MASK;
	conn->max_write = 1 << 20;
}

static const struct fuse_lowlevel_ops ops = {
    .init = nf_init,
    .lookup = nf_lookup,
    .getattr = nf_getattr,
    .setattr = nf_setattr,
    .mkdir = nf_mkdir,
    .create = nf_create,
    .open = nf_open,
    .opendir = nf_open,
    .write = nf_write,
    .flush = nf_ok,
    .release = nf_ok,
    .releasedir = nf_ok,
    .getxattr = nf_getxattr,
};

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s MOUNTPOINT\n", argv[0]);
		return 2;
	}
	attrs = calloc(MAX_INODES, sizeof(*attrs));
	if (!attrs)
		return 1;
	attrs[FUSE_ROOT_ID].st_ino = FUSE_ROOT_ID;
	attrs[FUSE_ROOT_ID].st_mode = S_IFDIR | 0755;
	attrs[FUSE_ROOT_ID].st_nlink = 2;
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	if (fuse_opt_add_arg(&args, argv[0]) || fuse_opt_add_arg(&args, "-o") ||
	    fuse_opt_add_arg(&args, "default_permissions,fsname=nullfs"))
		return 1;
	struct fuse_session *se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	if (!se || fuse_session_mount(se, argv[1]) != 0) {
		fprintf(stderr, "nullfs: cannot mount %s\n", argv[1]);
		return 1;
	}
	struct fuse_loop_config cfg = {.clone_fd = 0, .max_idle_threads = 16}; /* as roamfs */
	int rc = fuse_session_loop_mt(se, &cfg);
	fuse_session_unmount(se);
	fuse_session_destroy(se);
	fuse_opt_free_args(&args);
	return rc ? 1 : 0;
}
