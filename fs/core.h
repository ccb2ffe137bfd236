/*
 * core.h - the filesystem core: every POSIX operation, independent of FUSE.
 *
 * The FUSE op layer (fs/ops.c) resolves a request, makes one call here and replies. Every
 * call returns 0 (or a byte count where stated) or a negative errno, and never blocks on the
 * kernel. Inode numbers are the FUSE node ids (the root is 1).
 *
 * Data path (see docs/architecture.md): a write lands in a staging file per dirty block on
 * the local SSD (CACHE/staging/<ino>.<block>); on close, fsync or the flush interval, dirty
 * blocks are sealed (SHA-256, LZ4) into a pack, the pack is stored, and only then the block
 * map naming it is written to the metadata DB (invariant C1 in sync/commit.h). Reads come
 * from staging, else the SSD block cache (small blocks: a cached pack range, wincache.h and
 * ranges.h), else a ranged GET of the pack, hash-verified.
 *
 * Calling sequence: rfs_fs_open() (validates the store, opens the DB, catches up with the
 * log, recovers staging left by a crash) -> daemonize -> rfs_fs_start() (background threads)
 * -> operations from any thread -> rfs_fs_close() (flushes, commits, stops threads).
 *
 * Lock order: fs->flush_lock -> node->lock -> meta lock -> cache lock; the range index's
 * lock (ranges.c) -> cache lock, never with the meta lock held. Leaves (nothing else is taken
 * while they are held): fs->nodes_lock (the table of open/dirty inodes), the window cache's
 * lock (wincache.c), fs->space_lock, fs->sib_lock, fs->upload_err_lock.
 */
#ifndef RFS_CORE_H
#define RFS_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

struct rfs_fs;

/* Deleted files wait here (a virtual directory, not listed in the root) until they expire;
 * `mv MOUNT/.trash/NAME.deleted-… MOUNT/NAME` restores one. */
#define RFS_TRASH_INO 2 /* == RFS_TRASH_DIR_INO in meta.h */
#define RFS_TRASH_NAME ".trash"

struct rfs_fs_config {
	const char *store_url;
	const char *cache_dir;
	uint64_t cache_size;   /* bytes of clean blocks kept on SSD */
	int flush_interval_ms; /* how long closed dirty data may wait before upload */
	int sync_interval_ms;  /* how often the log is pulled and pending changes committed */
	int read_only;
	int64_t snapshot_every; /* write a checkpoint every this many log records (0: default) */
	int64_t trash_seconds;  /* keep deleted files this long in /.trash (0: default 1 day, <0: off) */
	int fetch_threads;      /* prefetch workers: block fetches in flight (0: default 16) */
};

/* Which attributes rfs_setattr changes. */
#define RFS_SET_MODE (1 << 0)
#define RFS_SET_UID (1 << 1)
#define RFS_SET_GID (1 << 2)
#define RFS_SET_SIZE (1 << 3)
#define RFS_SET_ATIME (1 << 4)
#define RFS_SET_MTIME (1 << 5)
#define RFS_SET_ATIME_NOW (1 << 6)
#define RFS_SET_MTIME_NOW (1 << 7)
#define RFS_SET_CTIME (1 << 8)
#define RFS_SET_TIMES (RFS_SET_ATIME | RFS_SET_MTIME | RFS_SET_ATIME_NOW | RFS_SET_MTIME_NOW | RFS_SET_CTIME)

/* Readdir callback: return non-zero when the reply buffer is full. next is the offset the
 * kernel passes back to continue after this entry. */
typedef int (*rfs_fill_cb)(void *arg, const char *name, uint64_t ino, uint32_t mode, uint64_t next);

int rfs_fs_open(const struct rfs_fs_config *cfg, struct rfs_fs **out, char *err, size_t errlen);
int rfs_fs_start(struct rfs_fs *fs);
/* Flushes and commits everything (bounded wait), then frees. Returns 0 if nothing was left
 * behind unpublished (it stays in staging/pending for the next mount otherwise). */
int rfs_fs_close(struct rfs_fs *fs);

int rfs_getattr(struct rfs_fs *fs, uint64_t ino, struct stat *st);
int rfs_lookup(struct rfs_fs *fs, uint64_t parent, const char *name, struct stat *st);
int rfs_setattr(struct rfs_fs *fs, uint64_t ino, const struct stat *in, int to_set, struct stat *out);
/* mknod and mkdir (mode carries the type). umask applies unless the parent has a default
 * ACL, which then gives the new node its ACL (POSIX.1e; the kernel does not mask the mode
 * itself, FUSE_DONT_MASK). */
int rfs_mknod(struct rfs_fs *fs, uint64_t parent, const char *name, uint32_t mode, uint64_t rdev, uint32_t umask,
	      uint32_t uid, uint32_t gid, struct stat *out);
int rfs_symlink(struct rfs_fs *fs, uint64_t parent, const char *name, const char *target, uint32_t uid, uint32_t gid,
		struct stat *out);
int rfs_readlink(struct rfs_fs *fs, uint64_t ino, char *buf, size_t len);
int rfs_link(struct rfs_fs *fs, uint64_t ino, uint64_t newparent, const char *newname, struct stat *out);
int rfs_unlink(struct rfs_fs *fs, uint64_t parent, const char *name);
int rfs_rmdir(struct rfs_fs *fs, uint64_t parent, const char *name);
/* flags: RENAME_NOREPLACE, RENAME_EXCHANGE. */
int rfs_rename(struct rfs_fs *fs, uint64_t parent, const char *name, uint64_t newparent, const char *newname,
	       unsigned flags);

/* open/create count open handles; every successful one is matched by one rfs_release. */
int rfs_open(struct rfs_fs *fs, uint64_t ino, int flags);
int rfs_create(struct rfs_fs *fs, uint64_t parent, const char *name, uint32_t mode, int flags, uint32_t umask,
	       uint32_t uid, uint32_t gid, struct stat *out);
/* A read's reply in pieces, in order: bytes of the caller's buffer (fd -1, pos = offset in
 * buf) or a range of a file in the SSD block cache (fd, pos = offset in that file), which
 * the FUSE layer splices to the kernel instead of copying it through buf; it closes them. */
#define RFS_READ_SEGS 8
struct rfs_read_seg {
	int fd;
	uint64_t pos;
	size_t len;
};
struct rfs_read_reply {
	size_t nsegs; /* 0: the whole reply is in buf */
	struct rfs_read_seg seg[RFS_READ_SEGS];
};
/* Returns bytes read (short only at EOF) or -errno. zc NULL: everything is copied into buf;
 * otherwise cached blocks may be returned as file ranges in *zc (none left open on error;
 * ranges under two pages are copied). */
ssize_t rfs_read(struct rfs_fs *fs, uint64_t ino, uint64_t off, size_t size, char *buf, struct rfs_read_reply *zc);
/* The same read done over by copying, after the file ranges of an rfs_read could not be sent
 * (a cache file that cannot be read is then fetched from the store): not counted again, and
 * no readahead decisions (they were made for this read). */
ssize_t rfs_read_again(struct rfs_fs *fs, uint64_t ino, uint64_t off, size_t size, char *buf);
/* Returns bytes written or -errno. */
ssize_t rfs_write(struct rfs_fs *fs, uint64_t ino, uint64_t off, const char *buf, size_t size);
/* The last close of a writer wakes the flusher (close-time upload, batched with other closes). */
int rfs_release(struct rfs_fs *fs, uint64_t ino, int flags);
int rfs_fsync(struct rfs_fs *fs, uint64_t ino, int datasync);
int rfs_fallocate(struct rfs_fs *fs, uint64_t ino, int mode, uint64_t off, uint64_t len);

int rfs_readdir(struct rfs_fs *fs, uint64_t ino, uint64_t off, rfs_fill_cb fill, void *arg);

int rfs_setxattr(struct rfs_fs *fs, uint64_t ino, const char *name, const void *value, size_t size, int flags);
/* Returns the value's size; copies it when size is large enough (size 0: query). */
ssize_t rfs_getxattr(struct rfs_fs *fs, uint64_t ino, const char *name, void *buf, size_t size);
ssize_t rfs_listxattr(struct rfs_fs *fs, uint64_t ino, char *buf, size_t size);
int rfs_removexattr(struct rfs_fs *fs, uint64_t ino, const char *name);

int rfs_statfs(struct rfs_fs *fs, struct statvfs *st);

/* Kernel cache invalidation for changes that arrive from other hosts: cb(arg, ino, 0, NULL)
 * for an inode, cb(arg, 0, parent, name) for an entry. Called from the sync thread with no
 * lock held. cb NULL: stop calling (before the FUSE session goes away). */
typedef void (*rfs_inval_cb)(void *arg, uint64_t ino, uint64_t parent, const char *name);
void rfs_fs_set_invalidate(struct rfs_fs *fs, rfs_inval_cb cb, void *arg);

/* What `roamfs status` shows for one mount. */
struct rfs_fs_status {
	char store[1024], host_id[40], cache_dir[1024];
	int64_t applied_seq, head_seq;     /* head_seq -1: the store could not be asked */
	int64_t pending_changes;           /* metadata changesets not yet in the log */
	uint64_t dirty_files, dirty_bytes; /* data in staging, not yet uploaded */
	int64_t oldest_dirty_s;            /* age of the oldest staged data, -1: none */
	int64_t last_commit_s;             /* seconds since the last commit, -1: none yet */
	char last_error[512];
	uint64_t cache_used, cache_limit, cache_hits, cache_misses, cache_blocks;
	uint64_t requests[5]; /* GET, PUT, LIST, HEAD, DELETE */
	uint64_t bytes_in, bytes_out;
	int64_t conflicts;
	int read_only;
	uint32_t block_size;
};
int rfs_fs_get_status(struct rfs_fs *fs, struct rfs_fs_status *st);
/* The store's URL as the store prints it (secrets masked). Valid until rfs_fs_close(). */
const char *rfs_fs_store_url(struct rfs_fs *fs);
/* Heartbeats of hosts seen within max_age_s: cb(arg, host_id, body of hosts/<id>). */
int rfs_fs_list_hosts(struct rfs_fs *fs, int max_age_s, int (*cb)(void *arg, const char *id, const char *body),
		      void *arg);
/* Recorded sync conflicts, newest first. */
int rfs_fs_list_conflicts(struct rfs_fs *fs, int limit, int (*cb)(void *arg, int64_t time_ns, const char *what),
			  void *arg);
/* Wakes the flusher and the committer without waiting. */
void rfs_fs_kick(struct rfs_fs *fs);
/* Sets who we are for the heartbeat (before rfs_fs_start). */
void rfs_fs_set_identity(struct rfs_fs *fs, const char *mountpoint);

/* Warmup: bring every stored block of the given files into the SSD cache with `jobs`
 * parallel fetches. progress(arg, done_blocks, total_blocks, done_bytes, total_bytes) is
 * called about twice a second. Blocks already cached cost nothing (a second run is instant). */
struct rfs_warmup_result {
	uint64_t blocks, bytes;           /* distinct stored blocks of the files, their size */
	uint64_t already_cached, fetched; /* blocks */
	uint64_t not_fitting_bytes;       /* what could not stay in the cache (its limit) */
	uint64_t failed;                  /* blocks that could not be fetched */
};
int rfs_warmup(struct rfs_fs *fs, const uint64_t *inos, size_t n, int jobs,
	       void (*progress)(void *arg, uint64_t done_blocks, uint64_t total_blocks, uint64_t done_bytes,
				uint64_t total_bytes),
	       void *arg, struct rfs_warmup_result *res);

/* Uploads every dirty block and commits all metadata; returns when it is in the store. */
int rfs_sync_all(struct rfs_fs *fs);

#endif
