/*
 * core_int.h - internal to fs/core.c, fs/data.c and fs/namespace.c, the three files of the
 * filesystem core; not an API (that is core.h, which also gives the lock order). It holds
 * their shared state (struct rfs_fs and its nodes), the tuning parameters, and the few
 * functions one of the files calls in another, each named core_*.
 */
#ifndef RFS_CORE_INT_H
#define RFS_CORE_INT_H

#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "fs/core.h"
#include "fs/format.h"
#include "fs/meta.h"
#include "fs/util.h"

/* Tuning parameters */
#ifndef RFS_PACK_TARGET
#define RFS_PACK_TARGET (32u << 20) /* upload a pack once it holds this many bytes */
#endif
#ifndef RFS_OPEN_PULL_AGE_MS
#define RFS_OPEN_PULL_AGE_MS 200 /* open() pulls the log first if the last pull is older */
#endif
#ifndef RFS_SMALL_BLOCK
#define RFS_SMALL_BLOCK (256u << 10) /* blocks up to this size are fetched with neighbours */
#endif
#define RFS_WINDOW_BEFORE (1u << 20) /* neighbours fetched before a small block's offset */
#define RFS_WINDOW_AFTER (7u << 20)  /* and after it */
#define RFS_SPACE_CHECK_MS 100       /* free space on the cache disk is re-read this often ... */
#define RFS_SPACE_SLACK (256u << 20) /* ... when more than this above the reserve */
#define RFS_SIBLINGS_MAX 64          /* files of a directory prefetched after a cold small read */
#define RFS_SIBLING_DIRS 16          /* directories remembered for ... */
#define RFS_SIBLINGS_AGAIN_MS 30000  /* ... this long */
#ifndef RFS_WINCACHE_BYTES
#define RFS_WINCACHE_BYTES (48u << 20) /* fetched pack ranges kept in memory */
#endif
#ifndef RFS_ADVISE_BLOCKS
#define RFS_ADVISE_BLOCKS 4 /* cached blocks ahead of a sequential reader read in by the kernel */
#endif
#ifndef RFS_READAHEAD_MIN
#define RFS_READAHEAD_MIN 4 /* blocks fetched ahead of a sequential reader at first, */
#endif
#ifndef RFS_READAHEAD_MAX_BYTES
#define RFS_READAHEAD_MAX_BYTES (256u << 20) /* doubling per block entered up to this much, */
#endif
#ifndef RFS_STREAM_AHEAD
#define RFS_STREAM_AHEAD (8u << 20) /* a read this far past a stream's end continues it, */
#endif
#ifndef RFS_STREAM_BEHIND
#define RFS_STREAM_BEHIND \
	(16u << 20) /* as does one this far before: the kernel keeps up to 12
					* (max_background) 1 MiB readahead requests in flight */
#endif
#ifndef RFS_READAHEAD_MAX_BLOCKS
#define RFS_READAHEAD_MAX_BLOCKS 128 /* and this many blocks (the prefetch queue holds 256) */
#endif
#ifndef RFS_RANDOM_MISSES
#define RFS_RANDOM_MISSES 4 /* misses of a random reader before its file is fetched whole */
#endif
#ifndef RFS_FILE_FETCH_CACHE_SHARE
#define RFS_FILE_FETCH_CACHE_SHARE 4 /* only files up to a quarter of the cache size */
#endif
#ifndef RFS_FETCH_MEMORY
#define RFS_FETCH_MEMORY (256u << 20) /* block buffers of the prefetch workers, at most */
#endif
#ifndef RFS_PREFETCH_THREADS
#define RFS_PREFETCH_THREADS \
	16 /* prefetch workers (block fetches in flight) unless
				 * --parallel-fetches says otherwise */
#endif
#ifndef RFS_COALESCE_MS
#define RFS_COALESCE_MS 300 /* background flushes and commits at most this often */
#endif
#ifndef RFS_UPLOADS_IN_FLIGHT
#define RFS_UPLOADS_IN_FLIGHT 3 /* full packs (32 MiB each) uploading while a flush seals the next */
#endif
#ifndef RFS_ARENAS
#define RFS_ARENAS 4 /* staging arena files (a write holds its file's inode lock) */
#endif
#define RFS_STAGE_HDR 64 /* bytes before a staged block's data in its region: which block */
#ifndef RFS_TRASH_SECONDS
#define RFS_TRASH_SECONDS 86400 /* deleted files stay in /.trash for a day by default */
#endif
#ifndef RFS_SNAPSHOT_EVERY
#define RFS_SNAPSHOT_EVERY 2000 /* log records between checkpoints */
#endif
#ifndef RFS_MAX_DIRTY_AGE_MS
#define RFS_MAX_DIRTY_AGE_MS 5000 /* data of a file still open for writing waits at most this */
#endif

/* Prefetch job kinds (prefetch.h): a block hash, or a file whose directory to prefetch. */
/* PF_WARM: a block for `warmup`, whose pool is its own: the job claims the block in the
 * mount's queue (fs->prefetch), so that readers and readahead wait for it, and it for them. */
enum { PF_BLOCK, PF_SIBLINGS, PF_FILE, PF_WARM };
enum { RFS_FETCHED_WINDOW = 1, RFS_FETCHED_BLOCK = 2 }; /* what load_block had to fetch */

/* A dirty block. Its bytes live in region `slot` of the staging arenas (data.c, "staging
 * arenas"): [0, len) is its content, anything past len reads as zeros. Protected by the
 * node's lock. */
struct dblock {
	uint64_t idx;
	uint64_t gen;
	uint64_t slot;
	uint64_t len;
};

struct node {
	uint64_t ino;
	struct node *hnext; /* protected by fs->nodes_lock */
	int refs;           /* protected by fs->nodes_lock: temporary holders */
	int opens, writers; /* protected by fs->nodes_lock */

	pthread_mutex_t lock;
	/* below: protected by lock */
	struct dblock *blocks;
	size_t nblocks, cap;
	uint64_t gen_counter;
	int attr_dirty; /* size/mtime/ctime below are newer than the DB's */
	uint64_t attr_gen;
	uint64_t size;
	int64_t mtime, ctime;
	int atime_set; /* atime below too (set by utimes while attr_dirty) */
	int64_t atime;
	int64_t dirty_since_ms; /* CLOCK_BOOTTIME of the oldest unflushed change, 0: clean */
	uint64_t ra_next;       /* where a sequential reader continues (readahead trigger) */
	uint64_t ra_block;      /* + 1: the block whose readahead was last queued (0: none) */
	uint64_t ra_window;     /* blocks the sequential reader's readahead reaches (0: no stream) */
	uint64_t ra_queued;     /* first block past what its readahead has queued */
	uint64_t ra_gen;        /* + 1 per new stream (readahead_plan) */
	uint64_t random_misses; /* cache misses outside a sequential stream (note_random_miss) */
	int dirty;              /* nblocks || attr_dirty; written under lock, read atomically
			       * under fs->nodes_lock (which must never wait for a node lock) */
};

struct rfs_fs {
	struct rfs_format_guard format_guard; /* the sync module's publish guard (format.h) */
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
	pthread_mutex_t upload_err_lock; /* why the last flush could not store its data, "" once */
	char upload_err[256];            /* a later flush stored everything (shown by status) */
	pthread_mutex_t sib_lock;        /* directories whose files were prefetched lately: */
	uint64_t sib_dir[RFS_SIBLING_DIRS];
	int64_t sib_time[RFS_SIBLING_DIRS];
	struct rfs_format format;
	char host_id[40];

	pthread_mutex_t flush_lock; /* one flush at a time; truncate waits for it */
	int arena_fd[RFS_ARENAS];   /* CACHE/staging/arena.<i>: the staged blocks */
	int no_punch;               /* atomic: the cache file system cannot punch holes */
	uint64_t stage_seq;         /* atomic: the last staged write's number (epoch << 40 | count) */
	uint64_t slot_stride;       /* bytes per region: header + block, page-aligned */
	pthread_mutex_t free_lock;  /* protects the free regions below */
	uint64_t *free_slots;
	size_t nfree, capfree;
	uint64_t slot_next;    /* regions at or past it were never handed out */
	int64_t mount_time;    /* ns: times of the virtual .trash directory */
	int64_t last_purge_ms; /* bg thread only */

	pthread_mutex_t nodes_lock;
	struct node *nodes[4096]; /* protected by nodes_lock */

	pthread_mutex_t bg_lock;
	pthread_cond_t bg_cond;
	int bg_stop, bg_kick, bg_running; /* protected by bg_lock */
	pthread_t bg_thread;
};

#define NODE_BUCKETS (sizeof(((struct rfs_fs *)0)->nodes) / sizeof(struct node *))

/* core.c: the node table, the trash, attributes */

/* The node for ino with a reference, created if create is set (else NULL if absent). */
struct node *core_node_get(struct rfs_fs *fs, uint64_t ino, int create);
/* Drops a reference from core_node_get; frees the node once unheld, unopened and clean. */
void core_node_put(struct rfs_fs *fs, struct node *n);
/* Whether ino has an open handle. */
int core_node_is_open(struct rfs_fs *fs, uint64_t ino);
/* Whether deleted files go to /.trash (trash_seconds > 0). */
int core_trash_on(struct rfs_fs *fs);
/* Fills st from a (st_blksize from the block size). */
void core_attr_to_stat(const struct rfs_attr *a, uint32_t block_size, struct stat *st);
/* Reads ino's attributes from the DB with an open node's newer size and times applied. */
int core_get_attr(struct rfs_fs *fs, uint64_t ino, struct rfs_attr *a);
/* 0, or -EROFS on a read-only mount. */
int core_check_writable(struct rfs_fs *fs);

/* data.c: dirty blocks, block I/O, the flush */

/* Whether a block can be read without the store; loc may be NULL (looked up). */
int core_block_cached(struct rfs_fs *fs, const uint8_t hash[RFS_HASH_LEN], const struct rfs_block_loc *loc);
/* The prefetch workers' job (prefetch.h); arg is the fs, kind PF_BLOCK, PF_SIBLINGS, PF_FILE or PF_WARM. */
void core_prefetch_job(void *arg, int kind, const uint8_t key[RFS_HASH_LEN]);
/* Drops a deleted inode's dirty blocks and pending attributes. */
void core_discard_staging(struct rfs_fs *fs, uint64_t ino);
/* Flushes dirty nodes: all of them, or (all 0) those closed for writing or dirty too long. */
int core_flush_dirty(struct rfs_fs *fs, int all);
/* Copies why staged data cannot be uploaded ("" when it can) into buf. */
void core_upload_error(struct rfs_fs *fs, char *buf, size_t len);
/* The background thread (arg: the fs): flushes dirty nodes and purges the trash. */
void *core_bg_thread(void *arg);
/* Wakes the background thread without waiting. */
void core_bg_kick(struct rfs_fs *fs);
/* At open: dirty state from the staging arenas of a killed daemon (and staging files of
 * earlier versions); returns blocks found or -errno. */
int core_recover_staging(struct rfs_fs *fs);
/* Staged data right now (for status): bytes, distinct files, oldest write (ns, 0 if none).
 * Reads the arenas' headers; safe while the file system runs. Returns 0, or -errno when an
 * arena could not be read (the counts are then too low). */
int core_staged_summary(struct rfs_fs *fs, uint64_t *bytes, uint64_t *files, int64_t *oldest_ns);
/* Open: creates/opens the arenas (0 or -errno). Teardown: closes them, emptied first when
 * nothing is staged any more. */
int core_arenas_open(struct rfs_fs *fs);
void core_arenas_close(struct rfs_fs *fs, int empty);

/* namespace.c: names, the trash, xattrs and ACLs */

/* Deletes trash entries older than the retention (the background thread). */
void core_purge_trash(struct rfs_fs *fs);
/* Keeps ino's access ACL in step with a new mode. Inside a metadata transaction. */
int core_acl_chmod(struct rfs_fs *fs, uint64_t ino, uint32_t mode);

#endif
