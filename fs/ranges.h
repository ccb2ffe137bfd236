/*
 * ranges.h - pack ranges kept in the SSD cache, for small blocks.
 *
 * A small block (a small file) is fetched with its pack neighbours in one ranged GET
 * (fs/data.c, load_window). Writing every block of that range into the block cache as a file
 * of its own made ext4's inode allocation and directory creation half of the daemon's CPU in
 * a cold `import`. Instead the fetched range is stored once, as one entry of the block cache
 * (its LRU and size limit apply as to any block) under a key derived from (pack, start,
 * length), and this index says which ranges of which pack are cached. A block inside a
 * cached range is decoded and verified from it when read (small blocks: microseconds).
 *
 * The index is in memory and in DIR/ranges.idx (a line "KEY PACK START LEN" per range),
 * appended on put and rewritten at open without the ranges the cache no longer holds.
 * A range the cache evicted is dropped from the index when it is next looked up.
 *
 * Calling sequence: rfs_ranges_open(cache, dir) after rfs_cache_open(); rfs_ranges_put()
 * after fetching a range; rfs_ranges_open_covering() / rfs_ranges_has() to look up;
 * rfs_ranges_close() before rfs_cache_close(). Thread-safe (one mutex, never held during
 * file I/O other than the index append). The cache is borrowed, not owned.
 * Errors: negative errno. A failed put only means the range is not cached.
 */
#ifndef RFS_RANGES_H
#define RFS_RANGES_H

#include <stdint.h>

#include "fs/cache.h"

struct rfs_ranges;

int rfs_ranges_open(struct rfs_cache *cache, const char *dir, struct rfs_ranges **out);
void rfs_ranges_close(struct rfs_ranges *r);
int rfs_ranges_put(struct rfs_ranges *r, const char *pack, uint64_t start, const void *data, uint32_t len);
/* An fd (the caller closes it) on a cached range of pack that covers [off, off + len), and
 * that range's start offset in the pack; -ENOENT if there is none. */
int rfs_ranges_open_covering(struct rfs_ranges *r, const char *pack, uint64_t off, uint32_t len, uint64_t *start);
/* 1 if a cached range covers [off, off + len) of pack, else 0. */
int rfs_ranges_has(struct rfs_ranges *r, const char *pack, uint64_t off, uint32_t len);

#endif
