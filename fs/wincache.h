/*
 * wincache.h - recently fetched pack ranges, kept in memory.
 *
 * A small file is fetched together with its pack neighbours (one ranged GET of a few MiB,
 * see load_window in fs/data.c): files written together are read together. Decoding, hashing
 * and writing every neighbour into the SSD cache at once costs one cache file per block
 * before the reader gets its first byte (~0.1 s per window for a Python package). Instead
 * the fetched range is kept here and each block is decoded from it when it is first read.
 *
 * Calling sequence:
 *   w = rfs_wincache_find(c, pack, off, len)      a cached range covering [off, off+len)?
 *   if (!w) { w = rfs_wincache_begin(c, pack, start, end); -- NULL: another thread is
 *             fetching an overlapping range and finished meanwhile; call find again
 *             fetch into a struct rfs_buf; rfs_wincache_done(c, w, &buf, rc); }
 *   use rfs_wincache_data(w, off, len) while holding w; rfs_wincache_put(c, w).
 * find waits while a covering range is being fetched. A failed fetch (done with rc < 0)
 * is dropped and its waiters see NULL. The cache owns the buffers; it holds at most
 * max_bytes of finished ranges, evicting the least recently used unreferenced one.
 * Thread-safe; one mutex, never held while fetching or decoding.
 */
#ifndef RFS_WINCACHE_H
#define RFS_WINCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "fs/util.h"

struct rfs_wincache;
struct rfs_win;

int rfs_wincache_open(size_t max_bytes, struct rfs_wincache **out);
void rfs_wincache_close(struct rfs_wincache *c);
struct rfs_win *rfs_wincache_find(struct rfs_wincache *c, const char *pack, uint64_t off, uint32_t len);
struct rfs_win *rfs_wincache_begin(struct rfs_wincache *c, const char *pack, uint64_t start, uint64_t end);
/* Takes over buf's data when rc == 0 (buf is left empty); wakes waiters. */
void rfs_wincache_done(struct rfs_wincache *c, struct rfs_win *w, struct rfs_buf *buf, int rc);
/* Pointer to the len bytes at pack offset off, or NULL if the fetched range (which may be
 * shorter than asked at the end of a pack) does not hold all of them. */
const uint8_t *rfs_wincache_data(const struct rfs_win *w, uint64_t off, uint32_t len);
void rfs_wincache_put(struct rfs_wincache *c, struct rfs_win *w);

#endif
