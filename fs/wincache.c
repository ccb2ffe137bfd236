#include "fs/wincache.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum win_state { WIN_LOADING, WIN_READY, WIN_FAILED };

struct rfs_win {
	char pack[33];
	uint64_t start, end; /* the range asked for; b.len may be shorter at the end of a pack */
	struct rfs_buf b;
	int refs;
	enum win_state state;
	uint64_t used; /* LRU tick */
	struct rfs_win *next;
};

struct rfs_wincache {
	pthread_mutex_t lock;
	pthread_cond_t changed; /* a range finished loading (or failed) */
	/* below: protected by lock */
	struct rfs_win *head;
	size_t bytes, max_bytes; /* bytes of READY ranges */
	uint64_t tick;
};

int rfs_wincache_open(size_t max_bytes, struct rfs_wincache **out)
{
	struct rfs_wincache *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->changed, NULL);
	c->max_bytes = max_bytes;
	*out = c;
	return 0;
}

static void unlink_free_locked(struct rfs_wincache *c, struct rfs_win *w)
{
	for (struct rfs_win **pp = &c->head; *pp; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
	if (w->state == WIN_READY)
		c->bytes -= w->b.len;
	rfs_buf_free(&w->b);
	free(w);
}

/* Drops least recently used idle ranges until the finished ones fit in max_bytes. */
static void evict_locked(struct rfs_wincache *c)
{
	while (c->bytes > c->max_bytes) {
		struct rfs_win *victim = NULL;
		for (struct rfs_win *w = c->head; w; w = w->next)
			if (w->state == WIN_READY && w->refs == 0 && (!victim || w->used < victim->used))
				victim = w;
		if (!victim)
			return; /* everything is in use: the bound is exceeded only while readers hold them */
		unlink_free_locked(c, victim);
	}
}

void rfs_wincache_close(struct rfs_wincache *c)
{
	if (!c)
		return;
	while (c->head)
		unlink_free_locked(c, c->head);
	pthread_cond_destroy(&c->changed);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

struct rfs_win *rfs_wincache_find(struct rfs_wincache *c, const char *pack, uint64_t off, uint32_t len)
{
	pthread_mutex_lock(&c->lock);
	struct rfs_win *found = NULL;
again:
	for (struct rfs_win *w = c->head; w; w = w->next) {
		if (w->state == WIN_FAILED || strcmp(w->pack, pack) || off < w->start || off + len > w->end)
			continue;
		if (w->state == WIN_LOADING) {
			pthread_cond_wait(&c->changed, &c->lock);
			goto again;
		}
		w->refs++;
		w->used = ++c->tick;
		found = w;
		break;
	}
	pthread_mutex_unlock(&c->lock);
	return found;
}

struct rfs_win *rfs_wincache_begin(struct rfs_wincache *c, const char *pack, uint64_t start, uint64_t end)
{
	pthread_mutex_lock(&c->lock);
	/* one fetch at a time per stretch of a pack: wait for an overlapping one instead */
	for (struct rfs_win *w = c->head; w; w = w->next) {
		if (w->state == WIN_LOADING && !strcmp(w->pack, pack) && start < w->end && w->start < end) {
			pthread_cond_wait(&c->changed, &c->lock);
			pthread_mutex_unlock(&c->lock);
			return NULL;
		}
	}
	struct rfs_win *w = calloc(1, sizeof(*w));
	if (w) {
		snprintf(w->pack, sizeof(w->pack), "%s", pack);
		w->start = start;
		w->end = end;
		w->refs = 1;
		w->state = WIN_LOADING;
		w->used = ++c->tick;
		w->next = c->head;
		c->head = w;
	}
	pthread_mutex_unlock(&c->lock);
	return w;
}

void rfs_wincache_done(struct rfs_wincache *c, struct rfs_win *w, struct rfs_buf *buf, int rc)
{
	pthread_mutex_lock(&c->lock);
	if (rc == 0) {
		w->b = *buf;
		memset(buf, 0, sizeof(*buf));
		w->state = WIN_READY;
		c->bytes += w->b.len;
		evict_locked(c);
	} else {
		w->state = WIN_FAILED;
	}
	pthread_cond_broadcast(&c->changed);
	pthread_mutex_unlock(&c->lock);
}

const uint8_t *rfs_wincache_data(const struct rfs_win *w, uint64_t off, uint32_t len)
{
	if (w->state != WIN_READY || off < w->start || off + len > w->start + w->b.len)
		return NULL;
	return (const uint8_t *)w->b.data + (off - w->start);
}

void rfs_wincache_put(struct rfs_wincache *c, struct rfs_win *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&c->lock);
	w->refs--;
	if (w->refs == 0 && w->state == WIN_FAILED)
		unlink_free_locked(c, w);
	else
		evict_locked(c);
	pthread_mutex_unlock(&c->lock);
}
