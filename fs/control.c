#include "fs/control.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fs/core.h"
#include "fs/log.h"
#include "fs/util.h"

struct rfs_control {
	struct rfs_fs *fs;
	char path[108];
	char mountpoint[1024];
	int listen_fd;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t idle;
	int active;   /* protected by lock: connections being served */
	int stopping; /* protected by lock */
};

struct conn {
	struct rfs_control *c;
	int fd;
};

static void out(struct rfs_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(struct rfs_buf *b, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0)
		rfs_buf_append(b, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static int host_line(void *arg, const char *id, const char *body)
{
	struct rfs_buf *b = arg;
	char flat[4096];
	snprintf(flat, sizeof(flat), "%s", body);
	for (char *p = flat; *p; p++)
		if (*p == '\n')
			*p = ' ';
	out(b, "host=%s %s\n", id, flat);
	return 0;
}

static int conflict_line(void *arg, int64_t t, const char *what)
{
	out(arg, "conflict=%" PRId64 " %s\n", t, what);
	return 0;
}

static void do_status(struct rfs_control *c, struct rfs_buf *b)
{
	struct rfs_fs_status st;
	rfs_fs_get_status(c->fs, &st);
	out(b, "mountpoint=%s\nstore=%s\nhost_id=%s\ncache_dir=%s\npid=%d\nread_only=%d\nblock_size=%u\n",
	    c->mountpoint, st.store, st.host_id, st.cache_dir, (int)getpid(), st.read_only, st.block_size);
	out(b, "applied_seq=%" PRId64 "\nhead_seq=%" PRId64 "\npending_changes=%" PRId64 "\n", st.applied_seq,
	    st.head_seq, st.pending_changes);
	out(b,
	    "dirty_files=%" PRIu64 "\ndirty_bytes=%" PRIu64 "\noldest_dirty_s=%" PRId64 "\nlast_commit_s=%" PRId64 "\n",
	    st.dirty_files, st.dirty_bytes, st.oldest_dirty_s, st.last_commit_s);
	out(b, "last_error=%s\n", st.last_error);
	out(b,
	    "cache_used=%" PRIu64 "\ncache_limit=%" PRIu64 "\ncache_blocks=%" PRIu64 "\ncache_hits=%" PRIu64
	    "\ncache_misses=%" PRIu64 "\n",
	    st.cache_used, st.cache_limit, st.cache_blocks, st.cache_hits, st.cache_misses);
	out(b,
	    "req_get=%" PRIu64 "\nreq_put=%" PRIu64 "\nreq_list=%" PRIu64 "\nreq_head=%" PRIu64 "\nreq_delete=%" PRIu64
	    "\nbytes_in=%" PRIu64 "\nbytes_out=%" PRIu64 "\nconflicts=%" PRId64 "\n",
	    st.requests[0], st.requests[1], st.requests[2], st.requests[3], st.requests[4], st.bytes_in, st.bytes_out,
	    st.conflicts);
	rfs_fs_list_hosts(c->fs, 120, host_line, b);
	rfs_fs_list_conflicts(c->fs, 20, conflict_line, b);
}

struct warm_ctx {
	int fd;
	int64_t last;
};

static void warm_progress(void *arg, uint64_t db, uint64_t tb, uint64_t dbytes, uint64_t tbytes)
{
	struct warm_ctx *w = arg;
	char line[160];
	int n = snprintf(line, sizeof(line), "progress=%" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", db, tb,
			 dbytes, tbytes);
	(void)!write(w->fd, line, (size_t)n);
}

/* "warmup JOBS\n" then one inode number per line, then ".\n". */
static void do_warmup(struct rfs_control *c, int fd, const char *cmd, const char *rest, size_t restlen,
		      struct rfs_buf *b)
{
	int jobs = atoi(cmd + 7);
	if (jobs <= 0)
		jobs = 16;
	struct rfs_buf in = {0};
	in.cap_limit = 256u << 20;
	rfs_buf_append(&in, rest, restlen);
	while (!(in.len >= 2 && !memcmp(in.data + in.len - 2, ".\n", 2))) {
		char chunk[65536];
		ssize_t r = read(fd, chunk, sizeof(chunk));
		if (r <= 0 || rfs_buf_append(&in, chunk, (size_t)r) < 0)
			break;
	}
	size_t cap = 1024, n = 0;
	uint64_t *inos = malloc(cap * sizeof(*inos));
	char *save = NULL;
	rfs_buf_append(&in, "", 1);
	for (char *t = inos ? strtok_r((char *)in.data, "\n", &save) : NULL; t; t = strtok_r(NULL, "\n", &save)) {
		if (!strcmp(t, "."))
			break;
		if (n == cap) {
			uint64_t *ni = realloc(inos, cap * 2 * sizeof(*ni));
			if (!ni)
				break;
			inos = ni;
			cap *= 2;
		}
		inos[n++] = strtoull(t, NULL, 10);
	}
	rfs_buf_free(&in);
	struct rfs_warmup_result r;
	struct warm_ctx w = {fd, 0};
	int rc = inos ? rfs_warmup(c->fs, inos, n, jobs, warm_progress, &w, &r) : -ENOMEM;
	free(inos);
	if (rc < 0)
		out(b, "error=%s\n", strerror(-rc));
	else
		out(b,
		    "ok blocks=%" PRIu64 " bytes=%" PRIu64 " already_cached=%" PRIu64 " fetched=%" PRIu64
		    " not_fitting_bytes=%" PRIu64 " failed=%" PRIu64 "\n",
		    r.blocks, r.bytes, r.already_cached, r.fetched, r.not_fitting_bytes, r.failed);
}

static void *serve(void *arg)
{
	struct conn *cn = arg;
	struct rfs_control *c = cn->c;
	char cmd[4096];
	size_t got = 0;
	while (got < sizeof(cmd) - 1) {
		ssize_t r = read(cn->fd, cmd + got, sizeof(cmd) - 1 - got);
		if (r <= 0)
			break;
		got += (size_t)r;
		if (memchr(cmd, '\n', got))
			break;
	}
	cmd[got] = 0;
	char *nl = strchr(cmd, '\n');
	const char *rest = "";
	size_t restlen = 0;
	if (nl) {
		*nl = 0;
		rest = nl + 1;
		restlen = got - (size_t)(nl + 1 - cmd);
	}
	struct rfs_buf b = {0};
	b.cap_limit = 1 << 20;
	if (!strncmp(cmd, "warmup", 6)) {
		do_warmup(c, cn->fd, cmd, rest, restlen, &b);
	} else if (!strcmp(cmd, "status")) {
		do_status(c, &b);
	} else if (!strcmp(cmd, "sync")) {
		int rc = rfs_sync_all(c->fs);
		if (rc == 0) {
			out(&b, "ok\n");
		} else {
			/* the errno alone ("Not a directory") does not say what failed: add the cause */
			struct rfs_fs_status st;
			rfs_fs_get_status(c->fs, &st);
			out(&b, "error=%s%s%s\n", strerror(-rc), st.last_error[0] ? ": " : "", st.last_error);
		}
	} else if (!strcmp(cmd, "kick")) {
		rfs_fs_kick(c->fs);
		out(&b, "ok\n");
	} else {
		out(&b, "error=unknown command '%.64s'\n", cmd);
	}
	if (b.len)
		(void)!write(cn->fd, b.data, b.len);
	rfs_buf_free(&b);
	close(cn->fd);
	free(cn);
	pthread_mutex_lock(&c->lock);
	if (--c->active == 0)
		pthread_cond_broadcast(&c->idle);
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

static void *accept_loop(void *arg)
{
	struct rfs_control *c = arg;
	for (;;) {
		int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		pthread_mutex_lock(&c->lock);
		int stop = c->stopping;
		pthread_mutex_unlock(&c->lock);
		if (stop) {
			if (fd >= 0)
				close(fd);
			break;
		}
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			RFS_LOG(LOG_ERR, "control socket: accept failed: %s", strerror(errno));
			break;
		}
		struct conn *cn = malloc(sizeof(*cn));
		if (!cn) {
			close(fd);
			continue;
		}
		cn->c = c;
		cn->fd = fd;
		pthread_mutex_lock(&c->lock);
		c->active++;
		pthread_mutex_unlock(&c->lock);
		pthread_t t;
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &at, serve, cn) != 0) {
			close(fd);
			free(cn);
			pthread_mutex_lock(&c->lock);
			c->active--;
			pthread_mutex_unlock(&c->lock);
		}
		pthread_attr_destroy(&at);
	}
	return NULL;
}

int rfs_control_start(struct rfs_fs *fs, const char *sock_path, const char *mountpoint, struct rfs_control **outp)
{
	struct rfs_control *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	if (strlen(sock_path) >= sizeof(c->path)) {
		free(c);
		return -ENAMETOOLONG;
	}
	c->fs = fs;
	snprintf(c->path, sizeof(c->path), "%s", sock_path);
	snprintf(c->mountpoint, sizeof(c->mountpoint), "%s", mountpoint);
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->idle, NULL);
	int rc = 0;
	c->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->listen_fd < 0) {
		rc = -errno;
		goto fail;
	}
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", c->path);
	unlink(c->path);
	mode_t old = umask(077);
	int br = bind(c->listen_fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (br < 0 || listen(c->listen_fd, 16) < 0) {
		rc = -errno;
		goto fail;
	}
	rc = -pthread_create(&c->thread, NULL, accept_loop, c);
	if (rc < 0)
		goto fail;
	*outp = c;
	return 0;
fail:
	if (c->listen_fd >= 0)
		close(c->listen_fd);
	pthread_cond_destroy(&c->idle);
	pthread_mutex_destroy(&c->lock);
	free(c);
	return rc;
}

void rfs_control_stop(struct rfs_control *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->stopping = 1;
	pthread_mutex_unlock(&c->lock);
	/* Wake accept(): shutdown() of the listening socket makes it return at once on Linux.
	 * A connection of our own to the socket's path (the old way) never arrives when the path
	 * is gone (a cache dir deleted under a live mount), and the join then hung forever. */
	if (shutdown(c->listen_fd, SHUT_RDWR) < 0) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0) {
			struct sockaddr_un sa = {.sun_family = AF_UNIX};
			snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", c->path);
			(void)!connect(fd, (struct sockaddr *)&sa, sizeof(sa));
			close(fd);
		}
	}
	pthread_join(c->thread, NULL);
	close(c->listen_fd);
	unlink(c->path);
	pthread_mutex_lock(&c->lock);
	while (c->active > 0)
		pthread_cond_wait(&c->idle, &c->lock);
	pthread_mutex_unlock(&c->lock);
	pthread_cond_destroy(&c->idle);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
