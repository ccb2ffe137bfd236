/*
 * commit.h - the metadata log: publishing local changes to log/<seq> and applying others'.
 *
 * A log record is one object, log/<seq as 20 digits>:
 *     "RFSLOG2 <seq> <prev-hash> <commit-id> <host-id> <time-ns> <raw-len> <stored-len> <sha256>\n"
 *     followed by the changeset (LZ4-compressed when stored-len != raw-len); <sha256> is the
 *     SHA-256 of the raw changeset, checked before SQLite sees it.
 * prev-hash is the SHA-256 of the previous record object (hash chain; 64 zeros for seq 1).
 *
 * Invariants (numbered so code can cite them):
 *  C1. Data before metadata: a changeset naming a block is only created after the pack
 *      holding it was stored (fs/data.c's flush), so a published record never names a missing block.
 *  C2. A record is published with put-if-absent; exactly one host wins each seq.
 *  C3. Before the put, local state `inflight` = "<commit-id> <pending-upto>" is saved. If the
 *      put's outcome is unknown (error, crash), the slot is read back: finding our commit id
 *      means it was committed, and the pending rows up to pending-upto are dropped exactly once.
 *  C4. Records are applied in seq order, each checked against the hash chain; a break stops
 *      the pull loudly instead of applying something unordered.
 *
 * Calling sequence: rfs_sync_open() after the metadata DB is open; rfs_sync_pull() to catch
 * up before serving; rfs_sync_start() starts the background committer (every interval, and
 * when kicked); rfs_sync_commit_now() publishes everything pending and returns when it is in
 * the store (fsync, umount); rfs_sync_stop() does a last commit and stops the thread.
 * Errors: 0 or negative errno; the cause is logged and kept for status in last_error.
 */
#ifndef RFS_COMMIT_H
#define RFS_COMMIT_H

#include <stdint.h>

#include "backends/backend.h"
#include "fs/meta.h"

struct rfs_sync;

/* One parsed log record. cs is malloc'd (the raw, verified changeset); the caller frees it. */
struct rfs_log_record {
	int64_t seq;
	char prev[65], commit_id[33], host[64];
	int64_t time_ns;
	uint8_t *cs;
	size_t cs_len;
	char hash[65]; /* SHA-256 of the whole object: the next record's prev */
};

/* Parses and verifies a log record object (header, lengths, LZ4, changeset hash). 0 or -EINVAL. */
int rfs_log_record_parse(const struct rfs_buf *obj, struct rfs_log_record *r);

struct rfs_sync_stats {
	int64_t applied_seq;
	int64_t pending; /* pending changesets not yet in the log */
	int64_t commits, pulls_applied, conflicts;
	int64_t last_commit_ms; /* CLOCK_BOOTTIME ms of the last successful commit, 0: none */
	char last_error[256];
};

int rfs_sync_open(struct rfs_store *store, struct rfs_meta *meta, const char *host_id, int interval_ms,
		  struct rfs_sync **out);
void rfs_sync_close(struct rfs_sync *s);
/* Applies every record after the local position. Returns the number applied or -errno. */
int rfs_sync_pull(struct rfs_sync *s);
int rfs_sync_start(struct rfs_sync *s);
void rfs_sync_kick(struct rfs_sync *s);
int rfs_sync_commit_now(struct rfs_sync *s);
/* Final commit (retried up to timeout_ms) and thread stop. Returns 0 if nothing is left pending. */
int rfs_sync_stop(struct rfs_sync *s, int timeout_ms);
void rfs_sync_get_stats(struct rfs_sync *s, struct rfs_sync_stats *st);

/* Called by the sync thread, never with a lock held, for everything records from other
 * hosts changed (to invalidate the kernel's caches). Set before rfs_sync_start(). */
void rfs_sync_set_touch_hook(struct rfs_sync *s, rfs_touch_cb cb, void *arg);
/* Called under the commit lock just before this host first writes to the log store (a record
 * or a checkpoint); a non-zero return fails that write, shows in the stats' last_error, and the
 * guard is tried again after RFS_GUARD_RETRY_MS (writes in between fail with -EAGAIN; setting
 * a guard resets that). Once it has returned 0 it is not called again. The workspace's format upgrade hangs here (format.h): every writer,
 * read-only mounts that publish recovered changes included, upgrades before it writes. */
typedef int (*rfs_publish_guard_cb)(void *arg);
void rfs_sync_set_publish_guard(struct rfs_sync *s, rfs_publish_guard_cb cb, void *arg);
/* Who this host is, for its heartbeat object hosts/<host-id> (written every
 * RFS_HEARTBEAT_MS by the sync thread, and at start and stop). */
void rfs_sync_set_identity(struct rfs_sync *s, const char *hostname, const char *mountpoint);
/* The highest seq present in the store's log, found with HEAD probes from our position. */
int rfs_sync_store_head(struct rfs_sync *s, int64_t *head);

/* Checkpoints: every `every` records (0: never) the sync thread writes snap/<seq>.db.lz4,
 * a copy of the replicated DB as of <seq> (only when nothing local is pending, so the copy
 * equals the log's state). tmp_dir holds the copy while it is compressed. */
void rfs_sync_set_checkpoints(struct rfs_sync *s, int64_t every, const char *tmp_dir);
/* Writes a checkpoint now if possible. Returns its seq, 0 if none was due/possible, or -errno. */
int64_t rfs_sync_checkpoint(struct rfs_sync *s, int force);
/* For a host with no local DB: fetches the newest checkpoint into db_path (a new file), so only
 * the log after it needs replaying. Returns its seq, 0 when the store has none (or none this
 * workspace's format_version can trust: see SNAP_MAGIC), or -errno. */
int64_t rfs_snapshot_restore(struct rfs_store *store, const char *db_path, int format_version);

/* Capability probe at mount: does the store refuse a second conditional create of one key?
 * If not (s3rver, Huawei OBS, `conditional=none`), the workspace falls back to a single
 * writer: rfs_sync_acquire_lease() then takes the lease object `lease` (renewed by the sync
 * thread, released at stop) or reports the live holder, and the caller mounts read-only and
 * follows. Returns 1 when in lease mode, 0 when conditional create works, or -errno. */
int rfs_sync_probe(struct rfs_sync *s);
/* 0: this host may write; 1: another host holds the lease (its id in holder); -errno. */
int rfs_sync_acquire_lease(struct rfs_sync *s, char *holder, size_t len);

/* Pulls unless the last pull finished less than max_age_ms ago (close-to-open across hosts). */
int rfs_sync_pull_if_older(struct rfs_sync *s, int max_age_ms);

#endif
