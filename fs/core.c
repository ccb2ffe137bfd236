/*
 * core.c - the filesystem core (see core.h for the contract and the lock order).
 *
 * Dirty block state machine (per block of a file, protected by node->lock):
 *
 *   CLEAN --write--> DIRTY(gen g) --write--> DIRTY(g+1) ...
 *   DIRTY(g) --flush seals gen g, stores the pack, writes the block map--> CLEAN if the gen is
 *   still g, else stays DIRTY (written again during the upload; flushed next round).
 *
 * A DIRTY block's bytes live in CACHE/staging/<ino>.<idx> and only there until the flush
 * commits, so the staging file is deleted only after the metadata naming the stored block is
 * in the DB (and that metadata only after the pack is in the store: invariant C1). A daemon
 * killed at any point finds the staging files at the next mount and flushes them again.
 */
#include "fs/core.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "backends/backend.h"
#include "fs/acl.h"
#include "fs/cache.h"
#include "fs/format.h"
#include "fs/log.h"
#include "fs/meta.h"
#include "fs/pack.h"
#include "fs/prefetch.h"
#include "fs/ranges.h"
#include "fs/wincache.h"
#include "sync/commit.h"

#ifndef RFS_PACK_TARGET
#define RFS_PACK_TARGET (32u << 20) /* upload a pack once it holds this many bytes */
#endif
#ifndef RFS_OPEN_PULL_AGE_MS
#define RFS_OPEN_PULL_AGE_MS 200 /* open() pulls the log first if the last pull is older */
#endif
#ifndef RFS_SMALL_BLOCK
#define RFS_SMALL_BLOCK (256u << 10) /* blocks up to this size are fetched with neighbours */
#endif
#define RFS_WINDOW_BEFORE (1u << 20)  /* neighbours fetched before a small block's offset */
#define RFS_WINDOW_AFTER (7u << 20)   /* and after it */
#define RFS_SPACE_CHECK_MS 100       /* free space on the cache disk is re-read this often ... */
#define RFS_SPACE_SLACK (256u << 20) /* ... when more than this above the reserve */
#define RFS_SIBLINGS_MAX 64          /* files of a directory prefetched after a cold small read */
#define RFS_SIBLING_DIRS 16          /* directories remembered for ... */
#define RFS_SIBLINGS_AGAIN_MS 30000  /* ... this long */
#ifndef RFS_WINCACHE_BYTES
/* Prefetch job kinds (prefetch.h): a block hash, or a file whose directory to prefetch. */
enum { PF_BLOCK, PF_SIBLINGS };
#define RFS_WINCACHE_BYTES (48u << 20) /* fetched pack ranges kept in memory */
#endif
#ifndef RFS_READAHEAD_BLOCKS
#define RFS_READAHEAD_BLOCKS 16 /* blocks fetched ahead of a sequential reader */
#endif
#ifndef RFS_PREFETCH_THREADS
#define RFS_PREFETCH_THREADS 8
#endif
#ifndef RFS_COALESCE_MS
#define RFS_COALESCE_MS 300 /* background flushes and commits at most this often */
#endif
#ifndef RFS_STAGING_POOL
#define RFS_STAGING_POOL 1024 /* emptied staging files kept for reuse */
#endif
#ifndef RFS_TRASH_SECONDS
#define RFS_TRASH_SECONDS 86400 /* deleted files stay in /.trash for a day by default */
#endif
#ifndef RFS_SNAPSHOT_EVERY
#define RFS_SNAPSHOT_EVERY 2000 /* log records between checkpoints */
#endif
#ifndef RFS_MAX_DIRTY_AGE_MS
#define RFS_MAX_DIRTY_AGE_MS 5000 /* data of a file still open for writing waits at most this */
#endif

struct dblock {
	uint64_t idx;
	uint64_t gen;
};

struct node {
	uint64_t ino;
	struct node *hnext;   /* protected by fs->nodes_lock */
	int refs;             /* protected by fs->nodes_lock: temporary holders */
	int opens, writers;   /* protected by fs->nodes_lock */

	pthread_mutex_t lock;
	/* below: protected by lock */
	struct dblock *blocks;
	size_t nblocks, cap;
	uint64_t gen_counter;
	int attr_dirty;       /* size/mtime/ctime below are newer than the DB's */
	uint64_t attr_gen;
	uint64_t size;
	int64_t mtime, ctime;
	int atime_set;        /* atime below too (set by utimes while attr_dirty) */
	int64_t atime;
	int64_t dirty_since_ms; /* CLOCK_BOOTTIME of the oldest unflushed change, 0: clean */
	uint64_t ra_next;     /* where a sequential reader continues (readahead trigger) */
	uint64_t ra_block;    /* + 1: the block whose readahead was last queued (0: none) */
	int dirty;            /* nblocks || attr_dirty; written under lock, read atomically
			       * under fs->nodes_lock (which must never wait for a node lock) */
};

struct rfs_fs {
	struct rfs_fs_config cfg;
	char *cache_dir;
	char staging_dir[PATH_MAX];
	struct rfs_store *store;      /* packs and the format record */
	struct rfs_store *meta_store; /* the log, checkpoints, heartbeats: == store unless --meta */
	struct rfs_meta *meta;
	struct rfs_cache *cache;
	struct rfs_sync *sync;
	struct rfs_prefetch *prefetch; /* readahead workers, from rfs_fs_start */
	int lock_fd;                   /* flock on CACHE/lock: one daemon per cache dir */
	struct rfs_wincache *wincache; /* pack ranges fetched around small blocks, in memory */
	struct rfs_ranges *ranges;     /* and the same ranges in the SSD cache */
	pthread_mutex_t space_lock;    /* the cache disk's free space, as last seen: */
	int64_t space_ms;
	uint64_t space_avail, space_reserve;
	pthread_mutex_t sib_lock;      /* directories whose files were prefetched lately: */
	uint64_t sib_dir[RFS_SIBLING_DIRS];
	int64_t sib_time[RFS_SIBLING_DIRS];
	struct rfs_format format;
	char host_id[40];

	pthread_mutex_t flush_lock; /* one flush at a time; truncate waits for it */
	pthread_mutex_t free_lock;  /* protects the staging file pool below */
	uint64_t free_ids[RFS_STAGING_POOL];
	size_t nfree;
	uint64_t free_next;
	int64_t mount_time;         /* ns: times of the virtual .trash directory */
	int64_t last_purge_ms;      /* bg thread only */

	pthread_mutex_t nodes_lock;
	struct node *nodes[4096]; /* protected by nodes_lock */

	pthread_mutex_t bg_lock;
	pthread_cond_t bg_cond;
	int bg_stop, bg_kick, bg_running; /* protected by bg_lock */
	pthread_t bg_thread;
};

#define NODE_BUCKETS (sizeof(((struct rfs_fs *)0)->nodes) / sizeof(struct node *))

/* ---------- nodes ---------- */

static struct node *node_find_locked(struct rfs_fs *fs, uint64_t ino)
{
	for (struct node *n = fs->nodes[ino % NODE_BUCKETS]; n; n = n->hnext)
		if (n->ino == ino)
			return n;
	return NULL;
}

/* Returns the node for ino with a reference, creating it if create is set (else NULL if absent). */
static struct node *node_get(struct rfs_fs *fs, uint64_t ino, int create)
{
	pthread_mutex_lock(&fs->nodes_lock);
	struct node *n = node_find_locked(fs, ino);
	if (!n && create) {
		n = calloc(1, sizeof(*n));
		if (n) {
			n->ino = ino;
			pthread_mutex_init(&n->lock, NULL);
			n->hnext = fs->nodes[ino % NODE_BUCKETS];
			fs->nodes[ino % NODE_BUCKETS] = n;
		}
	}
	if (n)
		n->refs++;
	pthread_mutex_unlock(&fs->nodes_lock);
	return n;
}

/* Drops a reference; frees the node when nobody holds or opens it and it is clean. */
static void node_put(struct rfs_fs *fs, struct node *n)
{
	pthread_mutex_lock(&fs->nodes_lock);
	n->refs--;
	if (n->refs == 0 && n->opens == 0) {
		if (!__atomic_load_n(&n->dirty, __ATOMIC_ACQUIRE)) {
			struct node **pp = &fs->nodes[n->ino % NODE_BUCKETS];
			while (*pp != n)
				pp = &(*pp)->hnext;
			*pp = n->hnext;
			pthread_mutex_destroy(&n->lock);
			free(n->blocks);
			free(n);
		}
	}
	pthread_mutex_unlock(&fs->nodes_lock);
}

static struct dblock *dblock_find(struct node *n, uint64_t idx)
{
	for (size_t i = 0; i < n->nblocks; i++)
		if (n->blocks[i].idx == idx)
			return &n->blocks[i];
	return NULL;
}

static void staging_path(struct rfs_fs *fs, uint64_t ino, uint64_t idx, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%" PRIu64 ".%" PRIu64, fs->staging_dir, ino, idx);
}

static int dblock_add(struct node *n, uint64_t idx)
{
	if (n->nblocks == n->cap) {
		size_t nc = n->cap ? n->cap * 2 : 8;
		struct dblock *nb = realloc(n->blocks, nc * sizeof(*nb));
		if (!nb)
			return -ENOMEM;
		n->blocks = nb;
		n->cap = nc;
	}
	n->blocks[n->nblocks].idx = idx;
	n->blocks[n->nblocks].gen = ++n->gen_counter;
	n->nblocks++;
	return 0;
}

/* Staging files are recycled rather than deleted: creating and deleting thousands of small
 * files a second (untar, pip install) makes ext4 scan for reusable inodes on every create
 * (recently_deleted() was 40% of the daemon's CPU in a copy of the Python stdlib). A retired
 * staging file is emptied and renamed to staging/free.N; the next new dirty block renames one
 * back. Recovery ignores free.* names. */
static void staging_retire(struct rfs_fs *fs, const char *path)
{
	pthread_mutex_lock(&fs->free_lock);
	if (fs->nfree < RFS_STAGING_POOL && truncate(path, 0) == 0) {
		char fp[PATH_MAX];
		snprintf(fp, sizeof(fp), "%s/free.%" PRIu64, fs->staging_dir, fs->free_next);
		if (rename(path, fp) == 0) {
			fs->free_ids[fs->nfree++] = fs->free_next++;
			pthread_mutex_unlock(&fs->free_lock);
			return;
		}
	}
	pthread_mutex_unlock(&fs->free_lock);
	unlink(path);
}

/* Creates an empty staging file at path, from the pool when it has one. Returns an fd. */
static int staging_create(struct rfs_fs *fs, const char *path)
{
	pthread_mutex_lock(&fs->free_lock);
	while (fs->nfree) {
		char fp[PATH_MAX];
		snprintf(fp, sizeof(fp), "%s/free.%" PRIu64, fs->staging_dir, fs->free_ids[--fs->nfree]);
		if (rename(fp, path) == 0)
			break;
	}
	pthread_mutex_unlock(&fs->free_lock);
	return open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
}

static void dblock_remove(struct rfs_fs *fs, struct node *n, size_t i)
{
	char path[PATH_MAX];
	staging_path(fs, n->ino, n->blocks[i].idx, path, sizeof(path));
	staging_retire(fs, path);
	n->blocks[i] = n->blocks[n->nblocks - 1];
	n->nblocks--;
}

/* Recomputes the lock-free dirty summary. Caller holds n->lock. */
static void update_dirty(struct node *n)
{
	int d = n->nblocks > 0 || n->attr_dirty;
	if (!d)
		__atomic_store_n(&n->dirty_since_ms, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&n->dirty, d, __ATOMIC_RELEASE);
}

static void mark_dirty(struct node *n)
{
	if (!n->dirty_since_ms)
		__atomic_store_n(&n->dirty_since_ms, rfs_monotonic_ms(), __ATOMIC_RELEASE);
	update_dirty(n);
}

/* ---------- trash ---------- */

static int trash_on(struct rfs_fs *fs)
{
	return fs->cfg.trash_seconds > 0;
}

static void trash_attr(struct rfs_fs *fs, struct rfs_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->ino = RFS_TRASH_INO;
	a->mode = S_IFDIR | 01777; /* sticky: everyone sees the trash, only owners take files out */
	a->nlink = 2;
	a->atime = a->mtime = a->ctime = fs->mount_time;
}

/* ---------- attributes ---------- */

static void attr_to_stat(const struct rfs_attr *a, uint32_t block_size, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = a->ino;
	st->st_mode = a->mode;
	st->st_nlink = a->nlink;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_size = (off_t)a->size;
	st->st_rdev = a->rdev;
	st->st_blksize = (blksize_t)(block_size < 1048576 ? block_size : 1048576);
	st->st_blocks = (blkcnt_t)((a->size + 511) / 512);
	st->st_atim.tv_sec = a->atime / 1000000000;
	st->st_atim.tv_nsec = a->atime % 1000000000;
	st->st_mtim.tv_sec = a->mtime / 1000000000;
	st->st_mtim.tv_nsec = a->mtime % 1000000000;
	st->st_ctim.tv_sec = a->ctime / 1000000000;
	st->st_ctim.tv_nsec = a->ctime % 1000000000;
}

/* Overlays what an open node knows that the DB does not yet. */
static void overlay(struct rfs_fs *fs, struct rfs_attr *a)
{
	struct node *n = node_get(fs, a->ino, 0);
	if (!n)
		return;
	pthread_mutex_lock(&n->lock);
	if (n->attr_dirty) {
		a->size = n->size;
		a->mtime = n->mtime;
		if (n->ctime > a->ctime)
			a->ctime = n->ctime;
		if (n->atime_set)
			a->atime = n->atime;
	}
	pthread_mutex_unlock(&n->lock);
	node_put(fs, n);
}

/* Reads attributes with the overlay applied. */
static int get_attr(struct rfs_fs *fs, uint64_t ino, struct rfs_attr *a)
{
	rfs_meta_lock(fs->meta);
	int rc = rfs_meta_get_attr(fs->meta, ino, a);
	rfs_meta_unlock(fs->meta);
	if (rc == 0)
		overlay(fs, a);
	return rc;
}

int rfs_getattr(struct rfs_fs *fs, uint64_t ino, struct stat *st)
{
	struct rfs_attr a;
	if (ino == RFS_TRASH_INO) {
		trash_attr(fs, &a);
		attr_to_stat(&a, fs->format.block_size, st);
		return 0;
	}
	int rc = get_attr(fs, ino, &a);
	if (rc == 0)
		attr_to_stat(&a, fs->format.block_size, st);
	return rc;
}

int rfs_lookup(struct rfs_fs *fs, uint64_t parent, const char *name, struct stat *st)
{
	uint64_t ino;
	struct rfs_attr a;
	if (strlen(name) > NAME_MAX)
		return -ENAMETOOLONG;
	if (parent == RFS_ROOT_INO && trash_on(fs) && !strcmp(name, RFS_TRASH_NAME)) {
		trash_attr(fs, &a);
		attr_to_stat(&a, fs->format.block_size, st);
		return 0;
	}
	rfs_meta_lock(fs->meta);
	int rc = parent == RFS_TRASH_INO ? rfs_meta_trash_lookup(fs->meta, name, &ino)
					 : rfs_meta_lookup(fs->meta, parent, name, &ino);
	if (rc == 0)
		rc = rfs_meta_get_attr(fs->meta, ino, &a);
	rfs_meta_unlock(fs->meta);
	if (rc < 0)
		return rc;
	overlay(fs, &a);
	attr_to_stat(&a, fs->format.block_size, st);
	return 0;
}

static int check_writable(struct rfs_fs *fs)
{
	return fs->cfg.read_only ? -EROFS : 0;
}

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

static void bg_kick(struct rfs_fs *fs);
static void purge_trash(struct rfs_fs *fs);
static int acl_chmod(struct rfs_fs *fs, uint64_t ino, uint32_t mode);
static int acl_inherit(struct rfs_fs *fs, uint64_t parent, struct rfs_attr *a, uint32_t umask,
		       struct rfs_buf *access, struct rfs_buf *dflt);

/* ---------- block I/O ---------- */

/* The extent of the stored blocks a window fetch covers. */
struct win_extent {
	uint64_t start, end; /* end 0: no block found */
};

static int win_extend(void *arg, const uint8_t hash[RFS_HASH_LEN], const struct rfs_block_loc *loc)
{
	(void)hash;
	struct win_extent *x = arg;
	if (!x->end || loc->off < x->start)
		x->start = loc->off;
	if (loc->off + loc->slen > x->end)
		x->end = loc->off + loc->slen;
	return 0;
}

/* Fetches the stretch of a pack around a small block: from the first to the last block the
 * metadata places within [off - WINDOW_BEFORE, off + WINDOW_AFTER). Returns a held window,
 * NULL with *rc = -EAGAIN (no usable range: fetch the block alone) or NULL with *rc < 0. */
static struct rfs_win *fetch_window(struct rfs_fs *fs, const struct rfs_block_loc *want, int *rc)
{
	struct win_extent x = {0, 0};
	struct rfs_win *win = NULL;
	uint64_t from = want->off > RFS_WINDOW_BEFORE ? want->off - RFS_WINDOW_BEFORE : 0;
	uint64_t to = want->off + want->slen + RFS_WINDOW_AFTER;
	rfs_meta_lock(fs->meta);
	*rc = rfs_meta_blocks_in_range(fs->meta, want->pack, from, to, win_extend, &x);
	rfs_meta_unlock(fs->meta);
	uint64_t start = *rc == 0 ? x.start : 0, end = *rc == 0 ? x.end : 0;
	*rc = -EAGAIN;
	if (end == 0 || want->off < start || want->off + want->slen > end)
		return NULL;
	win = rfs_wincache_begin(fs->wincache, want->pack, start, end);
	if (!win)
		return NULL; /* an overlapping fetch finished meanwhile: the caller looks again */
	char key[64];
	rfs_pack_key(want->pack, key, sizeof(key));
	struct rfs_buf b = {0};
	*rc = rfs_store_get(fs->store, key, start, end - start, &b);
	if (*rc < 0) {
		char cause[256];
		rfs_store_error(fs->store, cause, sizeof(cause));
		RFS_LOG(LOG_ERR, "cannot read pack %s at %" PRIu64 ": %s", key, start, cause[0] ? cause : strerror(-*rc));
		rfs_wincache_done(fs->wincache, win, &b, *rc);
		rfs_wincache_put(fs->wincache, win);
		rfs_buf_free(&b);
		*rc = -EIO;
		return NULL;
	}
	size_t got = b.len;
	rfs_wincache_done(fs->wincache, win, &b, 0);
	rfs_buf_free(&b);
	/* one cache file for the whole range, not one per block in it (ranges.h) */
	const uint8_t *data = rfs_wincache_data(win, start, (uint32_t)got);
	if (data && rfs_ranges_put(fs->ranges, want->pack, start, data, (uint32_t)got) < 0)
		RFS_LOG(LOG_DEBUG, "cannot cache a range of pack %s", key);
	*rc = 0;
	return win;
}

/* A small block from a pack range in the SSD cache: read its stored bytes, decode, verify.
 * Returns -ENOENT when no cached range holds it (or the cached copy is damaged). */
static int load_from_range(struct rfs_fs *fs, const uint8_t hash[RFS_HASH_LEN], const struct rfs_block_loc *want,
			   uint8_t *buf)
{
	uint64_t start = 0;
	int fd = rfs_ranges_open_covering(fs->ranges, want->pack, want->off, want->slen, &start);
	if (fd < 0)
		return -ENOENT;
	uint8_t *src = malloc(want->slen ? want->slen : 1);
	int rc = src ? 0 : -ENOMEM;
	if (rc == 0) {
		ssize_t r = rfs_pread_full(fd, src, want->slen, (off_t)(want->off - start));
		rc = r == (ssize_t)want->slen ? 0 : -ENOENT;
	}
	close(fd);
	if (rc == 0 && rfs_pack_decode_block(src, want->slen, want->codec, want->rlen, hash, buf) < 0) {
		RFS_LOG(LOG_WARNING, "a cached range of pack %s is damaged on the cache disk; fetching from the "
			"store", want->pack);
		rc = -ENOENT;
	}
	free(src);
	return rc;
}

/* A small block (a small file) is fetched together with its neighbours in the pack: files
 * written together are read together (a Python package, a conda env), so one ranged GET
 * serves many of them. The range stays in memory (wincache.h) and in the SSD cache as one
 * entry (ranges.h); each block is decoded and verified from it when read.
 * Returns -EAGAIN to fall back to a single-block GET. */
static int load_window(struct rfs_fs *fs, const uint8_t hash[RFS_HASH_LEN], const struct rfs_block_loc *want,
		       uint8_t *buf, int *fetched)
{
	int rc = -EAGAIN;
	struct rfs_win *win = NULL;
	for (int tries = 0; tries < 3 && !win; tries++) {
		win = rfs_wincache_find(fs->wincache, want->pack, want->off, want->slen);
		if (!win) {
			rc = load_from_range(fs, hash, want, buf);
			if (rc != -ENOENT)
				return rc;
			win = fetch_window(fs, want, &rc);
			if (!win && rc != 0)
				return rc;
			if (win && fetched)
				*fetched = 1;
		}
	}
	if (!win)
		return -EAGAIN;
	const uint8_t *src = rfs_wincache_data(win, want->off, want->slen);
	if (!src) {
		rc = -EAGAIN;
		goto out;
	}
	rc = rfs_pack_decode_block(src, want->slen, want->codec, want->rlen, hash, buf);
	if (rc < 0) {
		char key[64], hex[2 * RFS_HASH_LEN + 1];
		rfs_pack_key(want->pack, key, sizeof(key));
		rfs_hex(hash, RFS_HASH_LEN, hex);
		RFS_LOG(LOG_ERR, "pack %s is corrupt: block %s at offset %" PRIu64 " fails its hash check; "
			"run 'roamfs fsck' on the store", key, hex, want->off);
		rc = -EIO;
		goto out;
	}
out:
	rfs_wincache_put(fs->wincache, win);
	return rc;
}

/* Reads a cached block into a buffer of its size. Returns 0, or -ENOENT when the cache
 * has no (readable) copy. */
static int load_cached_block(struct rfs_fs *fs, const uint8_t hash[RFS_HASH_LEN], uint8_t **out, uint32_t *len)
{
	int fd = rfs_cache_open_block(fs->cache, hash);
	if (fd < 0)
		return -ENOENT;
	struct stat st;
	uint8_t *buf = NULL;
	ssize_t r = -1;
	if (fstat(fd, &st) == 0 && st.st_size <= fs->format.block_size &&
	    (buf = malloc(st.st_size ? (size_t)st.st_size : 1)))
		r = rfs_pread_full(fd, buf, (size_t)st.st_size, 0);
	close(fd);
	if (r < 0 || r != st.st_size) {
		free(buf);
		return -ENOENT;
	}
	*out = buf;
	*len = (uint32_t)r;
	return 0;
}

/* Brings a stored block into memory: cache, else the store (verified, then cached).
 * On success *out is a malloc'd buffer of the block's *len bytes, which the caller frees
 * (a small file's block costs a few KiB, not a block size). *fetched (if not NULL) is set
 * when a small block's pack range had to come from the store. */
static int load_block(struct rfs_fs *fs, const uint8_t hash[RFS_HASH_LEN], uint8_t **out, uint32_t *len,
		      int *fetched)
{
	if (load_cached_block(fs, hash, out, len) == 0)
		return 0;
	struct rfs_block_loc loc;
	rfs_meta_lock(fs->meta);
	int rc = rfs_meta_block_get(fs->meta, hash, &loc);
	rfs_meta_unlock(fs->meta);
	char hex[2 * RFS_HASH_LEN + 1];
	if (rc < 0) {
		rfs_hex(hash, RFS_HASH_LEN, hex);
		RFS_LOG(LOG_ERR, "block %s is named by a file but has no location in the metadata", hex);
		return -EIO;
	}
	if (loc.rlen > fs->format.block_size) {
		RFS_LOG(LOG_ERR, "block in pack %s claims %u bytes, more than the block size", loc.pack, loc.rlen);
		return -EIO;
	}
	uint8_t *buf = malloc(loc.rlen ? loc.rlen : 1);
	if (!buf)
		return -ENOMEM;
	/* a short block is a small file (or a file's tail): fetch its pack neighbours too */
	if (loc.rlen <= RFS_SMALL_BLOCK && loc.rlen < fs->format.block_size) {
		rc = load_window(fs, hash, &loc, buf, fetched);
		if (rc != -EAGAIN)
			goto out;
	}
	char key[64];
	rfs_pack_key(loc.pack, key, sizeof(key));
	struct rfs_buf b = {0};
	rc = rfs_store_get(fs->store, key, loc.off, loc.slen, &b);
	if (rc < 0) {
		char cause[256];
		rfs_store_error(fs->store, cause, sizeof(cause));
		RFS_LOG(LOG_ERR, "cannot read pack %s at %" PRIu64 ": %s", key, loc.off, cause[0] ? cause : strerror(-rc));
		rc = -EIO;
		goto out;
	}
	if (b.len != loc.slen)
		rc = -EIO;
	else
		rc = rfs_pack_decode_block(b.data, loc.slen, loc.codec, loc.rlen, hash, buf);
	rfs_buf_free(&b);
	if (rc < 0) {
		rfs_hex(hash, RFS_HASH_LEN, hex);
		RFS_LOG(LOG_ERR, "pack %s is corrupt: block %s at offset %" PRIu64 " fails its hash check; "
			"run 'roamfs fsck' on the store", key, hex, loc.off);
		rc = -EIO;
		goto out;
	}
	rc = rfs_cache_put(fs->cache, hash, buf, loc.rlen);
	if (rc < 0 && rc != -EFBIG)
		RFS_LOG(LOG_DEBUG, "cannot cache a block: %s", strerror(-rc));
	rc = 0;
out:
	if (rc < 0) {
		free(buf);
		return rc;
	}
	*out = buf;
	*len = loc.rlen;
	return 0;
}

static int block_cached(struct rfs_fs *fs, const uint8_t hash[RFS_HASH_LEN], const struct rfs_block_loc *loc);

struct sibling_list {
	uint64_t ino[RFS_SIBLINGS_MAX];
	size_t n;
};

static int collect_sibling(void *arg, const char *name, uint64_t ino, uint32_t mode, uint64_t cookie)
{
	(void)name;
	(void)cookie;
	struct sibling_list *l = arg;
	if (S_ISREG(mode))
		l->ino[l->n++] = ino;
	return l->n == RFS_SIBLINGS_MAX;
}

/* A small file that had to come from the store: the other files of its directory are likely
 * next (a package being imported, a directory of samples). Most share its pack range, now
 * cached; those in other packs would each cost a serial round trip when read. Their first
 * blocks are queued for the prefetch workers, which fetch those ranges in parallel. At most
 * RFS_SIBLINGS_MAX files, once per directory per RFS_SIBLINGS_AGAIN_MS. */
static void prefetch_siblings(struct rfs_fs *fs, uint64_t ino)
{
	if (!fs->prefetch)
		return;
	uint64_t parent = 0;
	char name[NAME_MAX + 1];
	rfs_meta_lock(fs->meta);
	int rc = rfs_meta_name_of(fs->meta, ino, &parent, name, sizeof(name));
	rfs_meta_unlock(fs->meta);
	if (rc < 0)
		return;
	int64_t now = rfs_monotonic_ms();
	pthread_mutex_lock(&fs->sib_lock);
	int recent = 0;
	size_t oldest = 0;
	for (size_t i = 0; i < RFS_SIBLING_DIRS; i++) {
		if (fs->sib_dir[i] == parent && now - fs->sib_time[i] < RFS_SIBLINGS_AGAIN_MS)
			recent = 1;
		if (fs->sib_time[i] < fs->sib_time[oldest])
			oldest = i;
	}
	if (!recent) {
		fs->sib_dir[oldest] = parent;
		fs->sib_time[oldest] = now;
	}
	pthread_mutex_unlock(&fs->sib_lock);
	if (recent)
		return;
	struct sibling_list *l = calloc(1, sizeof(*l));
	if (!l)
		return;
	rfs_meta_lock(fs->meta);
	rfs_meta_readdir(fs->meta, parent, 0, collect_sibling, l);
	rfs_meta_unlock(fs->meta);
	for (size_t i = 0; i < l->n; i++) {
		uint8_t hash[RFS_HASH_LEN];
		rfs_meta_lock(fs->meta);
		rc = l->ino[i] == ino ? -ENOENT : rfs_meta_bmap_get(fs->meta, l->ino[i], 0, hash);
		rfs_meta_unlock(fs->meta);
		if (rc == 0 && !block_cached(fs, hash, NULL))
			rfs_prefetch_add(fs->prefetch, PF_BLOCK, hash);
	}
	free(l);
}

/* The directory listing and block-map lookups of prefetch_siblings run in a prefetch
 * worker, not in the FUSE read that found the file cold. */
static void queue_siblings(struct rfs_fs *fs, uint64_t ino)
{
	if (!fs->prefetch)
		return;
	uint8_t key[RFS_HASH_LEN] = {0};
	memcpy(key, &ino, sizeof(ino));
	rfs_prefetch_add(fs->prefetch, PF_SIBLINGS, key);
}

/* Reads part of block idx of a file. Caller holds n->lock when n is non-NULL.
 * Bytes past the block's stored length read as zeros. */
static int read_block_part(struct rfs_fs *fs, struct node *n, uint64_t ino, uint64_t idx, uint32_t off,
			   uint32_t len, char *out)
{
	if (n && dblock_find(n, idx)) {
		char path[PATH_MAX];
		staging_path(fs, ino, idx, path, sizeof(path));
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		ssize_t r = rfs_pread_full(fd, out, len, off);
		close(fd);
		if (r < 0)
			return (int)r;
		memset(out + r, 0, len - (size_t)r);
		return 0;
	}
	uint8_t hash[RFS_HASH_LEN];
	rfs_meta_lock(fs->meta);
	int rc = rfs_meta_bmap_get(fs->meta, ino, idx, hash);
	rfs_meta_unlock(fs->meta);
	if (rc == -ENOENT) {
		memset(out, 0, len); /* a hole */
		return 0;
	}
	if (rc < 0)
		return rc;
	for (int attempt = 0; attempt < 2; attempt++) {
		int fd = rfs_cache_open_block(fs->cache, hash);
		if (fd >= 0) {
			ssize_t r = rfs_pread_full(fd, out, len, off);
			close(fd);
			if (r >= 0) {
				memset(out + r, 0, len - (size_t)r);
				return 0;
			}
		}
		/* the readahead may be fetching this very block: wait for it rather than fetch twice */
		if (attempt || !fs->prefetch || !rfs_prefetch_wait_for(fs->prefetch, PF_BLOCK, hash))
			break;
	}
	uint8_t *buf = NULL;
	uint32_t blen = 0;
	int fetched = 0;
	rc = load_block(fs, hash, &buf, &blen, &fetched);
	if (rc == 0) {
		uint32_t avail = off < blen ? blen - off : 0;
		uint32_t c = avail < len ? avail : len;
		memcpy(out, buf + off, c);
		memset(out + c, 0, len - c);
		free(buf);
	}
	if (rc == 0 && fetched && idx == 0)
		queue_siblings(fs, ino);
	return rc;
}

/* Makes block idx dirty, copying its current content into a staging file unless the caller
 * is about to overwrite all of it. Caller holds n->lock. */
static int make_dirty(struct rfs_fs *fs, struct node *n, uint64_t idx, int overwrite_all)
{
	struct dblock *d = dblock_find(n, idx);
	if (d) {
		d->gen = ++n->gen_counter;
		return 0;
	}
	char path[PATH_MAX];
	staging_path(fs, n->ino, idx, path, sizeof(path));
	int fd = staging_create(fs, path);
	if (fd < 0)
		return -errno;
	int rc = 0;
	if (!overwrite_all) {
		uint8_t hash[RFS_HASH_LEN];
		rfs_meta_lock(fs->meta);
		rc = rfs_meta_bmap_get(fs->meta, n->ino, idx, hash);
		rfs_meta_unlock(fs->meta);
		if (rc == 0) {
			uint8_t *buf = NULL;
			uint32_t blen = 0;
			rc = load_block(fs, hash, &buf, &blen, NULL);
			/* never keep more than the file's current size in the block */
			uint64_t start = idx * fs->format.block_size;
			if (rc == 0 && start + blen > n->size)
				blen = n->size > start ? (uint32_t)(n->size - start) : 0;
			if (rc == 0) {
				ssize_t w = rfs_pwrite_full(fd, buf, blen, 0);
				if (w < 0)
					rc = (int)w;
				free(buf);
			}
		} else if (rc == -ENOENT) {
			rc = 0;
		}
	}
	/* Closed before the caller reopens it to write: on ext4 the first close after the
	 * O_TRUNC (or the pool's truncate) is the one that pays auto_da_alloc's immediate
	 * writeback; with nothing written yet it costs nothing. Writing through this fd
	 * instead made a small-file copy 15% slower. */
	close(fd);
	if (rc == 0)
		rc = dblock_add(n, idx);
	if (rc < 0)
		unlink(path);
	return rc;
}

/* Loads the node's size/times from the DB if it has no newer ones. Caller holds n->lock. */
static int node_load_attr(struct rfs_fs *fs, struct node *n)
{
	if (n->attr_dirty)
		return 0;
	struct rfs_attr a;
	rfs_meta_lock(fs->meta);
	int rc = rfs_meta_get_attr(fs->meta, n->ino, &a);
	rfs_meta_unlock(fs->meta);
	if (rc < 0)
		return rc;
	n->size = a.size;
	n->mtime = a.mtime;
	n->ctime = a.ctime;
	return 0;
}

struct clean_part {
	uint64_t idx;
	uint32_t boff, len;
	size_t dst;
};

/* Queues the stored blocks after idx for background fetching (sequential readers). */
static void read_ahead(struct rfs_fs *fs, uint64_t ino, uint64_t idx, uint64_t size)
{
	if (!fs->prefetch)
		return;
	uint64_t last = size ? (size - 1) / fs->format.block_size : 0;
	for (uint64_t i = idx + 1; i <= idx + RFS_READAHEAD_BLOCKS && i <= last; i++) {
		uint8_t hash[RFS_HASH_LEN];
		rfs_meta_lock(fs->meta);
		int rc = rfs_meta_bmap_get(fs->meta, ino, i, hash);
		rfs_meta_unlock(fs->meta);
		if (rc == 0 && !rfs_cache_has(fs->cache, hash))
			rfs_prefetch_add(fs->prefetch, PF_BLOCK, hash);
	}
}

ssize_t rfs_read(struct rfs_fs *fs, uint64_t ino, uint64_t off, size_t size, char *buf)
{
	struct node *n = node_get(fs, ino, 1);
	if (!n)
		return -ENOMEM;
	struct clean_part parts[8], *cp = parts;
	size_t nparts = 0, capparts = 8;
	int sequential = 0;
	uint64_t fsize = 0;
	/* Dirty blocks are read under the node lock (staging may change); stored blocks are read
	 * after it is dropped, so parallel reads of one file fetch in parallel. */
	pthread_mutex_lock(&n->lock);
	ssize_t rc = node_load_attr(fs, n);
	if (rc < 0)
		goto unlock;
	fsize = n->size;
	if (off >= n->size) {
		rc = 0;
		goto unlock;
	}
	if (size > n->size - off)
		size = (size_t)(n->size - off);
	sequential = off == n->ra_next || (off && off / fs->format.block_size == n->ra_next / fs->format.block_size);
	n->ra_next = off + size;
	/* queue readahead once per block a sequential reader enters, not on every request (a
	 * 4 MiB block is read in four 1 MiB requests; each queueing is 16 metadata lookups) */
	if (sequential) {
		uint64_t last = (off + size - 1) / fs->format.block_size;
		if (n->ra_block == last + 1)
			sequential = 0;
		else
			n->ra_block = last + 1;
	}
	uint32_t bs = fs->format.block_size;
	size_t done = 0;
	while (done < size) {
		uint64_t pos = off + done;
		uint64_t idx = pos / bs;
		uint32_t boff = (uint32_t)(pos % bs);
		uint32_t chunk = bs - boff;
		if (chunk > size - done)
			chunk = (uint32_t)(size - done);
		if (dblock_find(n, idx)) {
			int r = read_block_part(fs, n, ino, idx, boff, chunk, buf + done);
			if (r < 0) {
				rc = r;
				goto unlock;
			}
		} else {
			if (nparts == capparts) {
				struct clean_part *np = malloc(capparts * 2 * sizeof(*np));
				if (!np) {
					rc = -ENOMEM;
					goto unlock;
				}
				memcpy(np, cp, nparts * sizeof(*np));
				if (cp != parts)
					free(cp);
				cp = np;
				capparts *= 2;
			}
			cp[nparts++] = (struct clean_part){idx, boff, chunk, done};
		}
		done += chunk;
	}
	rc = (ssize_t)done;
unlock:
	pthread_mutex_unlock(&n->lock);
	for (size_t i = 0; rc >= 0 && i < nparts; i++) {
		int r = read_block_part(fs, NULL, ino, cp[i].idx, cp[i].boff, cp[i].len, buf + cp[i].dst);
		if (r < 0)
			rc = r;
	}
	if (rc > 0 && sequential)
		read_ahead(fs, ino, (off + (uint64_t)rc - 1) / fs->format.block_size, fsize);
	if (cp != parts)
		free(cp);
	node_put(fs, n);
	return rc;
}

/* Whether a block can be read without the store: in the block cache, or (a small block)
 * inside a pack range in the cache. loc may be NULL (looked up). */
static int block_cached(struct rfs_fs *fs, const uint8_t hash[RFS_HASH_LEN], const struct rfs_block_loc *loc)
{
	if (rfs_cache_has(fs->cache, hash))
		return 1;
	struct rfs_block_loc l;
	if (!loc) {
		rfs_meta_lock(fs->meta);
		int rc = rfs_meta_block_get(fs->meta, hash, &l);
		rfs_meta_unlock(fs->meta);
		if (rc < 0)
			return 0;
		loc = &l;
	}
	return loc->rlen <= RFS_SMALL_BLOCK && loc->rlen < fs->format.block_size &&
	       rfs_ranges_has(fs->ranges, loc->pack, loc->off, loc->slen);
}

/* Prefetch worker: bring one block into the cache, or queue a directory's files. */
static void prefetch_job(void *arg, int kind, const uint8_t key[RFS_HASH_LEN])
{
	struct rfs_fs *fs = arg;
	if (kind == PF_SIBLINGS) {
		uint64_t ino;
		memcpy(&ino, key, sizeof(ino));
		prefetch_siblings(fs, ino);
		return;
	}
	if (block_cached(fs, key, NULL))
		return;
	uint8_t *buf = NULL;
	uint32_t len;
	if (load_block(fs, key, &buf, &len, NULL) == 0)
		free(buf);
}

/* Staged data must never take the last free space of the cache disk: the flush that would
 * free it needs room for a metadata transaction (SQLite's WAL). Keep a reserve of a tenth
 * of the disk, between 1 and 64 MiB. */
static int staging_space_ok(struct rfs_fs *fs, size_t incoming)
{
	/* a partial first write materialises up to a whole block */
	uint64_t need = incoming + fs->format.block_size;
	int64_t now = rfs_monotonic_ms();
	pthread_mutex_lock(&fs->space_lock);
	/* statvfs() on every write was a syscall per copied file: far from the reserve, the last
	 * answer serves for RFS_SPACE_CHECK_MS minus what was admitted since; within
	 * RFS_SPACE_SLACK of it every write asks again, so ENOSPC comes exactly when it did. */
	int fresh = fs->space_ms && now - fs->space_ms < RFS_SPACE_CHECK_MS &&
		    fs->space_avail >= fs->space_reserve + need + RFS_SPACE_SLACK;
	if (!fresh) {
		struct statvfs sv;
		if (statvfs(fs->staging_dir, &sv) < 0) {
			pthread_mutex_unlock(&fs->space_lock);
			return 0; /* cannot tell: let the write itself fail if it must */
		}
		uint64_t total = (uint64_t)sv.f_blocks * sv.f_frsize;
		uint64_t reserve = total / 10;
		if (reserve < (1u << 20))
			reserve = 1u << 20;
		if (reserve > (64u << 20))
			reserve = 64u << 20;
		fs->space_avail = (uint64_t)sv.f_bavail * sv.f_frsize;
		fs->space_reserve = reserve;
		fs->space_ms = now;
	}
	int ok = fs->space_avail >= fs->space_reserve + need;
	if (ok)
		fs->space_avail -= incoming;
	pthread_mutex_unlock(&fs->space_lock);
	return ok ? 0 : -ENOSPC;
}

ssize_t rfs_write(struct rfs_fs *fs, uint64_t ino, uint64_t off, const char *buf, size_t size)
{
	if (check_writable(fs))
		return -EROFS;
	if (staging_space_ok(fs, size) < 0) {
		RFS_LOG(LOG_WARNING, "cache disk of '%s' is nearly full: refusing a write to inode %" PRIu64
			" with ENOSPC until staged data is uploaded (free space there or lower --cache-size)",
			fs->cache_dir, ino);
		bg_kick(fs);
		return -ENOSPC;
	}
	struct node *n = node_get(fs, ino, 1);
	if (!n)
		return -ENOMEM;
	pthread_mutex_lock(&n->lock);
	ssize_t rc = node_load_attr(fs, n);
	if (rc < 0)
		goto out;
	uint32_t bs = fs->format.block_size;
	size_t done = 0;
	while (done < size) {
		uint64_t pos = off + done;
		uint64_t idx = pos / bs;
		uint32_t boff = (uint32_t)(pos % bs);
		uint32_t chunk = bs - boff;
		if (chunk > size - done)
			chunk = (uint32_t)(size - done);
		/* the write replaces all old content of the block if it covers [0, old length) */
		uint64_t start = idx * bs;
		uint64_t old_len = n->size > start ? n->size - start : 0;
		if (old_len > bs)
			old_len = bs;
		int all = boff == 0 && chunk >= old_len;
		int r = make_dirty(fs, n, idx, all);
		if (r < 0) {
			rc = r;
			break;
		}
		char path[PATH_MAX];
		staging_path(fs, ino, idx, path, sizeof(path));
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0) {
			rc = -errno;
			break;
		}
		ssize_t w = rfs_pwrite_full(fd, buf + done, chunk, boff);
		close(fd);
		if (w < 0) {
			rc = w;
			break;
		}
		done += chunk;
		if (pos + chunk > n->size)
			n->size = pos + chunk;
	}
	if (done) {
		int64_t now = rfs_now_ns();
		n->mtime = now;
		n->ctime = now;
		n->attr_dirty = 1;
		n->attr_gen++;
		mark_dirty(n);
		rc = (ssize_t)done; /* a partial write reports what landed */
	} else if (rc == 0) {
		rc = 0;
	}
	update_dirty(n);
	if (rc == -ENOSPC || rc == -EDQUOT)
		RFS_LOG(LOG_WARNING, "staging area on '%s' is full: a write to inode %" PRIu64 " failed "
			"(free space on the cache disk or lower --cache-size)", fs->cache_dir, ino);
out:
	pthread_mutex_unlock(&n->lock);
	node_put(fs, n);
	return rc;
}

/* ---------- flush: staging -> pack -> store -> metadata ---------- */

struct sealed {
	struct node *n;
	uint64_t idx, gen;
	int hole;
	uint8_t hash[RFS_HASH_LEN];
};

struct attr_snap {
	struct node *n;
	uint64_t attr_gen;
	int attr_dirty;
	uint64_t size;
	int64_t mtime, ctime;
	int atime_set;
	int64_t atime;
};

struct flush_batch {
	struct sealed *s;
	size_t ns, caps;
	struct rfs_pack_entry *entries; /* blocks stored in packs during this flush */
	char (*entry_pack)[33];
	size_t ne, cape;
	struct rfs_pack pack;
	int pack_open;
};

static int batch_add_sealed(struct flush_batch *b, const struct sealed *s)
{
	if (b->ns == b->caps) {
		size_t nc = b->caps ? b->caps * 2 : 64;
		struct sealed *x = realloc(b->s, nc * sizeof(*x));
		if (!x)
			return -ENOMEM;
		b->s = x;
		b->caps = nc;
	}
	b->s[b->ns++] = *s;
	return 0;
}

static int upload_pack(struct rfs_fs *fs, struct flush_batch *b)
{
	if (!b->pack_open)
		return 0;
	int rc = 0;
	if (b->pack.count == 0)
		goto out;
	rc = rfs_pack_finish(&b->pack);
	if (rc < 0)
		goto out;
	char key[64];
	rfs_pack_key(b->pack.id, key, sizeof(key));
	rc = rfs_store_put(fs->store, key, b->pack.buf.data, b->pack.buf.len);
	if (rc < 0) {
		char cause[256];
		rfs_store_error(fs->store, cause, sizeof(cause));
		RFS_LOG(LOG_WARNING, "cannot upload pack %s: %s; the data stays in staging and is retried",
			key, cause[0] ? cause : strerror(-rc));
		goto out;
	}
	if (b->ne + b->pack.count > b->cape) {
		size_t nc = (b->ne + b->pack.count) * 2;
		struct rfs_pack_entry *e = realloc(b->entries, nc * sizeof(*e));
		if (!e) {
			rc = -ENOMEM;
			goto out;
		}
		b->entries = e;
		char(*p)[33] = realloc(b->entry_pack, nc * sizeof(*p));
		if (!p) {
			rc = -ENOMEM;
			goto out;
		}
		b->entry_pack = p;
		b->cape = nc;
	}
	for (uint32_t i = 0; i < b->pack.count; i++) {
		b->entries[b->ne] = b->pack.entries[i];
		memcpy(b->entry_pack[b->ne], b->pack.id, 33);
		b->ne++;
	}
out:
	rfs_pack_free(&b->pack);
	b->pack_open = 0;
	return rc;
}

static int block_known(struct rfs_fs *fs, struct flush_batch *b, const uint8_t *hash)
{
	for (uint32_t i = 0; b->pack_open && i < b->pack.count; i++)
		if (!memcmp(b->pack.entries[i].hash, hash, RFS_HASH_LEN))
			return 1;
	for (size_t i = 0; i < b->ne; i++)
		if (!memcmp(b->entries[i].hash, hash, RFS_HASH_LEN))
			return 1;
	struct rfs_block_loc loc;
	rfs_meta_lock(fs->meta);
	int rc = rfs_meta_block_get(fs->meta, hash, &loc);
	rfs_meta_unlock(fs->meta);
	return rc == 0;
}

static int all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

/* Seals the dirty blocks of one node into the batch. Caller holds fs->flush_lock. */
static int seal_node(struct rfs_fs *fs, struct flush_batch *b, struct node *n, struct attr_snap *snap,
		     uint8_t *buf)
{
	uint32_t bs = fs->format.block_size;
	pthread_mutex_lock(&n->lock);
	snap->n = n;
	snap->attr_dirty = n->attr_dirty;
	snap->attr_gen = n->attr_gen;
	snap->size = n->size;
	snap->mtime = n->mtime;
	snap->ctime = n->ctime;
	snap->atime_set = n->atime_set;
	snap->atime = n->atime;
	size_t count = n->nblocks;
	struct dblock *list = malloc((count ? count : 1) * sizeof(*list));
	if (!list) {
		pthread_mutex_unlock(&n->lock);
		return -ENOMEM;
	}
	if (count)
		memcpy(list, n->blocks, count * sizeof(*list));
	uint64_t size = n->size;
	pthread_mutex_unlock(&n->lock);
	int rc = 0;
	/* Each block is read under the node lock (a concurrent write cannot tear it) and only if it
	 * is still the generation snapshotted above (else it stays dirty for the next round);
	 * hashing, compression and uploads happen without the lock, and a full pack is uploaded at
	 * once, so a flush of a huge file holds at most one pack in memory. */
	for (size_t i = 0; i < count && rc == 0; i++) {
		struct sealed s = {.n = n, .idx = list[i].idx, .gen = list[i].gen};
		uint64_t start = s.idx * bs;
		if (start >= size) {
			s.hole = 1; /* beyond EOF (a truncate raced us): drop it */
			rc = batch_add_sealed(b, &s);
			continue;
		}
		uint32_t len = size - start < bs ? (uint32_t)(size - start) : bs;
		pthread_mutex_lock(&n->lock);
		struct dblock *d = dblock_find(n, s.idx);
		if (!d || d->gen != s.gen) {
			pthread_mutex_unlock(&n->lock);
			continue; /* written or truncated since the snapshot: next round */
		}
		char path[PATH_MAX];
		staging_path(fs, n->ino, s.idx, path, sizeof(path));
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t r = fd < 0 ? -errno : rfs_pread_full(fd, buf, len, 0);
		if (fd >= 0)
			close(fd);
		pthread_mutex_unlock(&n->lock);
		if (r < 0) {
			rc = (int)r;
			RFS_LOG(LOG_ERR, "cannot read staging file '%s': %s", path, strerror(-rc));
			break;
		}
		memset(buf + r, 0, len - (size_t)r);
		if (all_zero(buf, len)) {
			s.hole = 1;
		} else {
			rfs_sha256(buf, len, s.hash);
			if (!block_known(fs, b, s.hash)) {
				if (!b->pack_open) {
					rfs_pack_init(&b->pack, fs->format.compress);
					b->pack_open = 1;
				}
				rc = rfs_pack_add(&b->pack, s.hash, buf, len, NULL);
			}
		}
		if (rc == 0)
			rc = batch_add_sealed(b, &s);
		if (rc == 0 && b->pack_open && b->pack.buf.len >= RFS_PACK_TARGET)
			rc = upload_pack(fs, b);
	}
	free(list);
	return rc;
}

/* Writes the metadata for everything sealed and uploaded. */
static int commit_batch(struct rfs_fs *fs, struct flush_batch *b, struct attr_snap *snaps, size_t nsnaps)
{
	int rc = rfs_meta_begin(fs->meta);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < b->ne && rc == 0; i++) {
		struct rfs_block_loc loc;
		memcpy(loc.pack, b->entry_pack[i], 33);
		loc.off = b->entries[i].offset;
		loc.slen = b->entries[i].stored_len;
		loc.rlen = b->entries[i].raw_len;
		loc.codec = b->entries[i].codec;
		rc = rfs_meta_block_put(fs->meta, b->entries[i].hash, &loc);
	}
	for (size_t i = 0; i < b->ns && rc == 0; i++) {
		struct sealed *s = &b->s[i];
		if (s->hole)
			rc = rfs_meta_bmap_del(fs->meta, s->n->ino, s->idx);
		else
			rc = rfs_meta_bmap_set(fs->meta, s->n->ino, s->idx, s->hash);
	}
	uint32_t bs = fs->format.block_size;
	for (size_t i = 0; i < nsnaps && rc == 0; i++) {
		struct attr_snap *sn = &snaps[i];
		if (!sn->attr_dirty)
			continue;
		struct rfs_attr a;
		rc = rfs_meta_get_attr(fs->meta, sn->n->ino, &a);
		if (rc == -ENOENT) {
			rc = 0; /* deleted meanwhile */
			rfs_meta_bmap_truncate(fs->meta, sn->n->ino, 0);
			continue;
		}
		if (rc < 0)
			break;
		a.size = sn->size;
		a.mtime = sn->mtime;
		if (sn->ctime > a.ctime)
			a.ctime = sn->ctime;
		if (sn->atime_set)
			a.atime = sn->atime;
		rc = rfs_meta_put_attr(fs->meta, &a);
		if (rc == 0)
			rc = rfs_meta_bmap_truncate(fs->meta, sn->n->ino, (sn->size + bs - 1) / bs);
	}
	if (rc < 0) {
		rfs_meta_rollback(fs->meta);
		return rc;
	}
	return rfs_meta_commit(fs->meta);
}

/* Flushes the given nodes (references held by the caller). */
static int flush_nodes(struct rfs_fs *fs, struct node **nodes, size_t count)
{
	struct flush_batch b;
	memset(&b, 0, sizeof(b));
	struct attr_snap *snaps = calloc(count ? count : 1, sizeof(*snaps));
	uint8_t *buf = malloc(fs->format.block_size);
	int rc = 0;
	if (!snaps || !buf) {
		rc = -ENOMEM;
		goto out;
	}
	pthread_mutex_lock(&fs->flush_lock);
	for (size_t i = 0; i < count && rc == 0; i++)
		rc = seal_node(fs, &b, nodes[i], &snaps[i], buf);
	if (rc == 0)
		rc = upload_pack(fs, &b); /* C1: every pack is stored before the metadata below */
	if (rc == 0 && b.ne)
		rfs_crash_point("after-pack-upload");
	if (rc == 0)
		rc = commit_batch(fs, &b, snaps, count);
	if (rc == 0) {
		/* Retire what was sealed, unless written again meanwhile. */
		for (size_t i = 0; i < b.ns; i++) {
			struct node *n = b.s[i].n;
			pthread_mutex_lock(&n->lock);
			for (size_t j = 0; j < n->nblocks; j++) {
				if (n->blocks[j].idx == b.s[i].idx && n->blocks[j].gen == b.s[i].gen) {
					dblock_remove(fs, n, j);
					break;
				}
			}
			pthread_mutex_unlock(&n->lock);
		}
		for (size_t i = 0; i < count; i++) {
			struct node *n = nodes[i];
			pthread_mutex_lock(&n->lock);
			if (n->attr_gen == snaps[i].attr_gen)
				n->attr_dirty = n->atime_set = 0;
			update_dirty(n);
			pthread_mutex_unlock(&n->lock);
		}
	}
	pthread_mutex_unlock(&fs->flush_lock);
	if (b.pack_open)
		rfs_pack_free(&b.pack);
out:
	free(b.s);
	free(b.entries);
	free(b.entry_pack);
	free(snaps);
	free(buf);
	if (rc == 0 && count)
		rfs_sync_kick(fs->sync);
	return rc;
}

/* Collects dirty nodes (with references). all: every dirty node; else only those closed
 * for writing or dirty for too long. */
static size_t collect_dirty(struct rfs_fs *fs, int all, struct node ***out)
{
	size_t n = 0, cap = 0;
	struct node **list = NULL;
	int64_t now = rfs_monotonic_ms();
	pthread_mutex_lock(&fs->nodes_lock);
	for (size_t i = 0; i < NODE_BUCKETS; i++) {
		for (struct node *x = fs->nodes[i]; x; x = x->hnext) {
			int dirty = __atomic_load_n(&x->dirty, __ATOMIC_ACQUIRE);
			int64_t since = __atomic_load_n(&x->dirty_since_ms, __ATOMIC_ACQUIRE);
			int due = all || x->writers == 0 || (since && now - since >= RFS_MAX_DIRTY_AGE_MS);
			if (!dirty || !due)
				continue;
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 64;
				struct node **nl = realloc(list, nc * sizeof(*nl));
				if (!nl)
					goto done;
				list = nl;
				cap = nc;
			}
			x->refs++;
			list[n++] = x;
		}
	}
done:
	pthread_mutex_unlock(&fs->nodes_lock);
	*out = list;
	return n;
}

static int flush_dirty(struct rfs_fs *fs, int all)
{
	struct node **list;
	size_t n = collect_dirty(fs, all, &list);
	int rc = 0;
	/* bound the batch so one commit doesn't hold thousands of nodes' memory */
	for (size_t i = 0; i < n && rc == 0; i += 4096) {
		size_t c = n - i < 4096 ? n - i : 4096;
		rc = flush_nodes(fs, list + i, c);
	}
	for (size_t i = 0; i < n; i++)
		node_put(fs, list[i]);
	free(list);
	return rc;
}

static void *bg_thread(void *arg)
{
	struct rfs_fs *fs = arg;
	int64_t last_flush = 0;
	pthread_mutex_lock(&fs->bg_lock);
	while (!fs->bg_stop) {
		if (!fs->bg_kick) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			int ms = fs->cfg.flush_interval_ms;
			ts.tv_sec += ms / 1000;
			ts.tv_nsec += (long)(ms % 1000) * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&fs->bg_cond, &fs->bg_lock, &ts);
		}
		if (fs->bg_stop)
			break;
		pthread_mutex_unlock(&fs->bg_lock);
		/* Coalesce: closes arriving within a short window share one pack and one record. */
		int64_t wait = last_flush + RFS_COALESCE_MS - rfs_monotonic_ms();
		if (wait > 0) {
			struct timespec ts = {0, (long)wait * 1000000};
			nanosleep(&ts, NULL);
		}
		pthread_mutex_lock(&fs->bg_lock);
		fs->bg_kick = 0;
		pthread_mutex_unlock(&fs->bg_lock);
		last_flush = rfs_monotonic_ms();
		if (trash_on(fs) && !fs->cfg.read_only &&
		    last_flush - fs->last_purge_ms >= (fs->cfg.trash_seconds < 3600 ? 1000 : 60000)) {
			fs->last_purge_ms = last_flush;
			purge_trash(fs);
		}
		int rc = flush_dirty(fs, 0);
		if (rc < 0)
			RFS_LOG(LOG_WARNING, "background flush failed: %s; retrying", strerror(-rc));
		pthread_mutex_lock(&fs->bg_lock);
	}
	pthread_mutex_unlock(&fs->bg_lock);
	return NULL;
}

static void bg_kick(struct rfs_fs *fs)
{
	pthread_mutex_lock(&fs->bg_lock);
	fs->bg_kick = 1;
	pthread_cond_signal(&fs->bg_cond);
	pthread_mutex_unlock(&fs->bg_lock);
}

int rfs_sync_all(struct rfs_fs *fs)
{
	int rc = flush_dirty(fs, 1);
	if (rc == 0)
		rc = rfs_sync_commit_now(fs->sync);
	return rc;
}

int rfs_fsync(struct rfs_fs *fs, uint64_t ino, int datasync)
{
	(void)datasync; /* metadata is needed to find the data again: both are published */
	struct node *n = node_get(fs, ino, 0);
	int rc = 0;
	if (n) {
		rc = flush_nodes(fs, &n, 1);
		node_put(fs, n);
	}
	if (rc == 0)
		rc = rfs_sync_commit_now(fs->sync);
	return rc;
}

/* ---------- truncate ---------- */

/* Changes a file's size: drops dirty blocks and block map rows past it and trims the block
 * it ends in, so bytes beyond the new size never come back on a later grow. */
static int do_truncate(struct rfs_fs *fs, uint64_t ino, uint64_t size)
{
	struct node *n = node_get(fs, ino, 1);
	if (!n)
		return -ENOMEM;
	pthread_mutex_lock(&fs->flush_lock);
	pthread_mutex_lock(&n->lock);
	uint32_t bs = fs->format.block_size;
	int rc = node_load_attr(fs, n);
	if (rc < 0)
		goto out;
	if (size < n->size) {
		uint64_t keep = (size + bs - 1) / bs; /* blocks still (partly) inside */
		for (size_t i = 0; i < n->nblocks;) {
			if (n->blocks[i].idx >= keep)
				dblock_remove(fs, n, i);
			else
				i++;
		}
		update_dirty(n);
		uint32_t tail = (uint32_t)(size % bs);
		if (tail) {
			uint64_t idx = size / bs;
			rc = make_dirty(fs, n, idx, 0);
			if (rc < 0)
				goto out;
			char path[PATH_MAX];
			staging_path(fs, ino, idx, path, sizeof(path));
			if (truncate(path, tail) < 0) {
				rc = -errno;
				goto out;
			}
			mark_dirty(n);
		}
	}
	rc = rfs_meta_begin(fs->meta);
	if (rc < 0)
		goto out;
	struct rfs_attr a;
	rc = rfs_meta_get_attr(fs->meta, ino, &a);
	if (rc == 0) {
		int64_t now = rfs_now_ns();
		a.size = size;
		a.mtime = now;
		a.ctime = now;
		rc = rfs_meta_put_attr(fs->meta, &a);
		if (rc == 0)
			rc = rfs_meta_bmap_truncate(fs->meta, ino, (size + bs - 1) / bs);
		if (rc == 0 && n->attr_dirty) {
			n->size = size;
			n->mtime = now;
			n->ctime = now;
			n->attr_gen++;
		}
	}
	if (rc < 0)
		rfs_meta_rollback(fs->meta);
	else
		rc = rfs_meta_commit(fs->meta);
	if (rc == 0 && !n->attr_dirty)
		n->size = size;
out:
	pthread_mutex_unlock(&n->lock);
	pthread_mutex_unlock(&fs->flush_lock);
	node_put(fs, n);
	return rc;
}

int rfs_setattr(struct rfs_fs *fs, uint64_t ino, const struct stat *in, int to_set, struct stat *out)
{
	int rc = check_writable(fs);
	if (rc < 0)
		return rc;
	if (ino == RFS_TRASH_INO)
		return -EPERM;
	if (to_set & RFS_SET_SIZE) {
		struct rfs_attr cur;
		rc = get_attr(fs, ino, &cur);
		if (rc < 0)
			return rc;
		if (S_ISDIR(cur.mode))
			return -EISDIR;
		if (!S_ISREG(cur.mode))
			return -EINVAL;
		rc = do_truncate(fs, ino, (uint64_t)in->st_size);
		if (rc < 0)
			return rc;
	}
	if (to_set & ~RFS_SET_SIZE) {
		struct node *n = node_get(fs, ino, 0);
		if (n)
			pthread_mutex_lock(&n->lock);
		if (n && n->attr_dirty && !(to_set & ~RFS_SET_TIMES)) {
			/* Times only, on a file whose size and mtime already wait in the node for the
			 * flush (`cp --preserve`, `tar x`, `rsync -t` right after writing): they join
			 * them there instead of costing a metadata transaction of their own, and are
			 * committed with them, as durable as the data they describe. */
			int64_t now = rfs_now_ns();
			if (to_set & RFS_SET_MTIME_NOW)
				n->mtime = now;
			else if (to_set & RFS_SET_MTIME)
				n->mtime = (int64_t)in->st_mtim.tv_sec * 1000000000 + in->st_mtim.tv_nsec;
			if (to_set & RFS_SET_ATIME_NOW)
				n->atime = now;
			else if (to_set & RFS_SET_ATIME)
				n->atime = (int64_t)in->st_atim.tv_sec * 1000000000 + in->st_atim.tv_nsec;
			if (to_set & (RFS_SET_ATIME | RFS_SET_ATIME_NOW))
				n->atime_set = 1;
			n->ctime = (to_set & RFS_SET_CTIME) ? (int64_t)in->st_ctim.tv_sec * 1000000000 + in->st_ctim.tv_nsec
							   : now;
			n->attr_gen++;
			mark_dirty(n);
			rc = 0;
			goto unlock;
		}
		rc = rfs_meta_begin(fs->meta);
		if (rc < 0)
			goto unlock;
		struct rfs_attr a;
		rc = rfs_meta_get_attr(fs->meta, ino, &a);
		if (rc < 0) {
			rfs_meta_rollback(fs->meta);
			goto unlock;
		}
		int64_t now = rfs_now_ns();
		if (to_set & RFS_SET_MODE) {
			a.mode = (a.mode & S_IFMT) | (in->st_mode & 07777);
			rc = acl_chmod(fs, ino, a.mode);
			if (rc < 0) {
				rfs_meta_rollback(fs->meta);
				goto unlock;
			}
		}
		if (to_set & RFS_SET_UID)
			a.uid = in->st_uid;
		if (to_set & RFS_SET_GID)
			a.gid = in->st_gid;
		if (to_set & RFS_SET_ATIME_NOW)
			a.atime = now;
		else if (to_set & RFS_SET_ATIME)
			a.atime = (int64_t)in->st_atim.tv_sec * 1000000000 + in->st_atim.tv_nsec;
		if (to_set & RFS_SET_MTIME_NOW)
			a.mtime = now;
		else if (to_set & RFS_SET_MTIME)
			a.mtime = (int64_t)in->st_mtim.tv_sec * 1000000000 + in->st_mtim.tv_nsec;
		if (to_set & RFS_SET_CTIME)
			a.ctime = (int64_t)in->st_ctim.tv_sec * 1000000000 + in->st_ctim.tv_nsec;
		else
			a.ctime = now;
		if (n && n->attr_dirty) {
			/* the node's pending size/mtime would otherwise overwrite what we set */
			a.size = n->size;
			if (!(to_set & (RFS_SET_MTIME | RFS_SET_MTIME_NOW)))
				a.mtime = n->mtime;
			n->mtime = a.mtime;
			n->ctime = a.ctime;
			n->attr_gen++;
		}
		rc = rfs_meta_put_attr(fs->meta, &a);
		if (rc < 0)
			rfs_meta_rollback(fs->meta);
		else
			rc = rfs_meta_commit(fs->meta);
	unlock:
		if (n) {
			pthread_mutex_unlock(&n->lock);
			node_put(fs, n);
		}
		if (rc < 0)
			return rc;
	}
	return rfs_getattr(fs, ino, out);
}

/* ---------- namespace ---------- */

/* Creates an inode and its entry in one transaction. */
static int create_node(struct rfs_fs *fs, uint64_t parent, const char *name, uint32_t mode, uint64_t rdev,
		       uint32_t umask, uint32_t uid, uint32_t gid, const char *target, struct rfs_attr *out)
{
	/* the new node's ACLs when the parent has a default ACL (set after its inode row) */
	struct rfs_buf access = {0}, dflt = {0};
	int rc = check_writable(fs);
	if (rc < 0)
		return rc;
	if (strlen(name) > NAME_MAX)
		return -ENAMETOOLONG;
	if (parent == RFS_TRASH_INO || (parent == RFS_ROOT_INO && trash_on(fs) && !strcmp(name, RFS_TRASH_NAME)))
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
	if (!S_ISREG(mode) && !S_ISDIR(mode) && !S_ISCHR(mode) && !S_ISBLK(mode) && !S_ISFIFO(mode) &&
	    !S_ISSOCK(mode))
		return -EINVAL;
	int rc = create_node(fs, parent, name, mode, rdev, umask, uid, gid, NULL, &a);
	if (rc == 0)
		attr_to_stat(&a, fs->format.block_size, out);
	return rc;
}

int rfs_symlink(struct rfs_fs *fs, uint64_t parent, const char *name, const char *target, uint32_t uid,
		uint32_t gid, struct stat *out)
{
	struct rfs_attr a;
	if (strlen(target) >= PATH_MAX)
		return -ENAMETOOLONG;
	int rc = create_node(fs, parent, name, S_IFLNK | 0777, 0, 0, uid, gid, target, &a);
	if (rc == 0)
		attr_to_stat(&a, fs->format.block_size, out);
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
	int rc = check_writable(fs);
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

static int node_is_open(struct rfs_fs *fs, uint64_t ino)
{
	pthread_mutex_lock(&fs->nodes_lock);
	struct node *n = node_find_locked(fs, ino);
	int open = n && n->opens > 0;
	pthread_mutex_unlock(&fs->nodes_lock);
	return open;
}

/* Drops an inode's data and row once its last name and last open handle are gone.
 * Runs inside a transaction. */
static int drop_inode_locked(struct rfs_fs *fs, struct rfs_attr *a)
{
	if (a->nlink > 0 || node_is_open(fs, a->ino))
		return rfs_meta_put_attr(fs->meta, a);
	return rfs_meta_delete_inode(fs->meta, a->ino);
}

static void discard_staging(struct rfs_fs *fs, uint64_t ino)
{
	struct node *n = node_get(fs, ino, 0);
	if (!n)
		return;
	pthread_mutex_lock(&n->lock);
	while (n->nblocks)
		dblock_remove(fs, n, 0);
	n->attr_dirty = n->atime_set = 0;
	update_dirty(n);
	pthread_mutex_unlock(&n->lock);
	node_put(fs, n);
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
	if (rc == 0 && a.nlink == 0 && S_ISREG(a.mode) && trash_on(fs)) {
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
	if (rc == 0 && a.nlink == 0 && !node_is_open(fs, ino))
		*gone = ino;
	return rc;
}

/* Deletes a trashed file for good (expiry, or unlink inside .trash). In a transaction. */
static int trash_delete_locked(struct rfs_fs *fs, uint64_t ino, uint64_t *gone)
{
	int rc = rfs_meta_trash_remove(fs->meta, ino);
	if (rc < 0)
		return rc;
	if (node_is_open(fs, ino))
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

/* Purges trash entries older than the retention. Called by the flusher thread. */
static void purge_trash(struct rfs_fs *fs)
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
		if (trash_delete_locked(fs, list.v[i], &gone) < 0) {
			rfs_meta_rollback(fs->meta);
			continue;
		}
		if (rfs_meta_commit(fs->meta) == 0 && gone)
			discard_staging(fs, gone);
	}
	if (list.n)
		RFS_LOG(LOG_INFO, "purged %zu expired files from the trash", list.n);
}

static int remove_name(struct rfs_fs *fs, uint64_t parent, const char *name, int dir_expected)
{
	int rc = check_writable(fs);
	if (rc < 0)
		return rc;
	if (parent == RFS_ROOT_INO && trash_on(fs) && !strcmp(name, RFS_TRASH_NAME))
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
		if (rc < 0) {
			rfs_meta_rollback(fs->meta);
			return rc;
		}
		rc = rfs_meta_commit(fs->meta);
		if (rc == 0 && gone)
			discard_staging(fs, gone);
		return rc;
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
	if (rc < 0) {
		rfs_meta_rollback(fs->meta);
		return rc;
	}
	rc = rfs_meta_commit(fs->meta);
	if (rc == 0 && gone)
		discard_staging(fs, gone);
	return rc;
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
	int rc = check_writable(fs);
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
	if (trash_on(fs) && ((parent == RFS_ROOT_INO && !strcmp(name, RFS_TRASH_NAME)) ||
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
	rc = rfs_meta_commit(fs->meta);
	if (rc == 0 && gone)
		discard_staging(fs, gone);
	return rc;
fail:
	rfs_meta_rollback(fs->meta);
	return rc;
}

/* ---------- open files ---------- */

int rfs_open(struct rfs_fs *fs, uint64_t ino, int flags)
{
	int acc = flags & O_ACCMODE;
	if (acc != O_RDONLY && fs->cfg.read_only)
		return -EROFS;
	/* close-to-open across hosts: see what others committed before this open */
	rfs_sync_pull_if_older(fs->sync, RFS_OPEN_PULL_AGE_MS);
	struct rfs_attr a;
	int rc = get_attr(fs, ino, &a);
	if (rc < 0)
		return rc;
	struct node *n = node_get(fs, ino, 1);
	if (!n)
		return -ENOMEM;
	pthread_mutex_lock(&fs->nodes_lock);
	n->opens++;
	if (acc != O_RDONLY)
		n->writers++;
	pthread_mutex_unlock(&fs->nodes_lock);
	node_put(fs, n);
	if ((flags & O_TRUNC) && acc != O_RDONLY && S_ISREG(a.mode) && a.size > 0) {
		rc = do_truncate(fs, ino, 0);
		if (rc < 0)
			rfs_release(fs, ino, flags);
	}
	return rc;
}

int rfs_create(struct rfs_fs *fs, uint64_t parent, const char *name, uint32_t mode, int flags, uint32_t umask,
	       uint32_t uid, uint32_t gid, struct stat *out)
{
	struct rfs_attr a;
	int rc = create_node(fs, parent, name, S_IFREG | (mode & 07777), 0, umask, uid, gid, NULL, &a);
	if (rc < 0)
		return rc;
	attr_to_stat(&a, fs->format.block_size, out);
	return rfs_open(fs, a.ino, flags & ~O_TRUNC);
}

int rfs_release(struct rfs_fs *fs, uint64_t ino, int flags)
{
	struct node *n = node_get(fs, ino, 0);
	if (!n)
		return 0;
	pthread_mutex_lock(&fs->nodes_lock);
	n->opens--;
	if ((flags & O_ACCMODE) != O_RDONLY)
		n->writers--;
	int last = n->opens == 0;
	int writers = n->writers;
	pthread_mutex_unlock(&fs->nodes_lock);
	node_put(fs, n);
	struct rfs_attr cur;
	if (last) {
		/* cheap check first: almost every file closed still has a name */
		rfs_meta_lock(fs->meta);
		int named = rfs_meta_get_attr(fs->meta, ino, &cur) != 0 || cur.nlink > 0;
		rfs_meta_unlock(fs->meta);
		if (named)
			last = 0;
	}
	if (last) {
		/* an unlinked file whose last handle just closed: now it can go */
		int rc = rfs_meta_begin(fs->meta);
		if (rc < 0)
			return rc;
		struct rfs_attr a;
		int gone = 0;
		if (rfs_meta_get_attr(fs->meta, ino, &a) == 0 && a.nlink == 0 && !node_is_open(fs, ino) &&
		    rfs_meta_trash_has(fs->meta, ino) == 0) {
			rc = rfs_meta_delete_inode(fs->meta, ino);
			gone = rc == 0;
		}
		if (rc < 0) {
			rfs_meta_rollback(fs->meta);
			return rc;
		}
		rc = rfs_meta_commit(fs->meta);
		if (gone)
			discard_staging(fs, ino);
	}
	if (writers == 0)
		bg_kick(fs);
	return 0;
}

int rfs_fallocate(struct rfs_fs *fs, uint64_t ino, int mode, uint64_t off, uint64_t len)
{
	if (mode & ~FALLOC_FL_KEEP_SIZE)
		return -EOPNOTSUPP;
	if (check_writable(fs))
		return -EROFS;
	struct rfs_attr a;
	int rc = get_attr(fs, ino, &a);
	if (rc < 0)
		return rc;
	if (!S_ISREG(a.mode))
		return -ENODEV;
	/* Blocks are allocated on write in the store; only the size needs to change. */
	if ((mode & FALLOC_FL_KEEP_SIZE) || off + len <= a.size)
		return 0;
	return do_truncate(fs, ino, off + len);
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
	if (xattr_is_selinux(name))
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
static int acl_chmod(struct rfs_fs *fs, uint64_t ino, uint32_t mode)
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
static int acl_inherit(struct rfs_fs *fs, uint64_t parent, struct rfs_attr *a, uint32_t umask,
		       struct rfs_buf *access, struct rfs_buf *dflt)
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
static int acl_set(struct rfs_fs *fs, struct rfs_attr *a, const char *name, const void *value, size_t size,
		   int flags)
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
	int rc = check_writable(fs);
	if (rc == 0)
		rc = xattr_name_ok(name);
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
	return xattr_reply(rc, &b, buf, size);
}

int rfs_removexattr(struct rfs_fs *fs, uint64_t ino, const char *name)
{
	int rc = check_writable(fs);
	if (rc == 0)
		rc = xattr_name_ok(name);
	if (rc < 0)
		return rc == -EOPNOTSUPP && !xattr_is_selinux(name) ? -ENODATA : rc;
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
		return rc;
	}
	return rfs_meta_commit(fs->meta);
}

int rfs_statfs(struct rfs_fs *fs, struct statvfs *st)
{
	uint64_t inodes = 0, bytes = 0;
	rfs_meta_lock(fs->meta);
	rfs_meta_count_inodes(fs->meta, &inodes);
	rfs_meta_total_size(fs->meta, &bytes);
	rfs_meta_unlock(fs->meta);
	/* An object store has no fixed size: report 1 PiB, like other S3 filesystems do. */
	const uint64_t bsize = 4096, total = (1ULL << 50) / bsize, files = 1ULL << 32;
	memset(st, 0, sizeof(*st));
	st->f_bsize = bsize;
	st->f_frsize = bsize;
	st->f_blocks = total;
	uint64_t used = (bytes + bsize - 1) / bsize;
	st->f_bfree = st->f_bavail = used < total ? total - used : 0;
	st->f_files = files;
	st->f_ffree = st->f_favail = inodes < files ? files - inodes : 0;
	st->f_namemax = NAME_MAX;
	return 0;
}

/* ---------- lifecycle ---------- */

/* Re-creates dirty state from staging files left by a daemon that was killed. */
static int recover_staging(struct rfs_fs *fs)
{
	DIR *d = opendir(fs->staging_dir);
	if (!d)
		return -errno;
	struct dirent *de;
	int found = 0;
	uint32_t bs = fs->format.block_size;
	while ((de = readdir(d))) {
		unsigned long long ino, idx;
		char extra;
		if (!strncmp(de->d_name, "free.", 5)) {
			char fp[PATH_MAX];
			snprintf(fp, sizeof(fp), "%s/%s", fs->staging_dir, de->d_name);
			unlink(fp); /* a pooled file of the previous run */
			continue;
		}
		if (sscanf(de->d_name, "%llu.%llu%c", &ino, &idx, &extra) != 2)
			continue;
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s", fs->staging_dir, de->d_name);
		struct rfs_attr a;
		rfs_meta_lock(fs->meta);
		int rc = rfs_meta_get_attr(fs->meta, ino, &a);
		rfs_meta_unlock(fs->meta);
		struct stat st;
		if (rc < 0 || !S_ISREG(a.mode) || stat(path, &st) < 0) {
			unlink(path); /* the file was deleted: its data can go */
			continue;
		}
		struct node *n = node_get(fs, ino, 1);
		if (!n) {
			closedir(d);
			return -ENOMEM;
		}
		pthread_mutex_lock(&n->lock);
		node_load_attr(fs, n);
		uint64_t end = idx * bs + (uint64_t)st.st_size;
		if (!dblock_find(n, idx))
			dblock_add(n, idx);
		if (end > n->size)
			n->size = end;
		if (st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec > n->mtime)
			n->mtime = st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
		n->attr_dirty = 1;
		n->attr_gen++;
		mark_dirty(n);
		pthread_mutex_unlock(&n->lock);
		node_put(fs, n);
		found++;
	}
	closedir(d);
	if (found)
		RFS_LOG(LOG_NOTICE, "recovered %d unsaved blocks from staging; uploading them", found);
	return found;
}

static int drop_orphan(void *arg, uint64_t ino)
{
	struct rfs_fs *fs = arg;
	rfs_meta_delete_inode(fs->meta, ino);
	return 0;
}

static int load_host_id(struct rfs_fs *fs)
{
	rfs_meta_lock(fs->meta);
	int rc = rfs_meta_local_get_text(fs->meta, "host_id", fs->host_id, sizeof(fs->host_id));
	if (rc == -ENOENT) {
		uint8_t rnd[8];
		rfs_random(rnd, sizeof(rnd));
		rfs_hex(rnd, sizeof(rnd), fs->host_id);
		rc = rfs_meta_local_set_text(fs->meta, "host_id", fs->host_id);
	}
	rfs_meta_unlock(fs->meta);
	return rc;
}

int rfs_fs_open(const struct rfs_fs_config *cfg, struct rfs_fs **out, char *err, size_t errlen)
{
	struct rfs_fs *fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	fs->lock_fd = -1;
	fs->cfg = *cfg;
	if (fs->cfg.flush_interval_ms <= 0)
		fs->cfg.flush_interval_ms = 1000;
	if (fs->cfg.sync_interval_ms <= 0)
		fs->cfg.sync_interval_ms = 1000;
	if (fs->cfg.trash_seconds == 0)
		fs->cfg.trash_seconds = RFS_TRASH_SECONDS;
	fs->mount_time = rfs_now_ns();
	pthread_mutex_init(&fs->flush_lock, NULL);
	pthread_mutex_init(&fs->free_lock, NULL);
	pthread_mutex_init(&fs->nodes_lock, NULL);
	pthread_mutex_init(&fs->bg_lock, NULL);
	pthread_mutex_init(&fs->sib_lock, NULL);
	pthread_mutex_init(&fs->space_lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&fs->bg_cond, &ca);
	pthread_condattr_destroy(&ca);
	int rc;
	fs->cache_dir = strdup(cfg->cache_dir);
	if (!fs->cache_dir) {
		rc = -ENOMEM;
		goto fail;
	}
	fs->cfg.cache_dir = fs->cache_dir;
	fs->cfg.store_url = NULL;

	rc = rfs_store_open(cfg->store_url, &fs->store, err, errlen);
	if (rc < 0)
		goto fail;
	fs->meta_store = fs->store;
	rc = rfs_format_read(fs->store, &fs->format, err, errlen);
	if (rc < 0)
		goto fail;
	if (fs->format.meta_url[0]) {
		/* the workspace keeps its log on another store (format --meta) */
		rc = rfs_store_open(fs->format.meta_url, &fs->meta_store, err, errlen);
		if (rc < 0) {
			fs->meta_store = NULL;
			goto fail;
		}
	}
	rc = rfs_mkdir_p(cfg->cache_dir, 0700);
	if (rc < 0) {
		snprintf(err, errlen, "cannot create cache directory '%s': %s", cfg->cache_dir, strerror(-rc));
		goto fail;
	}
	/* One daemon per cache dir: two would share the replica, the staging files and the host
	 * id. The lock lives as long as the daemon (the fd survives the fork that daemonizes). */
	char lockp[PATH_MAX + 8];
	snprintf(lockp, sizeof(lockp), "%s/lock", cfg->cache_dir);
	fs->lock_fd = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fs->lock_fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot open '%s': %s", lockp, strerror(-rc));
		goto fail;
	}
	if (flock(fs->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		snprintf(err, errlen, "cache directory '%s' is in use by another roamfs daemon (see 'roamfs status'); "
			 "give this mount its own --cache-dir", cfg->cache_dir);
		goto fail;
	}
	snprintf(fs->staging_dir, sizeof(fs->staging_dir), "%s/staging", cfg->cache_dir);
	rc = rfs_mkdir_p(fs->staging_dir, 0700);
	if (rc < 0) {
		snprintf(err, errlen, "cannot create staging directory '%s': %s", fs->staging_dir, strerror(-rc));
		goto fail;
	}
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/meta.db", cfg->cache_dir);
	if (access(path, F_OK) < 0) {
		/* a new host: start from the newest checkpoint instead of replaying the whole log */
		int64_t seq = rfs_snapshot_restore(fs->meta_store, path);
		if (seq < 0)
			RFS_LOG(LOG_WARNING, "cannot read checkpoints (%s); replaying the whole log", strerror((int)-seq));
	}
	rc = rfs_meta_open(path, &fs->meta, err, errlen);
	if (rc < 0)
		goto fail;
	rfs_meta_set_exclusive(fs->meta);
	/* A cache dir belongs to one workspace: refuse to mix two. */
	char uuid[64] = "";
	rfs_meta_lock(fs->meta);
	int have = rfs_meta_local_get_text(fs->meta, "workspace", uuid, sizeof(uuid)) == 0;
	if (!have)
		rfs_meta_local_set_text(fs->meta, "workspace", fs->format.uuid);
	rfs_meta_unlock(fs->meta);
	if (have && strcmp(uuid, fs->format.uuid)) {
		snprintf(err, errlen, "cache directory '%s' belongs to another workspace (%s, store has %s); "
			 "use a different --cache-dir", cfg->cache_dir, uuid, fs->format.uuid);
		rc = -EEXIST;
		goto fail;
	}
	rc = load_host_id(fs);
	if (rc < 0) {
		snprintf(err, errlen, "cannot set up host identity in '%s'", path);
		goto fail;
	}
	rc = rfs_cache_open(cfg->cache_dir, cfg->cache_size, &fs->cache);
	if (rc < 0) {
		snprintf(err, errlen, "cannot open block cache in '%s': %s", cfg->cache_dir, strerror(-rc));
		goto fail;
	}
	rc = rfs_ranges_open(fs->cache, cfg->cache_dir, &fs->ranges);
	if (rc < 0) {
		snprintf(err, errlen, "cannot open the range index in '%s': %s", cfg->cache_dir, strerror(-rc));
		goto fail;
	}
	rc = rfs_wincache_open(RFS_WINCACHE_BYTES, &fs->wincache);
	if (rc < 0) {
		snprintf(err, errlen, "cannot allocate the window cache: %s", strerror(-rc));
		goto fail;
	}
	rc = rfs_sync_open(fs->meta_store, fs->meta, fs->host_id, fs->cfg.sync_interval_ms, &fs->sync);
	if (rc < 0)
		goto fail;
	rfs_sync_set_checkpoints(fs->sync, fs->cfg.snapshot_every > 0 ? fs->cfg.snapshot_every : RFS_SNAPSHOT_EVERY,
				 cfg->cache_dir);
	rc = rfs_sync_pull(fs->sync);
	if (rc < 0) {
		struct rfs_sync_stats ss;
		rfs_sync_get_stats(fs->sync, &ss);
		snprintf(err, errlen, "cannot catch up with the metadata log of '%s': %s", fs->store->url,
			 ss.last_error[0] ? ss.last_error : strerror(-rc));
		goto fail;
	}
	if (!fs->cfg.read_only) {
		rc = rfs_sync_probe(fs->sync);
		if (rc < 0) {
			char cause[256];
			rfs_store_error(fs->store, cause, sizeof(cause));
			snprintf(err, errlen, "cannot probe store '%s': %s", fs->store->url, cause[0] ? cause : strerror(-rc));
			goto fail;
		}
		char holder[64] = "";
		rc = rc == 1 ? rfs_sync_acquire_lease(fs->sync, holder, sizeof(holder)) : 0;
		if (rc < 0) {
			snprintf(err, errlen, "cannot take the writer lease of '%s': %s", fs->store->url, strerror(-rc));
			goto fail;
		}
		if (rc == 1) {
			fs->cfg.read_only = 1;
			fprintf(stderr, "roamfs: warning: store '%s' has no conditional create, so one host writes at a "
				"time; host %s holds the writer lease: mounting READ-ONLY and following its changes\n",
				fs->store->url, holder);
			RFS_LOG(LOG_WARNING, "host %s holds the writer lease: read-only", holder);
		}
		rc = 0;
	}
	rfs_meta_begin(fs->meta);
	rfs_meta_orphans(fs->meta, drop_orphan, fs);
	rfs_meta_commit(fs->meta);
	rc = recover_staging(fs);
	if (rc < 0) {
		snprintf(err, errlen, "cannot read staging directory '%s': %s", fs->staging_dir, strerror(-rc));
		goto fail;
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	*out = fs;
	return 0;
fail:
	rfs_sync_close(fs->sync);
	rfs_ranges_close(fs->ranges);
	rfs_cache_close(fs->cache);
	rfs_wincache_close(fs->wincache);
	rfs_meta_close(fs->meta);
	if (fs->meta_store && fs->meta_store != fs->store)
		rfs_store_close(fs->meta_store);
	rfs_store_close(fs->store);
	if (fs->lock_fd >= 0)
		close(fs->lock_fd);
	free(fs->cache_dir);
	free(fs);
	return rc;
}

void rfs_fs_set_invalidate(struct rfs_fs *fs, rfs_inval_cb cb, void *arg)
{
	rfs_sync_set_touch_hook(fs->sync, cb, arg);
}

int rfs_fs_start(struct rfs_fs *fs)
{
	if (rfs_prefetch_start(RFS_PREFETCH_THREADS, prefetch_job, fs, &fs->prefetch) < 0)
		fs->prefetch = NULL; /* no readahead, still correct */
	int rc = pthread_create(&fs->bg_thread, NULL, bg_thread, fs);
	if (rc)
		return -rc;
	fs->bg_running = 1;
	bg_kick(fs); /* upload what recovery found */
	return rfs_sync_start(fs->sync);
}

int rfs_fs_close(struct rfs_fs *fs)
{
	rfs_prefetch_stop(fs->prefetch);
	fs->prefetch = NULL;
	if (fs->bg_running) {
		pthread_mutex_lock(&fs->bg_lock);
		fs->bg_stop = 1;
		pthread_cond_signal(&fs->bg_cond);
		pthread_mutex_unlock(&fs->bg_lock);
		pthread_join(fs->bg_thread, NULL);
	}
	int rc = 0;
	if (!fs->cfg.read_only) {
		for (int attempt = 0; attempt < 3; attempt++) {
			rc = flush_dirty(fs, 1);
			if (rc == 0)
				break;
		}
		if (rc < 0)
			RFS_LOG(LOG_ERR, "could not upload all data at unmount (%s); it stays in '%s' and is "
				"uploaded at the next mount with this cache dir", strerror(-rc), fs->staging_dir);
	}
	int src = rfs_sync_stop(fs->sync, 30000);
	if (src < 0) {
		RFS_LOG(LOG_ERR, "could not publish all metadata at unmount (%s); it is kept in the local "
			"database and published at the next mount with this cache dir", strerror(-src));
		rc = rc ? rc : src;
	}
	for (size_t i = 0; i < NODE_BUCKETS; i++) {
		struct node *n = fs->nodes[i];
		while (n) {
			struct node *next = n->hnext;
			pthread_mutex_destroy(&n->lock);
			free(n->blocks);
			free(n);
			n = next;
		}
	}
	rfs_sync_close(fs->sync);
	rfs_ranges_close(fs->ranges);
	rfs_cache_close(fs->cache);
	rfs_wincache_close(fs->wincache);
	rfs_meta_close(fs->meta);
	if (fs->meta_store && fs->meta_store != fs->store)
		rfs_store_close(fs->meta_store);
	rfs_store_close(fs->store);
	pthread_cond_destroy(&fs->bg_cond);
	pthread_mutex_destroy(&fs->bg_lock);
	pthread_mutex_destroy(&fs->sib_lock);
	pthread_mutex_destroy(&fs->space_lock);
	pthread_mutex_destroy(&fs->nodes_lock);
	pthread_mutex_destroy(&fs->flush_lock);
	pthread_mutex_destroy(&fs->free_lock);
	if (fs->lock_fd >= 0)
		close(fs->lock_fd); /* last: the cache dir is free for the next daemon */
	free(fs->cache_dir);
	free(fs);
	return rc;
}

/* ---------- status ---------- */

void rfs_fs_kick(struct rfs_fs *fs)
{
	bg_kick(fs);
	rfs_sync_kick(fs->sync);
}

void rfs_fs_set_identity(struct rfs_fs *fs, const char *mountpoint)
{
	char host[128] = "";
	gethostname(host, sizeof(host) - 1);
	rfs_sync_set_identity(fs->sync, host, mountpoint);
}

const char *rfs_fs_store_url(struct rfs_fs *fs)
{
	return fs->store->url;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int rfs_fs_get_status(struct rfs_fs *fs, struct rfs_fs_status *st)
{
	memset(st, 0, sizeof(*st));
	snprintf(st->store, sizeof(st->store), "%s", fs->store->url);
	snprintf(st->host_id, sizeof(st->host_id), "%s", fs->host_id);
	snprintf(st->cache_dir, sizeof(st->cache_dir), "%s", fs->cache_dir);
	st->read_only = fs->cfg.read_only;
	st->block_size = fs->format.block_size;
	struct rfs_sync_stats ss;
	rfs_sync_get_stats(fs->sync, &ss);
	st->applied_seq = ss.applied_seq;
	st->pending_changes = ss.pending;
	st->conflicts = ss.conflicts;
	st->last_commit_s = ss.last_commit_ms ? (rfs_monotonic_ms() - ss.last_commit_ms) / 1000 : -1;
	snprintf(st->last_error, sizeof(st->last_error), "%s", ss.last_error);
	if (rfs_sync_store_head(fs->sync, &st->head_seq) < 0)
		st->head_seq = -1;
	/* staged data: what the staging directory holds right now */
	st->oldest_dirty_s = -1;
	DIR *d = opendir(fs->staging_dir);
	if (d) {
		struct dirent *de;
		uint64_t *inos = NULL;
		size_t n = 0, cap = 0;
		time_t now = time(NULL), oldest = 0;
		while ((de = readdir(d))) {
			unsigned long long ino, idx;
			if (sscanf(de->d_name, "%llu.%llu", &ino, &idx) != 2)
				continue;
			char path[PATH_MAX];
			snprintf(path, sizeof(path), "%s/%s", fs->staging_dir, de->d_name);
			struct stat sb;
			if (stat(path, &sb) < 0)
				continue;
			st->dirty_bytes += (uint64_t)sb.st_size;
			if (!oldest || sb.st_mtime < oldest)
				oldest = sb.st_mtime;
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 64;
				uint64_t *ni = realloc(inos, nc * sizeof(*ni));
				if (!ni)
					continue;
				inos = ni;
				cap = nc;
			}
			inos[n++] = ino;
		}
		closedir(d);
		if (n) {
			qsort(inos, n, sizeof(*inos), cmp_u64);
			st->dirty_files = 1;
			for (size_t i = 1; i < n; i++)
				st->dirty_files += inos[i] != inos[i - 1];
		}
		free(inos);
		if (oldest)
			st->oldest_dirty_s = now - oldest;
	}
	struct rfs_cache_stats cs;
	rfs_cache_get_stats(fs->cache, &cs);
	st->cache_used = cs.used;
	st->cache_limit = cs.limit;
	st->cache_hits = cs.hits;
	st->cache_misses = cs.misses;
	st->cache_blocks = cs.blocks;
	for (int i = 0; i < RFS_REQ_KINDS && i < 5; i++)
		st->requests[i] = __atomic_load_n(&fs->store->requests[i], __ATOMIC_RELAXED);
	st->bytes_in = __atomic_load_n(&fs->store->bytes_in, __ATOMIC_RELAXED);
	st->bytes_out = __atomic_load_n(&fs->store->bytes_out, __ATOMIC_RELAXED);
	return 0;
}

struct host_list {
	char (*keys)[128];
	size_t n, cap;
};

static int collect_host(void *arg, const char *key, uint64_t size)
{
	(void)size;
	struct host_list *h = arg;
	if (h->n == h->cap) {
		size_t nc = h->cap ? h->cap * 2 : 16;
		char(*nk)[128] = realloc(h->keys, nc * sizeof(*nk));
		if (!nk)
			return 1;
		h->keys = nk;
		h->cap = nc;
	}
	snprintf(h->keys[h->n++], 128, "%s", key);
	return h->n >= 1000;
}

int rfs_fs_list_hosts(struct rfs_fs *fs, int max_age_s, int (*cb)(void *arg, const char *id, const char *body),
		      void *arg)
{
	struct host_list h = {0};
	int rc = rfs_store_list(fs->store, "hosts/", collect_host, &h);
	int64_t now = rfs_now_ns() / 1000000000;
	for (size_t i = 0; rc == 0 && i < h.n; i++) {
		struct rfs_buf b = {0};
		if (rfs_store_get(fs->store, h.keys[i], 0, 4096, &b) < 0)
			continue;
		char body[4097];
		memcpy(body, b.data, b.len);
		body[b.len] = 0;
		rfs_buf_free(&b);
		const char *t = strstr(body, "time=");
		long long when = t ? atoll(t + 5) : 0;
		if (now - when > max_age_s || strstr(body, "state=stopped"))
			continue;
		if (cb(arg, h.keys[i] + 6, body))
			break;
	}
	free(h.keys);
	return rc;
}

int rfs_fs_list_conflicts(struct rfs_fs *fs, int limit, int (*cb)(void *arg, int64_t time_ns, const char *what),
			  void *arg)
{
	rfs_meta_lock(fs->meta);
	int rc = rfs_meta_conflicts(fs->meta, limit, cb, arg);
	rfs_meta_unlock(fs->meta);
	return rc;
}

/* ---------- warmup ---------- */

struct hash_list {
	uint8_t (*h)[RFS_HASH_LEN];
	size_t n, cap;
};

static int collect_hash(void *arg, uint64_t idx, const uint8_t hash[RFS_HASH_LEN])
{
	(void)idx;
	struct hash_list *l = arg;
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 1024;
		uint8_t(*nh)[RFS_HASH_LEN] = realloc(l->h, nc * RFS_HASH_LEN);
		if (!nh)
			return 1;
		l->h = nh;
		l->cap = nc;
	}
	memcpy(l->h[l->n++], hash, RFS_HASH_LEN);
	return 0;
}

static int cmp_hash(const void *a, const void *b)
{
	return memcmp(a, b, RFS_HASH_LEN);
}

int rfs_warmup(struct rfs_fs *fs, const uint64_t *inos, size_t n, int jobs,
	       void (*progress)(void *arg, uint64_t, uint64_t, uint64_t, uint64_t), void *arg,
	       struct rfs_warmup_result *res)
{
	struct hash_list l = {0};
	uint32_t *sizes = NULL;
	struct rfs_block_loc *locs = NULL; /* where each block is (rlen 0: unknown) */
	struct rfs_prefetch *pool = NULL;
	int rc = 0;
	memset(res, 0, sizeof(*res));
	rfs_meta_lock(fs->meta);
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = rfs_meta_bmap_each(fs->meta, inos[i], collect_hash, &l);
	rfs_meta_unlock(fs->meta);
	if (rc < 0)
		goto out;
	if (l.n)
		qsort(l.h, l.n, RFS_HASH_LEN, cmp_hash);
	size_t u = 0;
	for (size_t i = 0; i < l.n; i++)
		if (!u || memcmp(l.h[u - 1], l.h[i], RFS_HASH_LEN))
			memcpy(l.h[u++], l.h[i], RFS_HASH_LEN);
	l.n = u;
	sizes = calloc(l.n ? l.n : 1, sizeof(*sizes));
	locs = calloc(l.n ? l.n : 1, sizeof(*locs));
	if (!sizes || !locs) {
		rc = -ENOMEM;
		goto out;
	}
	uint64_t need = 0;
	rfs_meta_lock(fs->meta);
	for (size_t i = 0; i < l.n; i++) {
		if (rfs_meta_block_get(fs->meta, l.h[i], &locs[i]) == 0)
			sizes[i] = locs[i].rlen;
		res->bytes += sizes[i];
	}
	rfs_meta_unlock(fs->meta);
	res->blocks = l.n;
	for (size_t i = 0; i < l.n; i++) {
		if (block_cached(fs, l.h[i], &locs[i]))
			res->already_cached++;
		else
			need += sizes[i];
	}
	struct rfs_cache_stats cs;
	rfs_cache_get_stats(fs->cache, &cs);
	if (res->bytes > cs.limit)
		res->not_fitting_bytes = res->bytes - cs.limit;
	if (res->already_cached < l.n) {
		rc = rfs_prefetch_start(jobs, prefetch_job, fs, &pool);
		if (rc < 0)
			goto out;
		int64_t last = 0;
		for (size_t i = 0; i < l.n; i++) {
			if (!block_cached(fs, l.h[i], &locs[i]))
				rfs_prefetch_add_wait(pool, PF_BLOCK, l.h[i]);
			if (progress && rfs_monotonic_ms() - last >= 500) {
				last = rfs_monotonic_ms();
				uint64_t db = 0, dn = 0;
				for (size_t j = 0; j < l.n; j++)
					if (block_cached(fs, l.h[j], &locs[j])) {
						dn++;
						db += sizes[j];
					}
				progress(arg, dn, l.n, db, res->bytes);
			}
		}
		rfs_prefetch_wait_idle(pool);
	}
	uint64_t done = 0, done_bytes = 0;
	for (size_t i = 0; i < l.n; i++)
		if (block_cached(fs, l.h[i], &locs[i])) {
			done++;
			done_bytes += sizes[i];
		}
	res->fetched = done > res->already_cached ? done - res->already_cached : 0;
	if (done < l.n && !res->not_fitting_bytes)
		res->failed = l.n - done;
	if (progress)
		progress(arg, done, l.n, done_bytes, res->bytes);
out:
	rfs_prefetch_stop(pool);
	free(sizes);
	free(locs);
	free(l.h);
	return rc;
}
