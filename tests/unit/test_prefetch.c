/* Unit tests for fs/prefetch.c: the job queue and claims (a reader taking over a queued job,
 * waiting for a running one, add skipping claimed jobs, release). The job function counts its
 * runs per key and can be held at a gate, so that "running" lasts as long as a case needs. */
#include <pthread.h>
#include <unistd.h>

#include "check.h"
#include "fs/prefetch.h"

struct world {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int gate_open;
	int started[4], runs[4];
};

static void job(void *arg, int kind, const uint8_t key[RFS_HASH_LEN])
{
	(void)kind;
	struct world *w = arg;
	pthread_mutex_lock(&w->lock);
	w->started[key[0]]++;
	pthread_cond_broadcast(&w->cond);
	while (!w->gate_open)
		pthread_cond_wait(&w->cond, &w->lock);
	w->runs[key[0]]++;
	pthread_mutex_unlock(&w->lock);
}

static void key_of(int k, uint8_t key[RFS_HASH_LEN])
{
	memset(key, 0, RFS_HASH_LEN);
	key[0] = (uint8_t)k;
}

static void wait_started(struct world *w, int k)
{
	pthread_mutex_lock(&w->lock);
	while (!w->started[k])
		pthread_cond_wait(&w->cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
}

static void open_gate(struct world *w)
{
	pthread_mutex_lock(&w->lock);
	w->gate_open = 1;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

struct claimer {
	struct rfs_prefetch *p;
	int k, rc, done;
};

static void *claim_thread(void *arg)
{
	struct claimer *c = arg;
	uint8_t key[RFS_HASH_LEN];
	key_of(c->k, key);
	c->rc = rfs_prefetch_claim(c->p, 0, key);
	__atomic_store_n(&c->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/* One worker held at the gate by job 0; job 1 queued behind it. */
static void start(struct world *w, struct rfs_prefetch **p)
{
	memset(w, 0, sizeof(*w));
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	uint8_t k0[RFS_HASH_LEN], k1[RFS_HASH_LEN];
	key_of(0, k0);
	key_of(1, k1);
	CHECK_OK(rfs_prefetch_start(1, job, w, p));
	CHECK_OK(rfs_prefetch_add(*p, 0, k0));
	wait_started(w, 0);
	CHECK_OK(rfs_prefetch_add(*p, 0, k1));
}

static void finish(struct world *w, struct rfs_prefetch *p)
{
	open_gate(w);
	rfs_prefetch_wait_idle(p);
	rfs_prefetch_stop(p);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
}

static void prefetch_claim_takes_queued_job(void)
{
	struct world w;
	struct rfs_prefetch *p;
	start(&w, &p);
	uint8_t k1[RFS_HASH_LEN];
	key_of(1, k1);
	CHECK_EQ(rfs_prefetch_claim(p, 0, k1), 0); /* queued, not running: the caller takes it */
	CHECK_OK(rfs_prefetch_add(p, 0, k1));      /* claimed: known, not queued again */
	open_gate(&w);
	rfs_prefetch_wait_idle(p);
	CHECK_EQ(w.runs[0], 1);
	CHECK_EQ(w.runs[1], 0); /* the worker never ran the claimed job */
	rfs_prefetch_release(p, 0, k1);
	CHECK_OK(rfs_prefetch_add(p, 0, k1)); /* released: a new add runs it */
	rfs_prefetch_wait_idle(p);
	CHECK_EQ(w.runs[1], 1);
	finish(&w, p);
}

static void prefetch_claim_waits_for_running_job(void)
{
	struct world w;
	struct rfs_prefetch *p;
	start(&w, &p);
	struct claimer c = {.p = p, .k = 0, .rc = -1};
	pthread_t t;
	REQUIRE(pthread_create(&t, NULL, claim_thread, &c) == 0);
	usleep(100 * 1000);
	CHECK_EQ(__atomic_load_n(&c.done, __ATOMIC_SEQ_CST), 0); /* job 0 still runs: waiting */
	open_gate(&w);
	pthread_join(t, NULL);
	CHECK_EQ(c.rc, 1);
	CHECK_EQ(w.runs[0], 1); /* finished by the worker before the claim returned */
	finish(&w, p);
	CHECK_EQ(w.runs[1], 1); /* the queued job was left alone */
}

static void prefetch_claim_waits_for_other_claim(void)
{
	struct world w;
	struct rfs_prefetch *p;
	start(&w, &p);
	uint8_t k2[RFS_HASH_LEN];
	key_of(2, k2);
	CHECK_EQ(rfs_prefetch_claim(p, 0, k2), 0); /* not known at all: claimed */
	struct claimer c = {.p = p, .k = 2, .rc = -1};
	pthread_t t;
	REQUIRE(pthread_create(&t, NULL, claim_thread, &c) == 0);
	usleep(100 * 1000);
	CHECK_EQ(__atomic_load_n(&c.done, __ATOMIC_SEQ_CST), 0); /* a second reader waits for the first */
	rfs_prefetch_release(p, 0, k2);
	pthread_join(t, NULL);
	CHECK_EQ(c.rc, 1);
	finish(&w, p);
	CHECK_EQ(w.runs[2], 0);
}

int main(int argc, char **argv)
{
	check_init(argc, argv);
	RUN(prefetch_claim_takes_queued_job);
	RUN(prefetch_claim_waits_for_running_job);
	RUN(prefetch_claim_waits_for_other_claim);
	return check_done();
}
