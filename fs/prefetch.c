#include "fs/prefetch.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define QUEUE_LEN 256
#define MAX_THREADS 64
#define MAX_CLAIMS 256 /* jobs done by callers (readers, warmup workers) at once; more are not tracked */

struct job {
	uint8_t kind;
	uint8_t key[RFS_HASH_LEN];
};

struct rfs_prefetch {
	rfs_job_fn run;
	void *arg;
	int nthreads;
	pthread_t threads[MAX_THREADS];
	pthread_mutex_t lock;
	pthread_cond_t work, idle, room, done;
	/* below: protected by lock */
	struct job queue[QUEUE_LEN];
	size_t head, count;
	struct job running[MAX_THREADS];
	int busy[MAX_THREADS];
	struct job claimed[MAX_CLAIMS]; /* jobs a caller took over (rfs_prefetch_claim) */
	int nclaimed;
	int stop;
};

struct worker {
	struct rfs_prefetch *p;
	int id;
};

static int same_job(const struct job *j, int kind, const uint8_t *key)
{
	return j->kind == kind && !memcmp(j->key, key, RFS_HASH_LEN);
}

/* Whether a worker runs the job or a caller has claimed it. */
static int running_locked(struct rfs_prefetch *p, int kind, const uint8_t *key)
{
	for (int i = 0; i < p->nthreads; i++)
		if (p->busy[i] && same_job(&p->running[i], kind, key))
			return 1;
	for (int i = 0; i < p->nclaimed; i++)
		if (same_job(&p->claimed[i], kind, key))
			return 1;
	return 0;
}

/* Takes the job out of the queue if it is queued there (order of the others kept). */
static int unqueue_locked(struct rfs_prefetch *p, int kind, const uint8_t *key)
{
	for (size_t i = 0; i < p->count; i++) {
		if (!same_job(&p->queue[(p->head + i) % QUEUE_LEN], kind, key))
			continue;
		for (size_t k = i; k + 1 < p->count; k++)
			p->queue[(p->head + k) % QUEUE_LEN] = p->queue[(p->head + k + 1) % QUEUE_LEN];
		p->count--;
		pthread_cond_signal(&p->room);
		return 1;
	}
	return 0;
}

static int known_locked(struct rfs_prefetch *p, int kind, const uint8_t *key)
{
	for (size_t i = 0; i < p->count; i++)
		if (same_job(&p->queue[(p->head + i) % QUEUE_LEN], kind, key))
			return 1;
	return running_locked(p, kind, key);
}

static void push_locked(struct rfs_prefetch *p, int kind, const uint8_t *key)
{
	struct job *j = &p->queue[(p->head + p->count) % QUEUE_LEN];
	j->kind = (uint8_t)kind;
	memcpy(j->key, key, RFS_HASH_LEN);
	p->count++;
	pthread_cond_signal(&p->work);
}

/* Whether a job is queued or running (claims aside). */
static int active_locked(struct rfs_prefetch *p)
{
	int any = p->count > 0;
	for (int i = 0; i < p->nthreads; i++)
		any |= p->busy[i];
	return any;
}

/* Wakes rfs_prefetch_wait_idle() when nothing is queued or running. */
static void wake_if_idle_locked(struct rfs_prefetch *p)
{
	if (!active_locked(p))
		pthread_cond_broadcast(&p->idle);
}

static void *work(void *arg)
{
	struct rfs_prefetch *p = ((struct worker *)arg)->p;
	int id = ((struct worker *)arg)->id;
	free(arg);
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->stop && !p->count)
			pthread_cond_wait(&p->work, &p->lock);
		if (p->stop)
			break;
		p->running[id] = p->queue[p->head];
		p->head = (p->head + 1) % QUEUE_LEN;
		p->count--;
		pthread_cond_signal(&p->room);
		p->busy[id] = 1;
		pthread_mutex_unlock(&p->lock);
		p->run(p->arg, p->running[id].kind, p->running[id].key);
		pthread_mutex_lock(&p->lock);
		p->busy[id] = 0;
		pthread_cond_broadcast(&p->done);
		wake_if_idle_locked(p);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int rfs_prefetch_start(int nthreads, rfs_job_fn run, void *arg, struct rfs_prefetch **out)
{
	if (nthreads < 1)
		nthreads = 1;
	if (nthreads > MAX_THREADS)
		nthreads = MAX_THREADS;
	struct rfs_prefetch *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->run = run;
	p->arg = arg;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->idle, NULL);
	pthread_cond_init(&p->room, NULL);
	pthread_cond_init(&p->done, NULL);
	for (int i = 0; i < nthreads; i++) {
		struct worker *w = malloc(sizeof(*w));
		if (!w || pthread_create(&p->threads[i], NULL, work, w ? (w->p = p, w->id = i, w) : NULL) != 0) {
			free(w);
			break;
		}
		p->nthreads++;
	}
	if (!p->nthreads) {
		rfs_prefetch_stop(p);
		return -EAGAIN;
	}
	*out = p;
	return 0;
}

int rfs_prefetch_add(struct rfs_prefetch *p, int kind, const uint8_t key[RFS_HASH_LEN])
{
	int rc = 0;
	pthread_mutex_lock(&p->lock);
	if (!known_locked(p, kind, key)) {
		if (p->count == QUEUE_LEN)
			rc = -EAGAIN;
		else
			push_locked(p, kind, key);
	}
	pthread_mutex_unlock(&p->lock);
	return rc;
}

int rfs_prefetch_add_wait(struct rfs_prefetch *p, int kind, const uint8_t key[RFS_HASH_LEN])
{
	pthread_mutex_lock(&p->lock);
	while (p->count == QUEUE_LEN && !p->stop)
		pthread_cond_wait(&p->room, &p->lock);
	int rc = p->stop ? -ECANCELED : 0;
	if (rc == 0 && !known_locked(p, kind, key))
		push_locked(p, kind, key);
	pthread_mutex_unlock(&p->lock);
	return rc;
}

int rfs_prefetch_claim(struct rfs_prefetch *p, int kind, const uint8_t key[RFS_HASH_LEN])
{
	int rc;
	pthread_mutex_lock(&p->lock);
	if (running_locked(p, kind, key)) {
		while (!p->stop && running_locked(p, kind, key))
			pthread_cond_wait(&p->done, &p->lock);
		rc = 1;
	} else {
		if (unqueue_locked(p, kind, key))
			wake_if_idle_locked(p); /* it may have been the last queued job */
		if (p->nclaimed == MAX_CLAIMS) {
			rc = -EAGAIN;
		} else {
			struct job *j = &p->claimed[p->nclaimed++];
			j->kind = (uint8_t)kind;
			memcpy(j->key, key, RFS_HASH_LEN);
			rc = 0;
		}
	}
	pthread_mutex_unlock(&p->lock);
	return rc;
}

void rfs_prefetch_release(struct rfs_prefetch *p, int kind, const uint8_t key[RFS_HASH_LEN])
{
	pthread_mutex_lock(&p->lock);
	for (int i = 0; i < p->nclaimed; i++) {
		if (same_job(&p->claimed[i], kind, key)) {
			p->claimed[i] = p->claimed[--p->nclaimed];
			break;
		}
	}
	pthread_cond_broadcast(&p->done);
	pthread_mutex_unlock(&p->lock);
}

void rfs_prefetch_wait_idle(struct rfs_prefetch *p)
{
	pthread_mutex_lock(&p->lock);
	while (active_locked(p) && !p->stop)
		pthread_cond_wait(&p->idle, &p->lock);
	pthread_mutex_unlock(&p->lock);
}

void rfs_prefetch_stop(struct rfs_prefetch *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = 1;
	p->count = 0;
	pthread_cond_broadcast(&p->work);
	pthread_cond_broadcast(&p->idle);
	pthread_cond_broadcast(&p->room);
	pthread_cond_broadcast(&p->done);
	pthread_mutex_unlock(&p->lock);
	for (int i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->idle);
	pthread_cond_destroy(&p->room);
	pthread_cond_destroy(&p->done);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
