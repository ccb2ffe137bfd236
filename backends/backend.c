#include "backends/backend.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/s3.h"
#include "fs/log.h"

int rfs_store_open(const char *url, struct rfs_store **out, char *err, size_t errlen)
{
	if (!strncmp(url, "file://", 7))
		return rfs_file_store_open(url + 7, out, err, errlen);
	if (url[0] == '/' || url[0] == '.')
		return rfs_file_store_open(url, out, err, errlen);
	if (!strncmp(url, "s3://", 5) || !strncmp(url, "oss://", 6) || !strncmp(url, "obs://", 6))
		return rfs_s3_store_open(url, out, err, errlen);
	const char *colon = strstr(url, "://");
	if (colon) {
		snprintf(err, errlen,
			 "store type '%.*s' is not supported by this build; use file:///path/to/dir, s3://, oss:// or "
			 "obs://",
			 (int)(colon - url), url);
		return -EPROTONOSUPPORT;
	}
	return rfs_file_store_open(url, out, err, errlen);
}

void rfs_store_close(struct rfs_store *s)
{
	if (s)
		s->ops->close(s);
}

static void count(struct rfs_store *s, enum rfs_req_kind k, uint64_t in, uint64_t outb)
{
	__atomic_add_fetch(&s->requests[k], 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&s->bytes_in, in, __ATOMIC_RELAXED);
	__atomic_add_fetch(&s->bytes_out, outb, __ATOMIC_RELAXED);
}

int rfs_store_put(struct rfs_store *s, const char *key, const void *data, size_t len)
{
	count(s, RFS_REQ_PUT, 0, len);
	return s->ops->put(s, key, data, len);
}

int rfs_store_put_if_absent(struct rfs_store *s, const char *key, const void *data, size_t len)
{
	count(s, RFS_REQ_PUT, 0, len);
	return s->ops->put_if_absent(s, key, data, len);
}

int rfs_store_get(struct rfs_store *s, const char *key, uint64_t off, uint64_t len, struct rfs_buf *out)
{
	int rc = s->ops->get(s, key, off, len, out);
	count(s, RFS_REQ_GET, rc == 0 ? out->len : 0, 0);
	return rc;
}

int rfs_store_head(struct rfs_store *s, const char *key, uint64_t *size)
{
	count(s, RFS_REQ_HEAD, 0, 0);
	return s->ops->head(s, key, size);
}

int rfs_store_list(struct rfs_store *s, const char *prefix, rfs_list_cb cb, void *arg)
{
	count(s, RFS_REQ_LIST, 0, 0);
	return s->ops->list(s, prefix, cb, arg);
}

int rfs_store_delete(struct rfs_store *s, const char *key)
{
	count(s, RFS_REQ_DELETE, 0, 0);
	return s->ops->del(s, key);
}

void rfs_store_set_error(struct rfs_store *s, const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&s->err_lock);
	va_start(ap, fmt);
	vsnprintf(s->last_error, sizeof(s->last_error), fmt, ap);
	va_end(ap);
	RFS_LOG(LOG_WARNING, "store %s: %s", s->url, s->last_error);
	pthread_mutex_unlock(&s->err_lock);
}

void rfs_store_error(struct rfs_store *s, char *buf, size_t len)
{
	pthread_mutex_lock(&s->err_lock);
	snprintf(buf, len, "%s", s->last_error);
	pthread_mutex_unlock(&s->err_lock);
}
