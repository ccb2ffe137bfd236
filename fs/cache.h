/*
 * cache.h - the SSD block cache: decompressed, verified blocks, one file per block,
 * named by content hash under DIR/blocks/<xx>/<hash>.
 *
 * Blocks are immutable and content-addressed, so a cached file is valid forever; the only
 * question is space. The cache keeps total bytes under a limit by evicting least-recently-
 * used blocks. Dirty data never lives here (it is in the staging area, see fs/data.c), so
 * everything here can be evicted at any time.
 *
 * Calling sequence: rfs_cache_open(); any thread: rfs_cache_open_block() to read a block
 * (returns an fd the caller closes; the file stays readable even if evicted meanwhile),
 * rfs_cache_put() after fetching and verifying a block; rfs_cache_close() at exit.
 * Errors: 0/fd or negative errno. A failed put (e.g. ENOSPC) is not fatal to the caller,
 * which still holds the block in memory.
 */
#ifndef RFS_CACHE_H
#define RFS_CACHE_H

#include <stdint.h>

#include "fs/util.h"

struct rfs_cache;

struct rfs_cache_stats {
	uint64_t used, limit, blocks, hits, misses, evictions;
};

int rfs_cache_open(const char *dir, uint64_t limit, struct rfs_cache **out);
void rfs_cache_close(struct rfs_cache *c);
/* Returns a read-only fd on the block, or -ENOENT. Moves it to the front of the LRU. */
int rfs_cache_open_block(struct rfs_cache *c, const uint8_t hash[RFS_HASH_LEN]);
/* Forgets a block whose file cannot be read (a bad sector of the cache disk): the next
 * rfs_cache_put of it writes a new file instead of keeping the bad one. */
void rfs_cache_drop(struct rfs_cache *c, const uint8_t hash[RFS_HASH_LEN]);
/* Counts one read served locally (hit) or from the store (miss) in the stats. The reader
 * counts, once per block it reads, not the lookups: a read may look at the block file, a
 * cached pack range and the in-memory windows before it knows. */
void rfs_cache_count(struct rfs_cache *c, int hit);
/* Whether the block is cached (no hit/miss counted, no LRU change). */
int rfs_cache_has(struct rfs_cache *c, const uint8_t hash[RFS_HASH_LEN]);
/* Starts reading a cached block's file into the page cache in the background (a sequential
 * reader will want it soon). No hit/miss counted, no LRU change. 0, or -ENOENT. */
int rfs_cache_advise(struct rfs_cache *c, const uint8_t hash[RFS_HASH_LEN]);
int rfs_cache_put(struct rfs_cache *c, const uint8_t hash[RFS_HASH_LEN], const void *data, uint32_t len);
void rfs_cache_get_stats(struct rfs_cache *c, struct rfs_cache_stats *st);

#endif
