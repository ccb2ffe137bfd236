/*
 * prefetch.h - background fetching: a few worker threads that run small jobs off the FUSE
 * threads (bring a block into the SSD cache ahead of the reader; queue a directory's files
 * after a cold read; `warmup`).
 *
 * A job is a kind (the caller's, 0..255) and a 32-byte key (for blocks, the block hash); the
 * queue holds each (kind, key) once, queued or running.
 * rfs_prefetch_start() starts nthreads workers calling run(arg, kind, key) for queued jobs;
 * rfs_prefetch_add() queues a job unless it is already queued or running (returns 0), or
 * drops it when the queue is full (-EAGAIN: readahead is a hint, never a backlog);
 * rfs_prefetch_wait_idle() blocks until the queue is empty and no job runs (claims aside);
 * rfs_prefetch_stop() drops the queue and joins the workers; no caller may be inside
 * rfs_prefetch_claim() then (it frees what they wait on). Jobs may queue further jobs.
 */
#ifndef RFS_PREFETCH_H
#define RFS_PREFETCH_H

#include <stdint.h>

#include "fs/util.h"

struct rfs_prefetch;

typedef void (*rfs_job_fn)(void *arg, int kind, const uint8_t key[RFS_HASH_LEN]);

int rfs_prefetch_start(int nthreads, rfs_job_fn run, void *arg, struct rfs_prefetch **out);
int rfs_prefetch_add(struct rfs_prefetch *p, int kind, const uint8_t key[RFS_HASH_LEN]);
/* Like rfs_prefetch_add, but waits for room instead of dropping (bulk warmup). */
int rfs_prefetch_add_wait(struct rfs_prefetch *p, int kind, const uint8_t key[RFS_HASH_LEN]);
void rfs_prefetch_wait_idle(struct rfs_prefetch *p);
/* A caller (a reader) about to do a job's work itself - fetch a block it needs now - claims
 * it, so that the block is fetched once, not by the reader and a worker at the same time:
 *   1        a worker or another caller was doing it: waited until it finished (the block
 *            is in the cache now, unless that fetch failed); nothing to release
 *   0        claimed (taken out of the queue if it was queued: the reader is not made to wait
 *            behind the readahead); until rfs_prefetch_release() the job is "known" (add
 *            skips it, other claims wait for it)
 *   -EAGAIN  too many claims at once: not tracked, do the work anyway, do not release. */
int rfs_prefetch_claim(struct rfs_prefetch *p, int kind, const uint8_t key[RFS_HASH_LEN]);
void rfs_prefetch_release(struct rfs_prefetch *p, int kind, const uint8_t key[RFS_HASH_LEN]);
void rfs_prefetch_stop(struct rfs_prefetch *p);

#endif
