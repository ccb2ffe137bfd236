/*
 * format.h - the workspace format record, `roamfs.json` at the root of a store.
 *
 *   {"roamfs": 1, "uuid": "<32 hex>", "block_size": 4194304, "compression": "lz4",
 *    "created": "<ISO time>", "meta": "<store URL>"}       ("meta" only with format --meta)
 *
 * rfs_format_write() creates it with put-if-absent (so two concurrent `format` runs cannot
 * both win) unless force is set. rfs_format_read() loads and validates it; it refuses a
 * version it does not know. Errors: negative errno plus a user-facing message in err.
 *
 * Versions: 1 = the first; 2 = blocks rows carry an xsum (pack.h), so log records name a
 * seventh column of `blocks` that a version-1 roamfs would silently drop (and its gc could
 * then delete packs still in use). This roamfs reads both; before it first writes to the log
 * of a version-1 workspace it rewrites the record as version 2 (rfs_format_upgrade), which
 * older versions then refuse to mount.
 */
#ifndef RFS_FORMAT_H
#define RFS_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "backends/backend.h"

#define RFS_FORMAT_VERSION 2
#define RFS_MIN_BLOCK_SIZE (4U << 10)
#define RFS_MAX_BLOCK_SIZE (64U << 20)
#ifndef RFS_DEFAULT_BLOCK_SIZE
#define RFS_DEFAULT_BLOCK_SIZE (4U << 20) /* big enough for streaming, small enough to cache */
#endif

struct rfs_format {
	int version;
	char uuid[33];
	uint32_t block_size;
	int compress;        /* 1: lz4, 0: none */
	char meta_url[1024]; /* "" or the store that holds log/, snap/, hosts/ (format --meta) */
	char created[32];    /* ISO time of the format; "" (write: now) */
};

int rfs_format_write(struct rfs_store *s, const struct rfs_format *f, int force, char *err, size_t errlen);
int rfs_format_read(struct rfs_store *s, struct rfs_format *f, char *err, size_t errlen);
/* Rewrites an older record (as read into f) at RFS_FORMAT_VERSION; 0 when f is current. */
int rfs_format_upgrade(struct rfs_store *s, struct rfs_format *f, char *err, size_t errlen);
/* rfs_format_upgrade as a publish guard (sync/commit.h): arg is a struct rfs_format_guard;
 * failures are logged. */
struct rfs_format_guard {
	struct rfs_store *store;
	struct rfs_format *format;
};
int rfs_format_guard(void *arg);

#endif
