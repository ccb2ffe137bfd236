/*
 * file.c - the `file` store: a directory, typically an NFS/NAS mount.
 *
 * Writes go to a unique temp file, are fsynced, then renamed into place (put) or hard-linked
 * into place (put_if_absent: link() fails with EEXIST atomically, also over NFS, where O_EXCL
 * on create was historically unreliable and POSIX locks are not trusted across hosts). The
 * parent directory is fsynced after either, so a returned 0 means durable.
 *
 * Listing walks the directory tree under the prefix and returns keys sorted bytewise.
 * Temp files are named ".tmp-*" and are never listed.
 */
#include <dirent.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backends/backend.h"

struct file_store {
	struct rfs_store base; /* first: the methods pointer lives here */
	char *root;
	int ignore_conditional; /* ?conditional=ignore: behave like a store that silently
				 * overwrites on a conditional create (s3rver, OBS); for tests of
				 * the single-writer fallback */
	int latency_ms;         /* ?latency_ms=N: every request waits N ms first, like a round
				 * trip to a cloud store; for benchmarks of latency-bound paths */
	int mibps;              /* ?mibps=N: a GET delivers N MiB/s at most, like one connection
				 * to a cloud store (~100 MB/s on S3); for benchmarks of how
				 * many fetches a reader keeps in flight */
};

static void round_trip(struct rfs_store *s)
{
	int ms = ((struct file_store *)s)->latency_ms;
	if (ms > 0) {
		struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
		nanosleep(&ts, NULL);
	}
}

static int key_path(struct file_store *fs, const char *key, char *buf, size_t len)
{
	if (!key[0] || key[0] == '/' || strstr(key, ".."))
		return -EINVAL;
	if ((size_t)snprintf(buf, len, "%s/%s", fs->root, key) >= len)
		return -ENAMETOOLONG;
	return 0;
}

static int ensure_parent(const char *path)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash)
		return 0;
	*slash = 0;
	return rfs_mkdir_p(dir, 0755);
}

static void fsync_parent(const char *path)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash)
		return;
	*slash = 0;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
}

/* Writes data to a fresh temp file next to path; returns its name in tmp. */
static int write_temp(struct file_store *fs, const char *path, const void *data, size_t len, char *tmp, size_t tmplen)
{
	int rc = ensure_parent(path);
	if (rc < 0) {
		rfs_store_set_error(&fs->base, "cannot create directory for '%s': %s", path, strerror(-rc));
		return rc;
	}
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	*strrchr(dir, '/') = 0;
	uint8_t rnd[8];
	char rhex[17];
	rfs_random(rnd, sizeof(rnd));
	rfs_hex(rnd, sizeof(rnd), rhex);
	snprintf(tmp, tmplen, "%s/.tmp-%s", dir, rhex);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		rfs_store_set_error(&fs->base, "cannot create '%s': %s", tmp, strerror(errno));
		return rc;
	}
	ssize_t w = rfs_pwrite_full(fd, data, len, 0);
	if (w < 0) {
		rc = (int)w;
		rfs_store_set_error(&fs->base, "cannot write '%s': %s", tmp, strerror(-rc));
		goto fail;
	}
	if (fsync(fd) < 0) {
		rc = -errno;
		rfs_store_set_error(&fs->base, "cannot fsync '%s': %s", tmp, strerror(errno));
		goto fail;
	}
	close(fd);
	return 0;
fail:
	close(fd);
	unlink(tmp);
	return rc;
}

/* The first half of both puts: the key's path, and data written to a temp file beside it. */
static int write_beside(struct file_store *fs, const char *key, const void *data, size_t len, char path[PATH_MAX],
			char tmp[PATH_MAX])
{
	int rc = key_path(fs, key, path, PATH_MAX);
	return rc < 0 ? rc : write_temp(fs, path, data, len, tmp, PATH_MAX);
}

static int file_put(struct rfs_store *s, const char *key, const void *data, size_t len)
{
	round_trip(s);
	struct file_store *fs = (struct file_store *)s;
	char path[PATH_MAX], tmp[PATH_MAX];
	int rc = write_beside(fs, key, data, len, path, tmp);
	if (rc < 0)
		return rc;
	if (rename(tmp, path) < 0) {
		rc = -errno;
		rfs_store_set_error(s, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
		unlink(tmp);
		return rc;
	}
	fsync_parent(path);
	return 0;
}

static int file_put_if_absent(struct rfs_store *s, const char *key, const void *data, size_t len)
{
	round_trip(s);
	struct file_store *fs = (struct file_store *)s;
	if (fs->ignore_conditional)
		return file_put(s, key, data, len);
	char path[PATH_MAX], tmp[PATH_MAX];
	int rc = write_beside(fs, key, data, len, path, tmp);
	if (rc < 0)
		return rc;
	if (link(tmp, path) < 0) {
		rc = -errno;
		if (rc != -EEXIST)
			rfs_store_set_error(s, "cannot link '%s': %s", path, strerror(errno));
	} else {
		fsync_parent(path);
	}
	unlink(tmp);
	return rc;
}

static int file_get(struct rfs_store *s, const char *key, uint64_t off, uint64_t len, struct rfs_buf *out)
{
	round_trip(s);
	struct file_store *fs = (struct file_store *)s;
	char path[PATH_MAX];
	int rc = key_path(fs, key, path, sizeof(path));
	if (rc < 0)
		return rc;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		if (rc != -ENOENT)
			rfs_store_set_error(s, "cannot open '%s': %s", path, strerror(errno));
		return rc;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	uint64_t size = (uint64_t)st.st_size;
	uint64_t n = off >= size ? 0 : size - off;
	if (len != RFS_GET_TO_END && len < n)
		n = len;
	memset(out, 0, sizeof(*out));
	rc = rfs_buf_reserve(out, n ? n : 1);
	if (rc < 0)
		goto out;
	ssize_t r = rfs_pread_full(fd, out->data, n, (off_t)off);
	if (r < 0) {
		rc = (int)r;
		rfs_store_set_error(s, "cannot read '%s': %s", path, strerror(-rc));
		rfs_buf_free(out);
		goto out;
	}
	out->len = (size_t)r;
	if (fs->mibps > 0) {
		uint64_t us = (uint64_t)r * 1000000 / ((uint64_t)fs->mibps << 20);
		struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
		nanosleep(&ts, NULL);
	}
out:
	close(fd);
	return rc;
}

static int file_head(struct rfs_store *s, const char *key, uint64_t *size)
{
	round_trip(s);
	struct file_store *fs = (struct file_store *)s;
	char path[PATH_MAX];
	int rc = key_path(fs, key, path, sizeof(path));
	if (rc < 0)
		return rc;
	struct stat st;
	if (stat(path, &st) < 0)
		return -errno;
	if (size)
		*size = (uint64_t)st.st_size;
	return 0;
}

struct list_entry {
	char *name;
	uint64_t size;
};

struct name_list {
	struct list_entry *e;
	size_t n, cap;
};

static int collect(const char *root_dir, const char *rel, struct name_list *nl)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s%s%s", root_dir, rel[0] ? "/" : "", rel);
	DIR *d = opendir(path);
	if (!d)
		return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
	struct dirent *de;
	int rc = 0;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue; /* ".", "..", and temp files */
		char sub[PATH_MAX];
		snprintf(sub, sizeof(sub), "%s%s%s", rel, rel[0] ? "/" : "", de->d_name);
		char full[PATH_MAX];
		snprintf(full, sizeof(full), "%s/%s", root_dir, sub);
		struct stat st;
		if (lstat(full, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			rc = collect(root_dir, sub, nl);
			if (rc < 0)
				break;
			continue;
		}
		if (nl->n == nl->cap) {
			size_t nc = nl->cap ? nl->cap * 2 : 64;
			struct list_entry *ne = realloc(nl->e, nc * sizeof(*ne));
			if (!ne) {
				rc = -ENOMEM;
				break;
			}
			nl->e = ne;
			nl->cap = nc;
		}
		nl->e[nl->n].name = strdup(sub);
		if (!nl->e[nl->n].name) {
			rc = -ENOMEM;
			break;
		}
		nl->e[nl->n].size = (uint64_t)st.st_size;
		nl->n++;
	}
	closedir(d);
	return rc;
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct list_entry *)a)->name, ((const struct list_entry *)b)->name);
}

static int file_list(struct rfs_store *s, const char *prefix, rfs_list_cb cb, void *arg)
{
	round_trip(s);
	struct file_store *fs = (struct file_store *)s;
	struct name_list nl = {0};
	/* Walk from the deepest directory fully named by the prefix. */
	char start[PATH_MAX];
	snprintf(start, sizeof(start), "%s", prefix);
	char *slash = strrchr(start, '/');
	if (slash)
		*slash = 0;
	else
		start[0] = 0;
	int rc = collect(fs->root, start, &nl);
	if (rc < 0)
		goto out;
	if (nl.n)
		qsort(nl.e, nl.n, sizeof(*nl.e), cmp_entry);
	size_t plen = strlen(prefix);
	for (size_t i = 0; i < nl.n; i++) {
		if (strncmp(nl.e[i].name, prefix, plen))
			continue;
		if (cb(arg, nl.e[i].name, nl.e[i].size))
			break;
	}
out:
	for (size_t i = 0; i < nl.n; i++)
		free(nl.e[i].name);
	free(nl.e);
	return rc;
}

static int file_del(struct rfs_store *s, const char *key)
{
	round_trip(s);
	struct file_store *fs = (struct file_store *)s;
	char path[PATH_MAX];
	int rc = key_path(fs, key, path, sizeof(path));
	if (rc < 0)
		return rc;
	if (unlink(path) < 0)
		return -errno;
	return 0;
}

static void file_close(struct rfs_store *s)
{
	struct file_store *fs = (struct file_store *)s;
	pthread_mutex_destroy(&s->err_lock);
	free(fs->root);
	free(s->url);
	free(fs);
}

static const struct rfs_store_ops file_ops = {
    .name = "file",
    .put = file_put,
    .put_if_absent = file_put_if_absent,
    .get = file_get,
    .head = file_head,
    .list = file_list,
    .del = file_del,
    .close = file_close,
};

/* Whether p is NAME=N with N a number from min to 10000 (stored in *out). */
static int int_param(const char *p, const char *name, long min, int *out)
{
	size_t n = strlen(name);
	if (strncmp(p, name, n) || !isdigit((unsigned char)p[n]))
		return 0;
	char *end;
	long v = strtol(p + n, &end, 10);
	if (*end || v < min || v > 10000)
		return 0;
	*out = (int)v;
	return 1;
}

int rfs_file_store_open(const char *dir_arg, struct rfs_store **out, char *err, size_t errlen)
{
	char real[PATH_MAX], dir[PATH_MAX];
	int ignore_conditional = 0, latency_ms = 0, mibps = 0;
	snprintf(dir, sizeof(dir), "%s", dir_arg);
	char *q = strchr(dir, '?');
	if (q) {
		*q++ = 0;
		for (char *save = NULL, *p = strtok_r(q, "&", &save); p; p = strtok_r(NULL, "&", &save)) {
			if (!strcmp(p, "conditional=ignore")) {
				ignore_conditional = 1;
			} else if (int_param(p, "latency_ms=", 0, &latency_ms) || int_param(p, "mibps=", 1, &mibps)) {
				continue;
			} else {
				snprintf(err, errlen,
					 "unknown file store parameter '%s' (known, for tests and "
					 "benchmarks: conditional=ignore, latency_ms=N with N 0..10000, "
					 "mibps=N with N 1..10000)",
					 p);
				return -EINVAL;
			}
		}
	}
	if (!realpath(dir, real)) {
		int e = errno;
		snprintf(err, errlen,
			 "store directory '%s' is not usable: %s (create it first, or check the NFS mount)", dir,
			 strerror(e));
		return -e;
	}
	struct stat st;
	if (stat(real, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "store '%s' is not a directory", dir);
		return -ENOTDIR;
	}
	struct file_store *fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	fs->base.ops = &file_ops;
	fs->ignore_conditional = ignore_conditional;
	fs->latency_ms = latency_ms;
	fs->mibps = mibps;
	pthread_mutex_init(&fs->base.err_lock, NULL);
	fs->root = strdup(real);
	size_t ulen = strlen(real) + 64;
	fs->base.url = malloc(ulen);
	if (!fs->root || !fs->base.url) {
		free(fs->root);
		free(fs->base.url);
		free(fs);
		return -ENOMEM;
	}
	/* the test parameters stay in the URL (status shows them) */
	char params[64] = "";
	if (ignore_conditional)
		strcat(params, "&conditional=ignore");
	if (latency_ms)
		snprintf(params + strlen(params), sizeof(params) - strlen(params), "&latency_ms=%d", latency_ms);
	if (mibps)
		snprintf(params + strlen(params), sizeof(params) - strlen(params), "&mibps=%d", mibps);
	snprintf(fs->base.url, ulen, "file://%s%s%s", real, params[0] ? "?" : "", params[0] ? params + 1 : "");
	*out = &fs->base;
	return 0;
}
