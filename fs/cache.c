#include "fs/cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/log.h"

struct centry {
	uint8_t hash[RFS_HASH_LEN];
	uint64_t size;
	struct centry *hnext;               /* hash chain */
	struct centry *lru_prev, *lru_next; /* most recent at head */
};

struct rfs_cache {
	char *dir;
	pthread_mutex_t lock;
	/* everything below is protected by lock */
	struct centry **buckets;
	size_t nbuckets, count;
	struct centry *lru_head, *lru_tail;
	uint64_t used, limit;
	uint64_t hits, misses, evictions;
};

static size_t bucket_of(const struct rfs_cache *c, const uint8_t *hash)
{
	uint64_t h;
	memcpy(&h, hash, sizeof(h));
	return (size_t)(h % c->nbuckets);
}

static void block_path(const struct rfs_cache *c, const uint8_t *hash, char *buf, size_t len)
{
	char hex[2 * RFS_HASH_LEN + 1];
	rfs_hex(hash, RFS_HASH_LEN, hex);
	snprintf(buf, len, "%s/blocks/%.2s/%s", c->dir, hex, hex);
}

static struct centry *find(struct rfs_cache *c, const uint8_t *hash)
{
	for (struct centry *e = c->buckets[bucket_of(c, hash)]; e; e = e->hnext)
		if (!memcmp(e->hash, hash, RFS_HASH_LEN))
			return e;
	return NULL;
}

static void lru_unlink(struct rfs_cache *c, struct centry *e)
{
	if (e->lru_prev)
		e->lru_prev->lru_next = e->lru_next;
	else
		c->lru_head = e->lru_next;
	if (e->lru_next)
		e->lru_next->lru_prev = e->lru_prev;
	else
		c->lru_tail = e->lru_prev;
	e->lru_prev = e->lru_next = NULL;
}

static void lru_push_front(struct rfs_cache *c, struct centry *e)
{
	e->lru_prev = NULL;
	e->lru_next = c->lru_head;
	if (c->lru_head)
		c->lru_head->lru_prev = e;
	c->lru_head = e;
	if (!c->lru_tail)
		c->lru_tail = e;
}

static void grow(struct rfs_cache *c)
{
	size_t nb = c->nbuckets * 2;
	struct centry **b = calloc(nb, sizeof(*b));
	if (!b)
		return; /* keep the old table: longer chains, still correct */
	for (size_t i = 0; i < c->nbuckets; i++) {
		struct centry *e = c->buckets[i];
		while (e) {
			struct centry *next = e->hnext;
			uint64_t h;
			memcpy(&h, e->hash, sizeof(h));
			e->hnext = b[h % nb];
			b[h % nb] = e;
			e = next;
		}
	}
	free(c->buckets);
	c->buckets = b;
	c->nbuckets = nb;
}

static int insert(struct rfs_cache *c, const uint8_t *hash, uint64_t size)
{
	struct centry *e = find(c, hash);
	if (e) {
		c->used -= e->size;
		e->size = size;
		c->used += size;
		lru_unlink(c, e);
		lru_push_front(c, e);
		return 0;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	memcpy(e->hash, hash, RFS_HASH_LEN);
	e->size = size;
	size_t b = bucket_of(c, hash);
	e->hnext = c->buckets[b];
	c->buckets[b] = e;
	lru_push_front(c, e);
	c->used += size;
	c->count++;
	if (c->count > c->nbuckets * 2)
		grow(c);
	return 0;
}

static void remove_entry(struct rfs_cache *c, struct centry *e)
{
	struct centry **pp = &c->buckets[bucket_of(c, e->hash)];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	lru_unlink(c, e);
	c->used -= e->size;
	c->count--;
	free(e);
}

/* Evicts LRU blocks until used + incoming <= limit. Caller holds lock. */
static void evict(struct rfs_cache *c, uint64_t incoming)
{
	while (c->lru_tail && c->used + incoming > c->limit) {
		struct centry *e = c->lru_tail;
		char path[PATH_MAX];
		block_path(c, e->hash, path, sizeof(path));
		unlink(path);
		remove_entry(c, e);
		c->evictions++;
	}
}

static void scan(struct rfs_cache *c)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/blocks", c->dir);
	DIR *top = opendir(dir);
	if (!top)
		return;
	struct dirent *de;
	while ((de = readdir(top))) {
		if (de->d_name[0] == '.')
			continue;
		char sub[PATH_MAX];
		snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name);
		DIR *d = opendir(sub);
		if (!d)
			continue;
		struct dirent *fe;
		while ((fe = readdir(d))) {
			char path[PATH_MAX];
			snprintf(path, sizeof(path), "%s/%s", sub, fe->d_name);
			uint8_t hash[RFS_HASH_LEN];
			if (fe->d_name[0] == '.') {
				if (strncmp(fe->d_name, ".tmp", 4) == 0)
					unlink(path); /* a put interrupted by a crash */
				continue;
			}
			if (strlen(fe->d_name) != 2 * RFS_HASH_LEN || rfs_unhex(fe->d_name, hash, RFS_HASH_LEN) < 0)
				continue;
			struct stat st;
			if (stat(path, &st) == 0)
				insert(c, hash, (uint64_t)st.st_size);
		}
		closedir(d);
	}
	closedir(top);
}

int rfs_cache_open(const char *dir, uint64_t limit, struct rfs_cache **out)
{
	struct rfs_cache *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->dir = strdup(dir);
	c->nbuckets = 4096;
	c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
	if (!c->dir || !c->buckets) {
		free(c->dir);
		free(c->buckets);
		free(c);
		return -ENOMEM;
	}
	c->limit = limit;
	pthread_mutex_init(&c->lock, NULL);
	char bdir[PATH_MAX];
	snprintf(bdir, sizeof(bdir), "%s/blocks", dir);
	int rc = rfs_mkdir_p(bdir, 0700);
	if (rc < 0) {
		rfs_cache_close(c);
		return rc;
	}
	scan(c);
	pthread_mutex_lock(&c->lock);
	evict(c, 0);
	pthread_mutex_unlock(&c->lock);
	*out = c;
	return 0;
}

void rfs_cache_close(struct rfs_cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nbuckets; i++) {
		struct centry *e = c->buckets[i];
		while (e) {
			struct centry *n = e->hnext;
			free(e);
			e = n;
		}
	}
	free(c->buckets);
	pthread_mutex_destroy(&c->lock);
	free(c->dir);
	free(c);
}

int rfs_cache_has(struct rfs_cache *c, const uint8_t hash[RFS_HASH_LEN])
{
	pthread_mutex_lock(&c->lock);
	int r = find(c, hash) != NULL;
	pthread_mutex_unlock(&c->lock);
	return r;
}

int rfs_cache_open_block(struct rfs_cache *c, const uint8_t hash[RFS_HASH_LEN])
{
	char path[PATH_MAX];
	block_path(c, hash, path, sizeof(path));
	pthread_mutex_lock(&c->lock);
	struct centry *e = find(c, hash);
	if (!e) {
		pthread_mutex_unlock(&c->lock);
		return -ENOENT;
	}
	lru_unlink(c, e);
	lru_push_front(c, e);
	/* open under the lock so a concurrent eviction cannot unlink between find and open */
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int err = errno;
		remove_entry(c, e); /* someone removed the file behind our back */
		pthread_mutex_unlock(&c->lock);
		return -err;
	}
	pthread_mutex_unlock(&c->lock);
	return fd;
}

void rfs_cache_drop(struct rfs_cache *c, const uint8_t hash[RFS_HASH_LEN])
{
	char path[PATH_MAX];
	block_path(c, hash, path, sizeof(path));
	pthread_mutex_lock(&c->lock);
	struct centry *e = find(c, hash);
	if (e) {
		unlink(path);
		remove_entry(c, e);
	}
	pthread_mutex_unlock(&c->lock);
}

void rfs_cache_count(struct rfs_cache *c, int hit)
{
	pthread_mutex_lock(&c->lock);
	if (hit)
		c->hits++;
	else
		c->misses++;
	pthread_mutex_unlock(&c->lock);
}

int rfs_cache_advise(struct rfs_cache *c, const uint8_t hash[RFS_HASH_LEN])
{
	char path[PATH_MAX];
	block_path(c, hash, path, sizeof(path));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
	close(fd);
	return -rc;
}

int rfs_cache_put(struct rfs_cache *c, const uint8_t hash[RFS_HASH_LEN], const void *data, uint32_t len)
{
	if (len > c->limit)
		return -EFBIG;
	char path[PATH_MAX], tmp[PATH_MAX + 32];
	block_path(c, hash, path, sizeof(path));
	if (rfs_cache_has(c, hash))
		return 0;
	pthread_mutex_lock(&c->lock);
	evict(c, len);
	pthread_mutex_unlock(&c->lock);

	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	*strrchr(dir, '/') = 0;
	int rc;
	uint8_t rnd[8];
	char rhex[17];
	rfs_random(rnd, sizeof(rnd));
	rfs_hex(rnd, sizeof(rnd), rhex);
	snprintf(tmp, sizeof(tmp), "%s/.tmp-%s", dir, rhex);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 && errno == ENOENT) {
		/* the first block under this prefix: make its directory (not on every put) */
		rc = rfs_mkdir_p(dir, 0700);
		if (rc < 0)
			return rc;
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	}
	if (fd < 0)
		return -errno;
	ssize_t w = rfs_pwrite_full(fd, data, len, 0);
	close(fd);
	if (w < 0) {
		unlink(tmp);
		return (int)w;
	}
	/* No fsync: the file is complete before the rename publishes it, which covers a killed
	 * daemon. The cache is never the only copy of anything (dirty data lives in staging). */
	if (rename(tmp, path) < 0) {
		rc = -errno;
		unlink(tmp);
		return rc;
	}
	pthread_mutex_lock(&c->lock);
	rc = insert(c, hash, len);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

void rfs_cache_get_stats(struct rfs_cache *c, struct rfs_cache_stats *st)
{
	pthread_mutex_lock(&c->lock);
	st->used = c->used;
	st->limit = c->limit;
	st->blocks = c->count;
	st->hits = c->hits;
	st->misses = c->misses;
	st->evictions = c->evictions;
	pthread_mutex_unlock(&c->lock);
}
