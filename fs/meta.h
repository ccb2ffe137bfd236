/*
 * meta.h - the metadata replica: one SQLite database per mount (in the cache dir).
 *
 * Shared tables (replicated to every host through the log):
 *   inodes(ino PK, mode, uid, gid, nlink, size, rdev, atime, mtime, ctime)   times in ns
 *   dentries(parent, name, ino, cookie)  PK (parent, name); cookie gives readdir a stable offset
 *   symlinks(ino PK, target)
 *   bmap(ino, idx, hash)                 PK (ino, idx): block idx of the file -> content hash
 *   blocks(hash PK, pack, off, slen, rlen, codec)  where a block's bytes live in the store
 *   xattrs(ino, name, value)             PK (ino, name)
 *   ranges(start PK, host)               per-host ranges of inode and cookie numbers
 * Local tables (never replicated): pending(id, cs) changesets not yet in the log,
 *   local(key, value) host id, applied log seq, id allocator state.
 *
 * Calling sequence: rfs_meta_open(). Every change runs between rfs_meta_begin() and
 * rfs_meta_commit() (or rfs_meta_rollback()); the SQLite session extension records what the
 * transaction changed in the shared tables, and commit stores that changeset in `pending` in
 * the same transaction, so a crash never loses track of an unpublished change. Reads run
 * between rfs_meta_lock() and rfs_meta_unlock(), or inside a transaction.
 * All other calls require one of the two to be held. One mutex serialises the connection.
 *
 * Errors: 0 or negative errno (-ENOENT for a missing row, -EIO for an SQLite failure,
 * which is also logged with SQLite's message).
 */
#ifndef RFS_META_H
#define RFS_META_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "fs/util.h"

#define RFS_ROOT_INO 1
#define RFS_TRASH_DIR_INO 2 /* the virtual .trash directory (core.h: RFS_TRASH_INO) */
/* Each host claims ids in ranges of this size (inode numbers and dirent cookies), at a
 * random multiple of the size below 2^62. */
#define RFS_ID_RANGE (1ULL << 24)
#define RFS_ID_RESERVE 64 /* ids reserved per write of the stored next_id: a restart skips at most this many */

struct rfs_meta;

struct rfs_attr {
	uint64_t ino;
	uint32_t mode, uid, gid, nlink;
	uint64_t size, rdev;
	int64_t atime, mtime, ctime; /* ns since the epoch */
};

struct rfs_block_loc {
	char pack[33];
	uint64_t off;
	uint32_t slen, rlen;
	uint8_t codec;
	uint8_t has_xsum; /* blocks sealed since format 2: reads check xsum instead of the SHA-256 */
	uint64_t xsum;    /* rfs_xsum() of the content (pack.h) */
};

/* The check a read of the block verifies against: its xsum, or NULL for the SHA-256 name. */
static inline const uint64_t *rfs_block_loc_xsum(const struct rfs_block_loc *loc)
{
	return loc->has_xsum ? &loc->xsum : NULL;
}

int rfs_meta_open(const char *path, struct rfs_meta **out, char *err, size_t errlen);
/* Fault injection for tests only: SQLite's progress handler on the replica's connection (a
 * non-zero return from cb interrupts the running statement). cb NULL removes it. */
void rfs_meta_test_progress(struct rfs_meta *m, int every, int (*cb)(void *), void *arg);
void rfs_meta_close(struct rfs_meta *m);
/* The daemon owns its replica (fsck and gc build their own): take SQLite's file lock once
 * instead of with fcntl() calls on every transaction. Other connections then cannot open it. */
int rfs_meta_set_exclusive(struct rfs_meta *m);

void rfs_meta_lock(struct rfs_meta *m);
void rfs_meta_unlock(struct rfs_meta *m);
int rfs_meta_begin(struct rfs_meta *m);     /* lock + BEGIN + start recording */
int rfs_meta_commit(struct rfs_meta *m);    /* record changeset in pending + COMMIT + unlock */
void rfs_meta_rollback(struct rfs_meta *m); /* ROLLBACK + unlock */
/* lock + BEGIN without recording: for applying log entries and local bookkeeping.
 * Ends with rfs_meta_commit() / rfs_meta_rollback() like a recorded one. */
int rfs_meta_begin_unrecorded(struct rfs_meta *m);

int rfs_meta_get_attr(struct rfs_meta *m, uint64_t ino, struct rfs_attr *a);
int rfs_meta_put_attr(struct rfs_meta *m, const struct rfs_attr *a);
/* Removes the inode row and everything hanging off it (blocks map, xattrs, symlink). */
int rfs_meta_delete_inode(struct rfs_meta *m, uint64_t ino);

int rfs_meta_lookup(struct rfs_meta *m, uint64_t parent, const char *name, uint64_t *ino);
int rfs_meta_add_dentry(struct rfs_meta *m, uint64_t parent, const char *name, uint64_t ino);
int rfs_meta_del_dentry(struct rfs_meta *m, uint64_t parent, const char *name);
/* 1 if the directory has no entries, 0 if it has, negative errno on failure. */
int rfs_meta_dir_is_empty(struct rfs_meta *m, uint64_t dir);
/* Calls cb for entries with cookie > after, in cookie order, until cb returns non-zero. */
typedef int (*rfs_dirent_cb)(void *arg, const char *name, uint64_t ino, uint32_t mode, uint64_t cookie);
int rfs_meta_readdir(struct rfs_meta *m, uint64_t dir, uint64_t after, rfs_dirent_cb cb, void *arg);
/* Counts subdirectories (for a directory's nlink). */
/* The directory holding a directory (its ".."); the root is its own parent. */
int rfs_meta_parent_of(struct rfs_meta *m, uint64_t dir, uint64_t *parent);
int rfs_meta_count_subdirs(struct rfs_meta *m, uint64_t dir, uint32_t *n);

int rfs_meta_get_symlink(struct rfs_meta *m, uint64_t ino, char *buf, size_t len);
int rfs_meta_set_symlink(struct rfs_meta *m, uint64_t ino, const char *target);

int rfs_meta_bmap_get(struct rfs_meta *m, uint64_t ino, uint64_t idx, uint8_t hash[RFS_HASH_LEN]);
int rfs_meta_bmap_set(struct rfs_meta *m, uint64_t ino, uint64_t idx, const uint8_t hash[RFS_HASH_LEN]);
int rfs_meta_bmap_del(struct rfs_meta *m, uint64_t ino, uint64_t idx);
/* Drops block map rows with idx >= first. */
int rfs_meta_bmap_truncate(struct rfs_meta *m, uint64_t ino, uint64_t first);
/* Calls cb for each (idx, hash) of a file in idx order (for warmup and fsck). */
typedef int (*rfs_bmap_cb)(void *arg, uint64_t idx, const uint8_t hash[RFS_HASH_LEN]);
int rfs_meta_bmap_each(struct rfs_meta *m, uint64_t ino, rfs_bmap_cb cb, void *arg);

int rfs_meta_block_get(struct rfs_meta *m, const uint8_t hash[RFS_HASH_LEN], struct rfs_block_loc *loc);
int rfs_meta_block_put(struct rfs_meta *m, const uint8_t hash[RFS_HASH_LEN], const struct rfs_block_loc *loc);

/* Blocks stored in pack between byte offsets [from, to), in offset order. */
typedef int (*rfs_block_cb)(void *arg, const uint8_t hash[RFS_HASH_LEN], const struct rfs_block_loc *loc);
int rfs_meta_blocks_in_range(struct rfs_meta *m, const char *pack, uint64_t from, uint64_t to, rfs_block_cb cb,
			     void *arg);

int rfs_meta_xattr_get(struct rfs_meta *m, uint64_t ino, const char *name, struct rfs_buf *out);
/* flags: XATTR_CREATE / XATTR_REPLACE semantics (-EEXIST / -ENODATA). */
int rfs_meta_xattr_set(struct rfs_meta *m, uint64_t ino, const char *name, const void *v, size_t len, int flags);
/* Appends "name\0" for each attribute to out. */
int rfs_meta_xattr_list(struct rfs_meta *m, uint64_t ino, struct rfs_buf *out);
int rfs_meta_xattr_remove(struct rfs_meta *m, uint64_t ino, const char *name);

/* Allocates a fresh id (inode number or cookie) from this host's range; claims a new range
 * in the shared `ranges` table when needed. Must run inside a transaction. */
int rfs_meta_alloc_id(struct rfs_meta *m, uint64_t *id);

int rfs_meta_local_get_int(struct rfs_meta *m, const char *key, int64_t *v);
int rfs_meta_local_set_int(struct rfs_meta *m, const char *key, int64_t v);
int rfs_meta_local_get_text(struct rfs_meta *m, const char *key, char *buf, size_t len);
int rfs_meta_local_set_text(struct rfs_meta *m, const char *key, const char *v);
/* Deletes every local key that starts with prefix. */
int rfs_meta_local_delete_prefix(struct rfs_meta *m, const char *prefix);

/* Pending changesets: combines every row with id <= *upto (0: all) into one changeset in out
 * (empty when nothing is pending) and sets *upto to the highest id included. */
int rfs_meta_pending_collect(struct rfs_meta *m, struct rfs_buf *out, int64_t *upto, int64_t *count);
int rfs_meta_pending_delete_upto(struct rfs_meta *m, int64_t upto);
int rfs_meta_pending_count(struct rfs_meta *m, int64_t *n);
/* Lowest and highest pending row ids (0, 0 when nothing is pending). */
int rfs_meta_pending_range(struct rfs_meta *m, int64_t *lo, int64_t *hi);

/* Whether cs is a well-formed SQLite changeset (every table header and record complete):
 * 0 or -EIO. SQLite 3.40's iterator loops forever on one cut inside a table header, so every
 * function below that reads a changeset checks it first and refuses a damaged one (-EIO or
 * -EINVAL). A cut exactly between two changes is well-formed: the log's record hashes catch
 * that. */
int rfs_meta_changeset_check(const void *cs, size_t len);

/* Applies a changeset from the log (no recording). Conflicting rows take the log's values. */
int rfs_meta_apply_changeset(struct rfs_meta *m, const void *cs, size_t len);

/* What a changeset touches: (ino, 0, NULL) for an inode's attributes, data or xattrs;
 * (0, parent, name) for a directory entry. For kernel cache invalidation. */
typedef void (*rfs_touch_cb)(void *arg, uint64_t ino, uint64_t parent, const char *name);
int rfs_meta_changeset_touched(const void *cs, size_t len, rfs_touch_cb cb, void *arg);

/* Applies a record from the log inside rfs_meta_begin_unrecorded(). When local changes are
 * pending it rebases them: undo them (inverted changeset), apply the remote one, re-apply
 * the local ones under the conflict rules, and replace `pending` with the rebased changeset.
 * Conflict rules: a name created on both sides keeps the remote entry and renames the local
 * one NAME.conflict-HOST-TIME; a row changed on both sides takes the local (later) value;
 * a row the remote deleted stays deleted. Directory link counts are recomputed. Each
 * conflict is recorded in the local `conflicts` table. Returns the number of conflicts. */
int rfs_meta_apply_remote(struct rfs_meta *m, const void *cs, size_t len, const char *host_id);

/* Calls cb for each recorded conflict, newest first, up to limit. */
int rfs_meta_conflicts(struct rfs_meta *m, int limit, int (*cb)(void *arg, int64_t time_ns, const char *what),
		       void *arg);

/* Writes a copy of the replicated state to path (a new SQLite file) for a checkpoint: the
 * shared tables plus the log position (applied_seq, head_hash); no host-local state.
 * Refuses with -EAGAIN while local changes are pending (the copy must equal the log's state
 * at *seq). Takes the lock itself. */
int rfs_meta_export(struct rfs_meta *m, const char *path, int64_t *seq);

/* The trash: files whose last name was removed, kept (nlink 0) until purged or restored.
 * trash_list calls cb(arg, name, ino, mode, cookie=ino) for entries with ino > after that
 * were deleted before before_ns (INT64_MAX: all). trash_has returns 1, 0, or -errno (an error is
 * not "absent": a caller deleting absent inodes would delete a trashed one). */
int rfs_meta_trash_add(struct rfs_meta *m, uint64_t ino, const char *name, uint64_t parent, int64_t t);
int rfs_meta_trash_remove(struct rfs_meta *m, uint64_t ino);
int rfs_meta_trash_lookup(struct rfs_meta *m, const char *name, uint64_t *ino);
int rfs_meta_trash_has(struct rfs_meta *m, uint64_t ino);
int rfs_meta_trash_list(struct rfs_meta *m, uint64_t after, int64_t before_ns, rfs_dirent_cb cb, void *arg);

/* Inodes with nlink 0 (orphans left by a crash while open): calls cb for each. */
int rfs_meta_orphans(struct rfs_meta *m, int (*cb)(void *arg, uint64_t ino), void *arg);
int rfs_meta_count_inodes(struct rfs_meta *m, uint64_t *n);
/* Sum of the sizes of all regular files (for statfs). */
int rfs_meta_total_size(struct rfs_meta *m, uint64_t *bytes);

/* ---------- whole-store queries, for fsck and gc (sync/gc.h) on a private replica ---------- */

/* Creates an index on bmap(hash) (idempotent), which the queries below need to run in
 * O(n log n). Meant for a private replica: a mounted one would pay its space for nothing. */
int rfs_meta_index_block_refs(struct rfs_meta *m);
/* Calls cb for every `blocks` row in (pack, off) order; live is 1 when some bmap row names
 * the hash. loc and hash are valid during the call. Non-zero from cb stops and is returned. */
typedef int (*rfs_block_row_cb)(void *arg, const uint8_t hash[RFS_HASH_LEN], const struct rfs_block_loc *loc, int live);
int rfs_meta_blocks_each(struct rfs_meta *m, rfs_block_row_cb cb, void *arg);
/* A block map row (ino, idx, hash); hash valid during the call. Non-zero stops. */
typedef int (*rfs_bmap_row_cb)(void *arg, uint64_t ino, uint64_t idx, const uint8_t hash[RFS_HASH_LEN]);
/* Every bmap row whose hash has no `blocks` row (a block no one can read), in hash order. */
int rfs_meta_bmap_unplaced(struct rfs_meta *m, rfs_bmap_row_cb cb, void *arg);
/* Each file whose block map names hash: cb(arg, ino, first idx, hash), in ino order. */
int rfs_meta_files_with_block(struct rfs_meta *m, const uint8_t hash[RFS_HASH_LEN], rfs_bmap_row_cb cb, void *arg);
/* One name of an inode (the smallest (parent, name) if it has several links).
 * -ENOENT: no directory entry names it (an unlinked inode). */
int rfs_meta_name_of(struct rfs_meta *m, uint64_t ino, uint64_t *parent, char *name, size_t len);
/* Deletes a `blocks` row (gc retiring a dead block, fsck --repair). -ENOENT if none. */
int rfs_meta_block_del(struct rfs_meta *m, const uint8_t hash[RFS_HASH_LEN]);
/* What a changeset says about blocks: cb(arg, hash, pack) for each `blocks` row it inserts,
 * deletes or updates (old and new values; pack NULL if the side lacks it), and
 * cb(arg, hash, NULL) for each hash a `bmap` row had or gets. For gc's grace rule. */
typedef void (*rfs_block_ref_cb)(void *arg, const uint8_t *hash, const char *pack);
int rfs_meta_changeset_block_refs(const void *cs, size_t len, rfs_block_ref_cb cb, void *arg);

#endif
