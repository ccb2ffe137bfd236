/*
 * gc.h - checking a store (`roamfs fsck`) and deleting the packs nothing needs (`roamfs gc`).
 *
 * Both work on a private replica: a fresh metadata DB in a temporary directory that replays
 * the store's whole log (rfs_replica_open), so they need no mount and see exactly what any
 * host that catches up would see. Nothing here talks to a running daemon.
 *
 * fsck (rfs_fsck) checks, in order:
 *   1. the log: every record parses and continues the hash chain (the replay stops at the
 *      first one that does not), and no record lies beyond a gap;
 *   2. every pack named by the `blocks` table exists, its trailer lists each block the
 *      metadata places in it at the same offset and lengths, and (unless quick) every such
 *      block's bytes decode and hash right; a pack is fetched once (ranged reads for big ones);
 *   3. every hash the block maps (`bmap`) name has a `blocks` row;
 *   4. which files lose data: each damaged block in use is traced to the files that name it,
 *      by inode and path;
 *   5. packs under data/ that nothing names (orphans: information, not damage).
 * With repair it also fixes what can be fixed without inventing bytes, in one log record:
 * a lost block with an intact copy in another pack is re-pointed there; a lost block with
 * no copy has its `blocks` row removed, so that the next write of the same bytes stores them
 * again instead of deduplicating into nothing. It never deletes store objects.
 *
 * gc (rfs_gc) deletes packs with no live block. A block is live when some `bmap` row names
 * it; a pack is live when the `blocks` table places a live block in it. The rules that keep
 * gc from deleting data some host still needs are in docs/gc.md; in short, a pack goes only
 * when it is dead now, was created more than the grace period ago, no log record newer than
 * the grace period mentions it, and its `blocks` rows were retired (deleted by a log record
 * that gc publishes) at least the grace period earlier: one run retires, a later run deletes.
 *
 * Errors: 0 or a negative errno with a user-facing message in err. A check that finds damage
 * still returns 0: the findings are in the stats and were reported through the callback.
 */
#ifndef RFS_GC_H
#define RFS_GC_H

#include <limits.h>
#include <stdint.h>

#include "backends/backend.h"
#include "fs/format.h"
#include "fs/meta.h"
#include "sync/commit.h"

#ifndef RFS_GC_DEFAULT_GRACE_S
#define RFS_GC_DEFAULT_GRACE_S 3600 /* longer than any flush or pull delay we expect */
#endif

/* A private replica of a store's metadata. */
struct rfs_replica {
	struct rfs_store *store; /* not owned */
	struct rfs_format format;
	struct rfs_format_guard format_guard; /* the sync module's publish guard (format.h) */
	struct rfs_meta *meta;
	struct rfs_sync *sync;
	char dir[PATH_MAX];  /* temporary directory holding meta.db; removed by close */
	int64_t applied_seq; /* the last log record applied */
	int log_ok;          /* 1: the whole log applied; 0: the replay stopped at a bad record */
	char log_error[512]; /* with log_ok 0: why */
};

/* Builds a replica of store's metadata under work_dir (NULL: $TMPDIR, else /tmp), publishing
 * as host_id if it ever commits. A damaged log is not an error here: the replica holds the
 * state before the bad record and log_ok says so. Errors: the store cannot be read (-EIO, ...),
 * no format record, no temporary directory. The caller closes it with rfs_replica_close(). */
int rfs_replica_open(struct rfs_store *store, const char *host_id, const char *work_dir, struct rfs_replica **out,
		     char *err, size_t errlen);
void rfs_replica_close(struct rfs_replica *r);

/* "/dir/name" of an inode in the replica (one of its names if it has several links), or
 * "(unlinked inode N)". Caller holds the meta lock. */
void rfs_replica_path_of(struct rfs_meta *m, uint64_t ino, char *buf, size_t len);

/* What fsck and gc report, one line each, through the callback. */
enum rfs_note_kind {
	RFS_NOTE_INFO,      /* not damage: an orphan pack, what gc did or would do */
	RFS_NOTE_PROBLEM,   /* damage */
	RFS_NOTE_LOST_FILE, /* a file that loses data (path and ino set) */
	RFS_NOTE_REPAIR,    /* what --repair changed */
};

struct rfs_note {
	enum rfs_note_kind kind;
	const char *pack; /* the pack concerned, or NULL */
	const char *path; /* LOST_FILE: the file's path, else NULL */
	uint64_t ino;     /* LOST_FILE: its inode, else 0 */
	const char *msg;  /* one line, no newline; valid during the call */
};

typedef void (*rfs_note_cb)(void *arg, const struct rfs_note *n);

struct rfs_fsck_opts {
	int repair;           /* fix what is safe (see above) */
	int quick;            /* trailers only: do not read and hash block data */
	const char *work_dir; /* for the private replica; NULL: $TMPDIR or /tmp */
	rfs_note_cb cb;       /* may be NULL */
	void *arg;
};

struct rfs_fsck_stats {
	int64_t log_records;                     /* records applied */
	uint64_t packs, blocks;                  /* packs named by `blocks`, and its rows */
	uint64_t blocks_verified;                /* blocks whose bytes were decoded and hashed */
	uint64_t packs_missing, packs_damaged;   /* missing objects; bad trailer or bad blocks */
	uint64_t blocks_bad;                     /* rows whose bytes are missing, corrupt or misplaced */
	uint64_t blocks_unplaced;                /* hashes named by bmap with no `blocks` row */
	uint64_t files_lost;                     /* files that cannot be read in full */
	uint64_t objects, orphans, orphan_bytes; /* objects under data/; those nothing names */
	uint64_t problems;                       /* PROBLEM notes */
	uint64_t repaired, repair_removed;       /* re-pointed to a good copy; rows removed (no copy) */
};

/* Runs the checks. Returns 0 when they ran (st->problems counts the damage found) or a
 * negative errno when they could not (the store failed; err says why). */
int rfs_fsck(struct rfs_store *store, const struct rfs_fsck_opts *o, struct rfs_fsck_stats *st, char *err,
	     size_t errlen);

struct rfs_gc_opts {
	int64_t grace_s;      /* RFS_GC_DEFAULT_GRACE_S unless told; 0 only when no host writes */
	int dry_run;          /* report, change nothing */
	int64_t now_ms;       /* 0: the clock; tests pretend time has passed */
	const char *work_dir; /* for the private replica; NULL: $TMPDIR or /tmp */
	rfs_note_cb cb;       /* may be NULL: one INFO note per pack retired, deleted or kept */
	void *arg;
};

struct rfs_gc_stats {
	uint64_t objects, bytes;                /* packs under data/ when gc started */
	uint64_t live, live_bytes;              /* packs holding a live block */
	uint64_t kept_young, kept_recent;       /* dead but within the grace period (created; named) */
	uint64_t retired_packs, retired_blocks; /* dead packs whose `blocks` rows were removed */
	uint64_t deleted, deleted_bytes;        /* packs deleted (dry run: that would be) */
	uint64_t healed;                        /* `blocks` rows restored for blocks a file still names */
	uint64_t failed;                        /* deletes that failed */
	uint64_t other;                         /* objects under data/ that are not packs: left alone */
	int64_t log_records;
};

/* One gc pass (see above and docs/gc.md). Returns 0 or a negative errno (err says why); a
 * failed delete is counted in st->failed, not an error. */
int rfs_gc(struct rfs_store *store, const struct rfs_gc_opts *o, struct rfs_gc_stats *st, char *err, size_t errlen);

#endif
