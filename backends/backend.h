/*
 * backend.h - the object-store interface every store (file, later s3) implements.
 *
 * Calling sequence: rfs_store_open(url, &store, err, errlen) parses a store URL
 * ("file:///abs/dir" or a plain path) and returns a handle; then any thread may call the
 * six operations below concurrently; rfs_store_close() releases it.
 *
 * Keys are relative '/'-separated names such as "log/00000000000000000001" or
 * "data/ab/<pack-id>". Backends create intermediate "directories" as needed.
 *
 * Error handling: every call returns 0 or a negative errno: -ENOENT (no such key),
 * -EEXIST (put_if_absent lost: the key exists), -EACCES (refused), -EIO (the store failed;
 * retried where the backend retries). The detailed cause (syscall, path, HTTP status) is
 * kept in store->last_error for `status` and the log; rfs_store_error() copies it.
 *
 * Ownership: buffers passed in stay the caller's. rfs_store_get() returns a malloc'd buffer in
 * *out that the caller frees with rfs_buf_free(). List callbacks get names valid only for
 * the duration of the call.
 *
 * Ordering guarantee: when put/put_if_absent returns 0 the object is durable in the store
 * (the file backend has fsynced the data and the directory). That is what lets the sync
 * layer upload data before committing the metadata that names it.
 */
#ifndef RFS_BACKEND_H
#define RFS_BACKEND_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "fs/util.h"

struct rfs_store;

/* Called once per key, in ascending byte order. Return non-zero to stop early. */
typedef int (*rfs_list_cb)(void *arg, const char *key, uint64_t size);

#define RFS_GET_TO_END UINT64_MAX

struct rfs_store_ops {
	const char *name;
	int (*put)(struct rfs_store *s, const char *key, const void *data, size_t len);
	int (*put_if_absent)(struct rfs_store *s, const char *key, const void *data, size_t len);
	int (*get)(struct rfs_store *s, const char *key, uint64_t off, uint64_t len, struct rfs_buf *out);
	int (*head)(struct rfs_store *s, const char *key, uint64_t *size);
	int (*list)(struct rfs_store *s, const char *prefix, rfs_list_cb cb, void *arg);
	int (*del)(struct rfs_store *s, const char *key);
	void (*close)(struct rfs_store *s);
};

/* Request counters, for `status` and cost reports. */
enum rfs_req_kind { RFS_REQ_GET, RFS_REQ_PUT, RFS_REQ_LIST, RFS_REQ_HEAD, RFS_REQ_DELETE, RFS_REQ_KINDS };

struct rfs_store {
	const struct rfs_store_ops *ops; /* first member: the methods */
	char *url;                       /* as given, owned */
	pthread_mutex_t err_lock;
	char last_error[512];             /* protected by err_lock */
	uint64_t requests[RFS_REQ_KINDS]; /* atomic adds */
	uint64_t bytes_in, bytes_out;     /* atomic adds */
};

int rfs_store_open(const char *url, struct rfs_store **out, char *err, size_t errlen);
void rfs_store_close(struct rfs_store *s);

int rfs_store_put(struct rfs_store *s, const char *key, const void *data, size_t len);
int rfs_store_put_if_absent(struct rfs_store *s, const char *key, const void *data, size_t len);
/* Reads len bytes at off (RFS_GET_TO_END: to the end). A short object gives a short buffer. */
int rfs_store_get(struct rfs_store *s, const char *key, uint64_t off, uint64_t len, struct rfs_buf *out);
int rfs_store_head(struct rfs_store *s, const char *key, uint64_t *size);
int rfs_store_list(struct rfs_store *s, const char *prefix, rfs_list_cb cb, void *arg);
int rfs_store_delete(struct rfs_store *s, const char *key);

/* Records the detailed cause of the last failure (printf-style). For backends. */
void rfs_store_set_error(struct rfs_store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Copies the last error into buf (empty string if none). */
void rfs_store_error(struct rfs_store *s, char *buf, size_t len);

/* Backend constructors, used by rfs_store_open. */
int rfs_file_store_open(const char *dir, struct rfs_store **out, char *err, size_t errlen);

#endif
