/*
 * Unit tests of the s3 store's failure handling against a scripted fake S3 server (a thread
 * per connection on 127.0.0.1, one handler function per case). They cover what a healthy
 * RGW never does: 5xx/429 bursts, resets, short bodies, ambiguous conditional PUTs, the
 * error-to-errno mapping, servers that ignore Range, and broken listings.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <strings.h>
#include <sys/socket.h>

#include "backends/backend.h"
#include "check.h"

/* ---------- the fake server ---------- */

struct freq {
	char method[16];
	char target[2048]; /* path?query, as sent */
	char if_none_match[16];
	char oss_forbid[16];
	char range[64];
	int has_auth;
	uint8_t body[4096];
	size_t body_len;
};

struct fresp {
	int status;
	char headers[512]; /* extra "Name: value\r\n" lines */
	char body[8192];
	size_t body_len; /* 0: strlen(body) */
	long claim_len;  /* >0: announce this Content-Length, send body_len bytes, close */
	int drop;        /* close without answering */
};

typedef void (*handler_fn)(const struct freq *q, struct fresp *p);

static pthread_mutex_t fake_lock = PTHREAD_MUTEX_INITIALIZER;
static handler_fn fake_handler; /* protected by fake_lock */
static int fake_port;
static int fake_puts, fake_gets; /* protected by fake_lock */
static char last_target[2048];   /* protected by fake_lock */

static void respond_default(const struct freq *q, struct fresp *p)
{
	/* the bucket check at open: an empty listing */
	if (!strcmp(q->method, "GET") && strstr(q->target, "list-type=2")) {
		p->status = 200;
		snprintf(p->body, sizeof(p->body),
			 "<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>");
		return;
	}
	p->status = 404;
	snprintf(p->body, sizeof(p->body), "<Error><Code>NoSuchKey</Code><Message>none</Message></Error>");
}

static int read_request(int fd, struct freq *q)
{
	char buf[16384];
	size_t n = 0;
	char *end = NULL;
	while (!end) {
		if (n == sizeof(buf) - 1)
			return -1;
		ssize_t r = recv(fd, buf + n, sizeof(buf) - 1 - n, 0);
		if (r <= 0)
			return -1;
		n += (size_t)r;
		buf[n] = 0;
		end = strstr(buf, "\r\n\r\n");
	}
	memset(q, 0, sizeof(*q));
	if (sscanf(buf, "%15s %2047s", q->method, q->target) != 2)
		return -1;
	size_t clen = 0;
	for (char *line = strstr(buf, "\r\n") + 2; line < end; line = strstr(line, "\r\n") + 2) {
		char *colon = strchr(line, ':');
		char *eol = strstr(line, "\r\n");
		if (!colon || colon > eol)
			continue;
		char *v = colon + 1;
		while (*v == ' ')
			v++;
		size_t vl = (size_t)(eol - v);
		char val[128];
		snprintf(val, sizeof(val), "%.*s", (int)(vl < 127 ? vl : 127), v);
		size_t nl = (size_t)(colon - line);
		if (nl == 14 && !strncasecmp(line, "Content-Length", 14))
			clen = strtoul(val, NULL, 10);
		else if (nl == 13 && !strncasecmp(line, "If-None-Match", 13))
			snprintf(q->if_none_match, sizeof(q->if_none_match), "%s", val);
		else if (nl == 22 && !strncasecmp(line, "x-oss-forbid-overwrite", 22))
			snprintf(q->oss_forbid, sizeof(q->oss_forbid), "%s", val);
		else if (nl == 5 && !strncasecmp(line, "Range", 5))
			snprintf(q->range, sizeof(q->range), "%s", val);
		else if (nl == 13 && !strncasecmp(line, "Authorization", 13))
			q->has_auth = 1;
	}
	size_t have = n - (size_t)(end + 4 - buf);
	if (clen > sizeof(q->body) || have > clen)
		return -1;
	memcpy(q->body, end + 4, have);
	while (have < clen) {
		ssize_t r = recv(fd, q->body + have, clen - have, 0);
		if (r <= 0)
			return -1;
		have += (size_t)r;
	}
	q->body_len = clen;
	return 0;
}

static void *serve_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	struct freq *q = malloc(sizeof(*q));
	struct fresp *p = malloc(sizeof(*p));
	while (q && p && read_request(fd, q) == 0) {
		memset(p, 0, sizeof(*p));
		pthread_mutex_lock(&fake_lock);
		handler_fn h = fake_handler ? fake_handler : respond_default;
		if (!strcmp(q->method, "PUT"))
			fake_puts++;
		if (!strcmp(q->method, "GET") && !strstr(q->target, "list-type"))
			fake_gets++;
		snprintf(last_target, sizeof(last_target), "%s", q->target);
		h(q, p);
		pthread_mutex_unlock(&fake_lock);
		if (p->drop)
			break;
		size_t blen = p->body_len ? p->body_len : strlen(p->body);
		char head[1024];
		int hn = snprintf(head, sizeof(head), "HTTP/1.1 %d X\r\nContent-Length: %ld\r\n%s\r\n", p->status,
				  p->claim_len > 0 ? p->claim_len : (long)blen, p->headers);
		if (send(fd, head, (size_t)hn, MSG_NOSIGNAL) < 0)
			break;
		if (strcmp(q->method, "HEAD") && blen && send(fd, p->body, blen, MSG_NOSIGNAL) < 0)
			break;
		if (p->claim_len > 0)
			break;
	}
	free(q);
	free(p);
	close(fd);
	return NULL;
}

static void *serve(void *arg)
{
	int ls = (int)(intptr_t)arg;
	for (;;) {
		int fd = accept(ls, NULL, NULL);
		if (fd < 0)
			continue;
		pthread_t t;
		if (pthread_create(&t, NULL, serve_conn, (void *)(intptr_t)fd) == 0)
			pthread_detach(t);
		else
			close(fd);
	}
	return NULL;
}

static int fake_start(void)
{
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 64) < 0 ||
	    getsockname(ls, (struct sockaddr *)&a, &al) < 0)
		return -1;
	fake_port = ntohs(a.sin_port);
	pthread_t t;
	if (pthread_create(&t, NULL, serve, (void *)(intptr_t)ls) != 0)
		return -1;
	pthread_detach(t);
	return 0;
}

static void use_handler(handler_fn h)
{
	pthread_mutex_lock(&fake_lock);
	fake_handler = h;
	fake_puts = fake_gets = 0;
	pthread_mutex_unlock(&fake_lock);
}

static int puts_seen(void)
{
	pthread_mutex_lock(&fake_lock);
	int n = fake_puts;
	pthread_mutex_unlock(&fake_lock);
	return n;
}

#define SECRET "fakeSecretKey/with+chars"

static struct rfs_store *open_fake(const char *extra)
{
	char url[512], err[1024] = "";
	snprintf(url, sizeof(url), "s3://bkt/pfx?endpoint=http://127.0.0.1:%d&provider=minio&retries=2%s", fake_port,
		 extra ? extra : "");
	struct rfs_store *s = NULL;
	use_handler(NULL);
	if (rfs_store_open(url, &s, err, sizeof(err)) < 0) {
		fprintf(stderr, "cannot open %s: %s\n", url, err);
		check_failures++;
		return NULL;
	}
	return s;
}

static void error_has(struct rfs_store *s, const char *needle)
{
	char err[512];
	rfs_store_error(s, err, sizeof(err));
	CHECK_CONTAINS(err, needle);
	CHECK(!strstr(err, SECRET));
}

/* ---------- retries ---------- */

static int counter;

static void h_503_twice(const struct freq *q, struct fresp *p)
{
	if (!strcmp(q->method, "PUT") && counter++ < 2) {
		p->status = counter == 1 ? 503 : 429;
		snprintf(p->body, sizeof(p->body), "<Error><Code>SlowDown</Code></Error>");
		return;
	}
	p->status = 200;
}

static void retry_then_ok(void)
{
	struct rfs_store *s = open_fake(NULL);
	REQUIRE(s);
	counter = 0;
	use_handler(h_503_twice);
	CHECK_OK(rfs_store_put(s, "k", "v", 1));
	CHECK_EQ(puts_seen(), 3);
	rfs_store_close(s);
}

static void h_always_500(const struct freq *q, struct fresp *p)
{
	(void)q;
	p->status = 500;
	snprintf(p->body, sizeof(p->body), "<Error><Code>InternalError</Code><Message>boom</Message></Error>");
}

static void retry_gives_up(void)
{
	struct rfs_store *s = open_fake(NULL);
	REQUIRE(s);
	use_handler(h_always_500);
	CHECK_ERR(rfs_store_put(s, "k", "v", 1), EIO);
	CHECK_EQ(puts_seen(), 3); /* retries=2: three attempts */
	error_has(s, "HTTP 500 InternalError: boom after 3 attempts");
	rfs_store_close(s);
}

static void h_reset_then_ok(const struct freq *q, struct fresp *p)
{
	if (!strcmp(q->method, "PUT") && counter++ == 0) {
		p->drop = 1;
		return;
	}
	if (!strcmp(q->method, "GET") && counter++ == 1) {
		/* a short body: promise 100 bytes, send 5, hang up */
		p->status = 200;
		p->claim_len = 100;
		snprintf(p->body, sizeof(p->body), "short");
		return;
	}
	p->status = 200;
	snprintf(p->body, sizeof(p->body), "whole");
}

static void retry_reset_and_short_body(void)
{
	struct rfs_store *s = open_fake(NULL);
	REQUIRE(s);
	counter = 0;
	use_handler(h_reset_then_ok);
	CHECK_OK(rfs_store_put(s, "k", "v", 1));
	struct rfs_buf b;
	REQUIRE_OK(rfs_store_get(s, "k", 0, RFS_GET_TO_END, &b));
	CHECK_EQ(b.len, 5);
	CHECK_MEM(b.data, "whole", 5);
	rfs_buf_free(&b);
	rfs_store_close(s);
}

/* ---------- conditional PUT ---------- */

static uint8_t stored[4096];
static size_t stored_len;
static int stored_present;

/* PUT: stores the body when absent, then answers as scripted; GET: returns what is stored. */
static int put_script; /* 0: 500 after storing, 1: 500 without storing, 2: drop after storing */

static void h_cond(const struct freq *q, struct fresp *p)
{
	if (!strcmp(q->method, "PUT")) {
		if (strcmp(q->if_none_match, "*")) {
			p->status = 400; /* the test expects the conditional header */
			return;
		}
		if (stored_present) {
			p->status = 412;
			snprintf(p->body, sizeof(p->body), "<Error><Code>PreconditionFailed</Code></Error>");
			return;
		}
		int script = put_script;
		put_script = -1; /* only the first PUT misbehaves */
		if (script != 1) {
			memcpy(stored, q->body, q->body_len);
			stored_len = q->body_len;
			stored_present = 1;
		}
		if (script == 2)
			p->drop = 1;
		else if (script >= 0)
			p->status = 500;
		else
			p->status = 200;
		return;
	}
	if (!strcmp(q->method, "GET") && !strstr(q->target, "list-type")) {
		if (!stored_present) {
			p->status = 404;
			return;
		}
		p->status = 200;
		memcpy(p->body, stored, stored_len);
		p->body_len = stored_len;
		if (!stored_len)
			p->status = 200;
		return;
	}
	respond_default(q, p);
}

static void cond_case(int script, int present_before, const char *present_body, const char *ours, int want,
		      int want_puts)
{
	struct rfs_store *s = open_fake(NULL);
	REQUIRE(s);
	stored_present = present_before;
	if (present_before) {
		stored_len = strlen(present_body);
		memcpy(stored, present_body, stored_len);
	}
	put_script = script;
	use_handler(h_cond);
	CHECK_EQ(rfs_store_put_if_absent(s, "log/1", ours, strlen(ours)), want);
	CHECK_EQ(puts_seen(), want_puts);
	rfs_store_close(s);
}

static void cond_plain(void)
{
	cond_case(-1, 0, NULL, "ours", 0, 1);
	cond_case(-1, 1, "theirs", "ours", -EEXIST, 1);
}

static void cond_ambiguous_we_won(void)
{
	/* 500, but our body landed: reading it back says we won; no second PUT */
	cond_case(0, 0, NULL, "ours", 0, 1);
	/* the connection dropped after the store took it: same */
	cond_case(2, 0, NULL, "ours", 0, 1);
}

static void cond_ambiguous_absent(void)
{
	/* 500 and nothing landed: the read-back finds no key, the PUT is sent again and wins */
	cond_case(1, 0, NULL, "ours", 0, 2);
}

static void h_cond_lost(const struct freq *q, struct fresp *p)
{
	if (!strcmp(q->method, "PUT")) {
		/* another writer got there during our request; we only see a 500 */
		memcpy(stored, "theirs", 6);
		stored_len = 6;
		stored_present = 1;
		p->status = 503;
		return;
	}
	h_cond(q, p);
}

static void cond_ambiguous_lost(void)
{
	struct rfs_store *s = open_fake(NULL);
	REQUIRE(s);
	stored_present = 0;
	use_handler(h_cond_lost);
	CHECK_ERR(rfs_store_put_if_absent(s, "log/1", "ours", 4), EEXIST);
	CHECK_EQ(puts_seen(), 1); /* never repeated blindly */
	rfs_store_close(s);
}

static void h_oss(const struct freq *q, struct fresp *p)
{
	if (!strcmp(q->method, "PUT")) {
		if (strcmp(q->oss_forbid, "true") || q->if_none_match[0]) {
			p->status = 400;
			return;
		}
		p->status = 409;
		snprintf(p->body, sizeof(p->body), "<Error><Code>FileAlreadyExists</Code></Error>");
		return;
	}
	respond_default(q, p);
}

static void cond_oss_header(void)
{
	struct rfs_store *s = open_fake("&conditional=oss");
	REQUIRE(s);
	use_handler(h_oss);
	CHECK_ERR(rfs_store_put_if_absent(s, "log/1", "x", 1), EEXIST);
	rfs_store_close(s);
}

static void h_ignores_condition(const struct freq *q, struct fresp *p)
{
	if (!strcmp(q->method, "PUT")) {
		p->status = 200;
		return;
	}
	if (!strcmp(q->method, "DELETE")) {
		p->status = 204;
		return;
	}
	respond_default(q, p);
}

static void probe_detects_overwrites(void)
{
	char url[512], err[512];
	snprintf(url, sizeof(url), "s3://bkt/pfx?endpoint=http://127.0.0.1:%d&provider=other", fake_port);
	use_handler(h_ignores_condition);
	struct rfs_store *s = NULL;
	REQUIRE_OK(rfs_store_open(url, &s, err, sizeof(err)));
	CHECK_EQ(puts_seen(), 2);
	CHECK_ERR(rfs_store_put_if_absent(s, "log/1", "x", 1), ENOTSUP);
	CHECK_OK(rfs_store_put(s, "data/1", "x", 1)); /* plain puts still work */
	rfs_store_close(s);
}

/* ---------- errno mapping ---------- */

static int map_status;
static char map_code[64], map_extra[256];

static void h_map(const struct freq *q, struct fresp *p)
{
	if (!strcmp(q->method, "GET") && strstr(q->target, "list-type")) {
		respond_default(q, p);
		return;
	}
	p->status = map_status;
	snprintf(p->headers, sizeof(p->headers), "%s", map_extra);
	snprintf(p->body, sizeof(p->body), "<Error><Code>%s</Code><Message>msg for %s</Message>%s</Error>", map_code,
		 map_code, !strcmp(map_code, "AuthorizationHeaderMalformed") ? "<Region>eu-west-1</Region>" : "");
}

static void map_case(int status, const char *code, const char *extra, int want, const char *needle)
{
	struct rfs_store *s = open_fake(NULL);
	REQUIRE(s);
	map_status = status;
	snprintf(map_code, sizeof(map_code), "%s", code);
	snprintf(map_extra, sizeof(map_extra), "%s", extra);
	use_handler(h_map);
	struct rfs_buf b;
	int rc = rfs_store_get(s, "k", 0, RFS_GET_TO_END, &b);
	if (!CHECK_EQ(rc, -want))
		fprintf(stderr, "  HTTP %d %s\n", status, code);
	if (needle)
		error_has(s, needle);
	rfs_store_close(s);
}

static void errno_mapping(void)
{
	setenv("AWS_ACCESS_KEY_ID", "FAKEID", 1);
	setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
	map_case(404, "NoSuchKey", "", ENOENT, NULL);
	map_case(404, "NoSuchBucket", "", ENOENT, "create_bucket=1");
	map_case(403, "AccessDenied", "", EACCES,
		 "credentials from environment variables AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY");
	map_case(403, "SignatureDoesNotMatch", "", EACCES, "check the secret key");
	map_case(400, "AuthorizationHeaderMalformed", "", EINVAL, "region 'us-east-1' is wrong");
	map_case(400, "AuthorizationHeaderMalformed", "", EINVAL, "expects 'eu-west-1'");
	map_case(301, "PermanentRedirect", "x-amz-bucket-region: ap-south-1\r\n", EINVAL, "use region=ap-south-1");
	map_case(501, "NotImplemented", "", ENOTSUP, "NotImplemented");
	map_case(400, "InvalidArgument", "", EIO, "HTTP 400 InvalidArgument: msg for InvalidArgument");
	map_case(409, "OperationAborted", "", EIO, "HTTP 409");
}

/* ---------- reads ---------- */

static void h_ignore_range(const struct freq *q, struct fresp *p)
{
	if (!strcmp(q->method, "GET") && !strstr(q->target, "list-type")) {
		p->status = 200; /* Range ignored: the whole object */
		snprintf(p->body, sizeof(p->body), "0123456789");
		return;
	}
	respond_default(q, p);
}

static void h_416(const struct freq *q, struct fresp *p)
{
	if (!strcmp(q->method, "GET") && !strstr(q->target, "list-type")) {
		p->status = q->range[0] ? 416 : 200;
		snprintf(p->body, sizeof(p->body), q->range[0] ? "<Error><Code>InvalidRange</Code></Error>" : "x");
		return;
	}
	respond_default(q, p);
}

static void h_too_long(const struct freq *q, struct fresp *p)
{
	if (!strcmp(q->method, "GET") && !strstr(q->target, "list-type")) {
		p->status = 206; /* says partial, sends more than asked */
		memset(p->body, 'z', 100);
		p->body_len = 100;
		return;
	}
	respond_default(q, p);
}

static void reads(void)
{
	struct rfs_store *s = open_fake(NULL);
	REQUIRE(s);
	struct rfs_buf b;
	use_handler(h_ignore_range);
	REQUIRE_OK(rfs_store_get(s, "k", 3, 4, &b));
	CHECK_EQ(b.len, 4);
	CHECK_MEM(b.data, "3456", 4);
	rfs_buf_free(&b);
	REQUIRE_OK(rfs_store_get(s, "k", 8, RFS_GET_TO_END, &b));
	CHECK_EQ(b.len, 2);
	CHECK_MEM(b.data, "89", 2);
	rfs_buf_free(&b);
	REQUIRE_OK(rfs_store_get(s, "k", 20, 5, &b));
	CHECK_EQ(b.len, 0);
	rfs_buf_free(&b);
	use_handler(h_416);
	REQUIRE_OK(rfs_store_get(s, "k", 50, 5, &b));
	CHECK_EQ(b.len, 0);
	rfs_buf_free(&b);
	use_handler(h_too_long);
	CHECK_ERR(rfs_store_get(s, "k", 0, 10, &b), EIO);
	error_has(s, "larger than expected");
	rfs_store_close(s);
}

/* ---------- listings ---------- */

static int list_mode;

static void h_list(const struct freq *q, struct fresp *p)
{
	if (strcmp(q->method, "GET") || !strstr(q->target, "list-type=2")) {
		p->status = 404;
		return;
	}
	if (strstr(q->target, "max-keys=1&")) { /* the check at open */
		respond_default(q, p);
		return;
	}
	p->status = 200;
	int second = strstr(q->target, "continuation-token=") != NULL;
	switch (list_mode) {
	case 0: /* two good pages; the token needs encoding */
		if (!second)
			snprintf(p->body, sizeof(p->body),
				 "<ListBucketResult><IsTruncated>true</IsTruncated>"
				 "<Contents><Key>pfx/a/1</Key><Size>1</Size></Contents>"
				 "<Contents><Key>pfx/a/2</Key><Size>22</Size></Contents>"
				 "<NextContinuationToken>t/1+2=</NextContinuationToken></ListBucketResult>");
		else if (strstr(q->target, "continuation-token=t%2F1%2B2%3D"))
			snprintf(p->body, sizeof(p->body),
				 "<ListBucketResult><IsTruncated>false</IsTruncated>"
				 "<Contents><Key>pfx/a/3 &amp; x</Key><Size>333</Size></Contents></ListBucketResult>");
		else
			p->status = 400;
		break;
	case 1: /* truncated without a token */
		snprintf(p->body, sizeof(p->body),
			 "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>");
		break;
	case 2: /* the same token forever */
		snprintf(p->body, sizeof(p->body),
			 "<ListBucketResult><IsTruncated>true</IsTruncated><NextContinuationToken>same"
			 "</NextContinuationToken></ListBucketResult>");
		break;
	case 3: /* garbage */
		snprintf(p->body, sizeof(p->body), "<ListBucketResult><Contents><Key>pfx/a</Key>");
		break;
	case 4: /* out of order */
		snprintf(p->body, sizeof(p->body),
			 "<ListBucketResult><Contents><Key>pfx/b</Key><Size>1</Size></Contents>"
			 "<Contents><Key>pfx/a</Key><Size>1</Size></Contents></ListBucketResult>");
		break;
	}
}

struct names {
	char k[8][64];
	uint64_t sz[8];
	int n;
};

static int names_cb(void *arg, const char *key, uint64_t size)
{
	struct names *nm = arg;
	if (nm->n < 8) {
		snprintf(nm->k[nm->n], sizeof(nm->k[0]), "%s", key);
		nm->sz[nm->n] = size;
	}
	nm->n++;
	return 0;
}

static void listings(void)
{
	struct rfs_store *s = open_fake(NULL);
	REQUIRE(s);
	use_handler(h_list);
	struct names nm = {0};
	list_mode = 0;
	REQUIRE_OK(rfs_store_list(s, "a/", names_cb, &nm));
	CHECK_EQ(nm.n, 3);
	CHECK_STR(nm.k[0], "a/1");
	CHECK_STR(nm.k[2], "a/3 & x");
	CHECK_EQ(nm.sz[2], 333);
	pthread_mutex_lock(&fake_lock);
	CHECK_CONTAINS(last_target, "prefix=pfx%2Fa%2F");
	pthread_mutex_unlock(&fake_lock);
	for (list_mode = 1; list_mode <= 4; list_mode++) {
		memset(&nm, 0, sizeof(nm));
		if (!CHECK_ERR(rfs_store_list(s, "", names_cb, &nm), EIO))
			fprintf(stderr, "  list mode %d\n", list_mode);
	}
	error_has(s, "out of order");
	rfs_store_close(s);
}

int main(int argc, char **argv)
{
	check_init(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	setenv("AWS_ACCESS_KEY_ID", "FAKEID", 1);
	setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
	unsetenv("AWS_SESSION_TOKEN");
	if (fake_start() < 0) {
		fprintf(stderr, "cannot start the fake server: %s\n", strerror(errno));
		return 1;
	}
	RUN(retry_then_ok);
	RUN(retry_gives_up);
	RUN(retry_reset_and_short_body);
	RUN(cond_plain);
	RUN(cond_ambiguous_we_won);
	RUN(cond_ambiguous_absent);
	RUN(cond_ambiguous_lost);
	RUN(cond_oss_header);
	RUN(probe_detects_overwrites);
	RUN(errno_mapping);
	RUN(reads);
	RUN(listings);
	return check_done();
}
