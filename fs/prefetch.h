/*
 * prefetch.h - background block fetching: a few worker threads that bring blocks into the
 * SSD cache ahead of the reader (sequential readahead of big files, `warmup`).
 *
 * rfs_prefetch_start() starts nthreads workers calling fetch(arg, hash) for queued hashes;
 * rfs_prefetch_add() queues a hash unless it is already queued or being fetched (returns 0),
 * or drops it when the queue is full (-EAGAIN: readahead is a hint, never a backlog);
 * rfs_prefetch_wait_idle() blocks until the queue is empty and no fetch runs;
 * rfs_prefetch_stop() drops the queue and joins the workers.
 */
#ifndef RFS_PREFETCH_H
#define RFS_PREFETCH_H

#include <stdint.h>

#include "fs/util.h"

struct rfs_prefetch;

typedef void (*rfs_fetch_fn)(void *arg, const uint8_t hash[RFS_HASH_LEN]);

int rfs_prefetch_start(int nthreads, rfs_fetch_fn fetch, void *arg, struct rfs_prefetch **out);
int rfs_prefetch_add(struct rfs_prefetch *p, const uint8_t hash[RFS_HASH_LEN]);
/* Like rfs_prefetch_add, but waits for room instead of dropping (bulk warmup). */
int rfs_prefetch_add_wait(struct rfs_prefetch *p, const uint8_t hash[RFS_HASH_LEN]);
void rfs_prefetch_wait_idle(struct rfs_prefetch *p);
/* If hash is queued or being fetched, waits until that fetch finished and returns 1 (the
 * caller then finds it in the cache); returns 0 at once otherwise. A reader that needs a block
 * the readahead is already fetching waits for it instead of fetching it a second time. */
int rfs_prefetch_wait_for(struct rfs_prefetch *p, const uint8_t hash[RFS_HASH_LEN]);
void rfs_prefetch_stop(struct rfs_prefetch *p);

#endif
