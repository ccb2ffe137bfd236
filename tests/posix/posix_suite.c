/*
 * posix_suite.c - roamfs's own POSIX conformance battery.
 *
 * Usage:  posix_suite [-v] [-k NAME] DIR
 *
 *   DIR  the directory to test in; created if missing. The suite works in its
 *        own subdirectory DIR/posix_suite.PID and removes it at the end.
 *   -v   print each case as it runs.
 *   -k   run only the cases whose name contains NAME (e.g. -k rename).
 *
 * Run it as root: chown, mknod and the permission cases (which drop to uid/gid
 * 65534 in a child) need that. Exit status is 0 when every case passed, 1 when
 * any failed, 2 on a usage or setup error.
 *
 * Each case is one function, run in a fresh empty directory that is its cwd,
 * with umask 0. A case checks return values, errno and the resulting
 * size/mode/nlink/timestamps; a failed CHECK prints file:line, the expression
 * and strerror(errno) and the case goes on. The last output line is
 * "N passed, M failed" (with ", K skipped" appended when a case skipped itself,
 * e.g. fallocate on a filesystem without it). A case stuck for 300 s aborts
 * the run with "TIMEOUT in case NAME".
 *
 * Covered: open/O_CREAT/O_EXCL/O_TRUNC/O_APPEND and their errors; read/write at
 * offsets, holes, offsets past 4 GiB, large and odd-sized I/O, timestamps;
 * truncate/ftruncate; fallocate; rename and renameat2 (NOREPLACE, EXCHANGE)
 * incl. directory nlink effects; link; symlink/readlink; unlink (also of an
 * open file); mkdir/rmdir; readdir (exact contents, d_type, stability while the
 * directory changes, telldir/seekdir); chmod/chown; utimensat/futimens;
 * permission checks as an unprivileged user; user.* xattrs; flock and fcntl
 * locks; mmap; mkfifo/mknod; statvfs, fsync; lseek, hard-link stat identity,
 * name length limits.
 *
 * The expectations are checked against plain local filesystems (ext4, tmpfs,
 * overlay): every case must pass there. Where POSIX allows more than one
 * outcome the checks accept each of them.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

_Static_assert(sizeof(off_t) == 8, "build with -D_FILE_OFFSET_BITS=64");

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

#define KiB (1024LL)
#define MiB (1024LL * 1024)
#define GiB (1024LL * 1024 * 1024)

/* ------------------------------------------------------------------------ */
/* Check machinery                                                          */
/* ------------------------------------------------------------------------ */

static int g_verbose;
static const char *g_case = "-"; /* name of the running case */
static int g_failed;             /* the running case had a failed check */
static int g_skipped;            /* the running case skipped itself */
static long g_pagesize;

static void fail_at(const char *file, int line, const char *what, int err)
{
	printf("  %s:%d: [%s] CHECK(%s) failed (errno %d: %s)\n", file, line, g_case, what, err, strerror(err));
	g_failed = 1;
}

static void fail_eq(const char *file, int line, const char *a, const char *b, long long va, long long vb, int err)
{
	printf("  %s:%d: [%s] CHECK_EQ(%s, %s) failed: %lld (0%llo) != %lld (0%llo) "
	       "(errno %d: %s)\n",
	       file, line, g_case, a, b, va, (unsigned long long)va, vb, (unsigned long long)vb, err, strerror(err));
	g_failed = 1;
}

static void fail_err(const char *file, int line, const char *call, const char *want, long long r, int err)
{
	printf("  %s:%d: [%s] %s: expected -1 with %s, got %lld (errno %d: %s)\n", file, line, g_case, call, want, r,
	       err, strerror(err));
	g_failed = 1;
}

/* CHECK(expr): expr must be true. */
#define CHECK(expr)                                                \
	do {                                                       \
		if (!(expr))                                       \
			fail_at(__FILE__, __LINE__, #expr, errno); \
	} while (0)

/* REQUIRE(expr): like CHECK, but a failure ends the case (use for preconditions). */
#define REQUIRE(expr)                                              \
	do {                                                       \
		if (!(expr)) {                                     \
			fail_at(__FILE__, __LINE__, #expr, errno); \
			return;                                    \
		}                                                  \
	} while (0)

/* CHECK_EQ(a, b): integer equality, prints both values. */
#define CHECK_EQ(a, b)                                                      \
	do {                                                                \
		long long va_ = (long long)(a), vb_ = (long long)(b);       \
		int en_ = errno;                                            \
		if (va_ != vb_)                                             \
			fail_eq(__FILE__, __LINE__, #a, #b, va_, vb_, en_); \
	} while (0)

/* CHECK_OK(call): the call must not return -1. */
#define CHECK_OK(call)                                             \
	do {                                                       \
		errno = 0;                                         \
		long long r_ = (long long)(call);                  \
		if (r_ == -1)                                      \
			fail_at(__FILE__, __LINE__, #call, errno); \
	} while (0)

/* CHECK_ERR(call, E): the call must fail with -1 and errno E (or E2). */
#define CHECK_ERR2(call, e1, e2)                                                      \
	do {                                                                          \
		errno = 0;                                                            \
		long long r_ = (long long)(call);                                     \
		int en_ = errno;                                                      \
		if (r_ != -1 || (en_ != (e1) && en_ != (e2)))                         \
			fail_err(__FILE__, __LINE__, #call, #e1 " or " #e2, r_, en_); \
	} while (0)
#define CHECK_ERR(call, e)                                                \
	do {                                                              \
		errno = 0;                                                \
		long long r_ = (long long)(call);                         \
		int en_ = errno;                                          \
		if (r_ != -1 || en_ != (e))                               \
			fail_err(__FILE__, __LINE__, #call, #e, r_, en_); \
	} while (0)

#define SKIP(why)                                            \
	do {                                                 \
		printf("  [%s] skipped: %s\n", g_case, why); \
		g_skipped = 1;                               \
		return;                                      \
	} while (0)

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static int ts_cmp(struct timespec a, struct timespec b)
{
	if (a.tv_sec != b.tv_sec)
		return a.tv_sec < b.tv_sec ? -1 : 1;
	if (a.tv_nsec != b.tv_nsec)
		return a.tv_nsec < b.tv_nsec ? -1 : 1;
	return 0;
}
#define TS_GT(a, b) (ts_cmp((a), (b)) > 0)
#define TS_EQ(a, b) (ts_cmp((a), (b)) == 0)

static struct timespec now_rt(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return t;
}

/* t lies within [lo - 1s, hi + 1s] (filesystems stamp with a coarse clock). */
static int ts_near(struct timespec t, struct timespec lo, struct timespec hi)
{
	return t.tv_sec >= lo.tv_sec - 1 && t.tv_sec <= hi.tv_sec + 1;
}

/* Sleep long enough that a new timestamp is strictly later than an old one. */
static void tick(void)
{
	struct timespec t = {0, 15 * 1000 * 1000};
	while (nanosleep(&t, &t) != 0 && errno == EINTR)
		;
}

static void xclose(int fd)
{
	if (fd >= 0)
		close(fd);
}

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Deterministic test data: the byte at file offset off for a given seed. */
static void fill_pat(unsigned char *buf, size_t len, uint64_t seed, uint64_t off)
{
	uint64_t word = 0, cur = UINT64_MAX;
	for (size_t i = 0; i < len; i++) {
		uint64_t o = off + i;
		if (o >> 3 != cur) {
			cur = o >> 3;
			word = mix64(cur ^ (seed << 48));
		}
		buf[i] = (unsigned char)(word >> ((o & 7) * 8));
	}
}

static uint64_t fnv1a(const unsigned char *p, size_t len, uint64_t h)
{
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}
#define FNV_INIT 0xcbf29ce484222325ULL

static ssize_t pwrite_full(int fd, const void *buf, size_t len, off_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pwrite(fd, (const char *)buf + done, len - done, off + (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

static ssize_t pread_full(int fd, void *buf, size_t len, off_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, off + (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

static ssize_t write_full(int fd, const void *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(fd, (const char *)buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

static ssize_t read_full(int fd, void *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = read(fd, (char *)buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

/* Create/overwrite path with exactly data[0..len). 0 on success. */
static int put_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, mode);
	if (fd < 0)
		return -1;
	ssize_t n = write_full(fd, data, len);
	int err = errno;
	if (close(fd) != 0 || n != (ssize_t)len) {
		errno = n < 0 ? err : EIO;
		return -1;
	}
	return 0;
}
#define put_str(path, s) put_file((path), (s), strlen(s), 0644)

/* Does fd hold exactly data[0..len) from off to EOF? */
static int fd_equals(int fd, off_t off, const void *data, size_t len)
{
	unsigned char *buf = malloc(len + 1);
	if (!buf)
		return 0;
	ssize_t n = pread_full(fd, buf, len + 1, off);
	int ok = n == (ssize_t)len && memcmp(buf, data, len) == 0;
	free(buf);
	return ok;
}

static int file_equals(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	int ok = fd_equals(fd, 0, data, len);
	close(fd);
	return ok;
}
#define FILE_IS(path, s) file_equals((path), (s), strlen(s))

/* Are bytes [off, off+len) of fd all present and zero? */
static int range_is_zero(int fd, off_t off, size_t len)
{
	static unsigned char buf[64 * 1024];
	while (len > 0) {
		size_t want = len < sizeof buf ? len : sizeof buf;
		ssize_t n = pread_full(fd, buf, want, off);
		if (n != (ssize_t)want) {
			printf("  short read at %lld: %zd of %zu\n", (long long)off, n, want);
			return 0;
		}
		for (size_t i = 0; i < want; i++)
			if (buf[i]) {
				printf("  non-zero byte 0x%02x at offset %lld\n", buf[i], (long long)(off + (off_t)i));
				return 0;
			}
		off += (off_t)want;
		len -= want;
	}
	return 1;
}

/* Compare a[0..len) with b; print the first difference. */
static int same_bytes(const unsigned char *a, const unsigned char *b, size_t len, long long base)
{
	if (memcmp(a, b, len) == 0)
		return 1;
	for (size_t i = 0; i < len; i++)
		if (a[i] != b[i]) {
			printf("  data differs at offset %lld: 0x%02x != 0x%02x\n", base + (long long)i, a[i], b[i]);
			break;
		}
	return 0;
}

static int count_entries(const char *path) /* excluding . and .. */
{
	DIR *d = opendir(path);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* Run fn(arg) in a forked child; the child's failed checks fail the case. */
static void run_child(void (*fn)(void *), void *arg)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0) {
		fail_at(__FILE__, __LINE__, "fork()", errno);
		return;
	}
	if (pid == 0) {
		g_failed = 0;
		alarm(60);
		fn(arg);
		fflush(stdout);
		_exit(g_failed ? 1 : 0);
	}
	int status = 0;
	errno = 0;
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static int renameat2_(const char *from, const char *to, unsigned flags)
{
#ifdef SYS_renameat2
	return (int)syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, flags);
#else
	(void)from, (void)to, (void)flags;
	errno = ENOSYS;
	return -1;
#endif
}

/* ------------------------------------------------------------------------ */
/* open / create                                                            */
/* ------------------------------------------------------------------------ */

static void t_open_creat_mode(void)
{
	static const mode_t modes[] = {0, 0400, 0600, 0640, 0644, 0755, 0777, 0111};
	struct stat st, d0, d1;
	char name[32];

	REQUIRE(stat(".", &d0) == 0);
	tick();
	int fd = open("f", O_CREAT | O_WRONLY, 0640);
	REQUIRE(fd >= 0);
	REQUIRE(fstat(fd, &st) == 0);
	CHECK(S_ISREG(st.st_mode));
	CHECK_EQ(st.st_mode & 07777, 0640);
	CHECK_EQ(st.st_size, 0);
	CHECK_EQ(st.st_nlink, 1);
	CHECK_EQ(st.st_uid, geteuid());
	CHECK_EQ(st.st_gid, getegid());
	CHECK_EQ(write(fd, "x", 1), 1);
	close(fd);
	REQUIRE(stat(".", &d1) == 0);
	CHECK(TS_GT(d1.st_mtim, d0.st_mtim));
	CHECK(TS_GT(d1.st_ctim, d0.st_ctim));

	/* The creator gets a read-write fd whatever mode the new file has. */
	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		snprintf(name, sizeof name, "m%04o", (unsigned)modes[i]);
		fd = open(name, O_CREAT | O_EXCL | O_RDWR, modes[i]);
		CHECK(fd >= 0);
		if (fd < 0)
			continue;
		CHECK(fstat(fd, &st) == 0);
		CHECK_EQ(st.st_mode & 07777, modes[i]);
		CHECK_EQ(write(fd, "ab", 2), 2);
		close(fd);
		CHECK(lstat(name, &st) == 0);
		CHECK_EQ(st.st_mode & 07777, modes[i]);
		CHECK_EQ(st.st_size, 2);
	}

	/* O_CREAT without O_EXCL on an existing file just opens it. */
	fd = open("f", O_CREAT | O_RDWR, 0777);
	CHECK(fd >= 0);
	CHECK(fstat(fd, &st) == 0);
	CHECK_EQ(st.st_mode & 07777, 0640);
	CHECK_EQ(st.st_size, 1);
	xclose(fd);

	/* The umask is applied to files and directories. */
	umask(027);
	fd = open("u", O_CREAT | O_WRONLY, 0777);
	CHECK(fd >= 0);
	xclose(fd);
	CHECK(stat("u", &st) == 0);
	CHECK_EQ(st.st_mode & 07777, 0750);
	CHECK_OK(mkdir("ud", 0777));
	CHECK(stat("ud", &st) == 0);
	CHECK_EQ(st.st_mode & 07777, 0750);
	umask(0);
}

static void t_open_excl(void)
{
	struct stat st;
	REQUIRE(put_str("f", "data") == 0);
	REQUIRE(mkdir("d", 0755) == 0);
	REQUIRE(symlink("f", "l") == 0);
	REQUIRE(symlink("missing", "dl") == 0);
	CHECK_ERR(open("f", O_CREAT | O_EXCL | O_WRONLY, 0600), EEXIST);
	CHECK_ERR(open("f", O_CREAT | O_EXCL | O_RDONLY | O_TRUNC, 0600), EEXIST);
	CHECK(FILE_IS("f", "data"));
	CHECK_ERR(open("d", O_CREAT | O_EXCL | O_RDONLY, 0600), EEXIST);
	/* O_EXCL does not follow a symlink, not even a dangling one */
	CHECK_ERR(open("l", O_CREAT | O_EXCL | O_WRONLY, 0600), EEXIST);
	CHECK_ERR(open("dl", O_CREAT | O_EXCL | O_WRONLY, 0600), EEXIST);
	CHECK_ERR(lstat("missing", &st), ENOENT);
}

static void t_open_trunc(void)
{
	unsigned char buf[1000];
	struct stat s0, s1;
	fill_pat(buf, sizeof buf, 1, 0);
	REQUIRE(put_file("f", buf, sizeof buf, 0644) == 0);
	REQUIRE(stat("f", &s0) == 0);
	CHECK_EQ(s0.st_size, 1000);
	tick();
	int fd = open("f", O_WRONLY | O_TRUNC);
	REQUIRE(fd >= 0);
	CHECK(fstat(fd, &s1) == 0);
	CHECK_EQ(s1.st_size, 0);
	CHECK(TS_GT(s1.st_mtim, s0.st_mtim));
	CHECK(TS_GT(s1.st_ctim, s0.st_ctim));
	CHECK_EQ(s1.st_ino, s0.st_ino);
	CHECK_EQ(write(fd, "xy", 2), 2);
	close(fd);
	CHECK(FILE_IS("f", "xy"));
	/* O_CREAT|O_TRUNC on an existing file truncates too */
	fd = open("f", O_CREAT | O_TRUNC | O_RDWR, 0600);
	CHECK(fd >= 0);
	CHECK(fstat(fd, &s1) == 0);
	CHECK_EQ(s1.st_size, 0);
	CHECK_EQ(s1.st_mode & 07777, 0644);
	xclose(fd);
}

static void t_open_append(void)
{
	REQUIRE(put_str("f", "abc") == 0);
	int fd = open("f", O_WRONLY | O_APPEND);
	REQUIRE(fd >= 0);
	CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
	CHECK_EQ(write(fd, "XYZ", 3), 3);
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 6);
	CHECK_EQ(lseek(fd, 1, SEEK_SET), 1);
	CHECK_EQ(write(fd, "12", 2), 2);
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 8);
	CHECK(FILE_IS("f", "abcXYZ12"));

	/* two appending descriptions interleave, each write lands at the end */
	int fd2 = open("f", O_RDWR | O_APPEND);
	REQUIRE(fd2 >= 0);
	CHECK_EQ(write(fd, "A", 1), 1);
	CHECK_EQ(write(fd2, "B", 1), 1);
	CHECK_EQ(write(fd, "C", 1), 1);
	close(fd);
	/* reads on an O_APPEND fd still honour the file offset */
	char buf[4] = {0};
	CHECK_EQ(lseek(fd2, 0, SEEK_SET), 0);
	CHECK_EQ(read(fd2, buf, 3), 3);
	CHECK(memcmp(buf, "abc", 3) == 0);
	close(fd2);
	CHECK(FILE_IS("f", "abcXYZ12ABC"));
}

static void t_open_enoent(void)
{
	struct stat st;
	CHECK_ERR(open("nope", O_RDONLY), ENOENT);
	CHECK_ERR(open("nope", O_RDWR), ENOENT);
	CHECK_ERR(open("nodir/f", O_CREAT | O_WRONLY, 0600), ENOENT);
	CHECK_ERR(stat("nope", &st), ENOENT);
	CHECK_ERR(open("", O_RDONLY), ENOENT);
	CHECK_EQ(count_entries("."), 0);
}

static void t_open_enotdir(void)
{
	struct stat st;
	REQUIRE(put_str("f", "x") == 0);
	CHECK_ERR(open("f/x", O_RDONLY), ENOTDIR);
	CHECK_ERR(open("f/x", O_CREAT | O_WRONLY, 0600), ENOTDIR);
	CHECK_ERR(stat("f/x", &st), ENOTDIR);
	CHECK_ERR(stat("f/", &st), ENOTDIR);
	CHECK_ERR(mkdir("f/d", 0755), ENOTDIR);
	CHECK_ERR(unlink("f/x"), ENOTDIR);
}

static void t_open_eisdir(void)
{
	char c;
	REQUIRE(mkdir("d", 0755) == 0);
	CHECK_ERR(open("d", O_WRONLY), EISDIR);
	CHECK_ERR(open("d", O_RDWR), EISDIR);
	CHECK_ERR(open("d", O_WRONLY | O_CREAT, 0600), EISDIR);
	CHECK_ERR(open("d", O_RDONLY | O_TRUNC), EISDIR);
	int fd = open("d", O_RDONLY);
	CHECK(fd >= 0);
	CHECK_ERR(read(fd, &c, 1), EISDIR);
	xclose(fd);
}

static void t_open_directory(void)
{
	REQUIRE(put_str("f", "x") == 0);
	REQUIRE(mkdir("d", 0755) == 0);
	REQUIRE(symlink("d", "ld") == 0);
	REQUIRE(symlink("f", "lf") == 0);
	CHECK_ERR(open("f", O_RDONLY | O_DIRECTORY), ENOTDIR);
	CHECK_ERR(open("lf", O_RDONLY | O_DIRECTORY), ENOTDIR);
	int fd = open("d", O_RDONLY | O_DIRECTORY);
	CHECK(fd >= 0);
	xclose(fd);
	fd = open("ld", O_RDONLY | O_DIRECTORY);
	CHECK(fd >= 0);
	xclose(fd);
	CHECK_ERR(open("lf", O_RDONLY | O_NOFOLLOW), ELOOP);
}

/* ------------------------------------------------------------------------ */
/* read / write                                                             */
/* ------------------------------------------------------------------------ */

static void t_rw_offsets(void)
{
	static const off_t offs[] = {0, 1, 511, 4095, 4096, 5000, 9999, 10003};
	unsigned char model[12000], buf[12000], chunk[7];
	size_t size = 10000;
	int fd = open("f", O_CREAT | O_RDWR, 0644);
	REQUIRE(fd >= 0);
	fill_pat(model, size, 1, 0);
	CHECK_EQ(write_full(fd, model, size), (long long)size);
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), (long long)size);

	for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
		off_t o = offs[i];
		fill_pat(chunk, sizeof chunk, 2, (uint64_t)o);
		CHECK_EQ(pwrite(fd, chunk, sizeof chunk, o), (long long)sizeof chunk);
		memcpy(model + o, chunk, sizeof chunk);
		if ((size_t)o + sizeof chunk > size)
			size = (size_t)o + sizeof chunk;
	}
	/* pwrite/pread leave the file offset alone */
	CHECK_EQ(lseek(fd, 100, SEEK_SET), 100);
	CHECK_EQ(pwrite(fd, model, 1, 0), 1);
	CHECK_EQ(pread(fd, buf, 1, 3), 1);
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 100);

	struct stat st;
	CHECK(fstat(fd, &st) == 0);
	CHECK_EQ(st.st_size, (long long)size);
	for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
		off_t o = offs[i] > 3 ? offs[i] - 3 : 0;
		size_t len = (size_t)o + 20 <= size ? 20 : size - (size_t)o;
		CHECK_EQ(pread_full(fd, buf, 20, o), (long long)len);
		CHECK(same_bytes(buf, model + o, len, o));
	}
	/* read() follows the offset */
	CHECK_EQ(lseek(fd, 4090, SEEK_SET), 4090);
	CHECK_EQ(read(fd, buf, 13), 13);
	CHECK(same_bytes(buf, model + 4090, 13, 4090));
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 4103);
	CHECK_EQ(pread_full(fd, buf, sizeof buf, 0), (long long)size);
	CHECK(same_bytes(buf, model, size, 0));
	close(fd);
}

static void t_rw_ebadf(void)
{
	char c = 'x';
	REQUIRE(put_str("f", "abc") == 0);
	int fd = open("f", O_RDONLY);
	REQUIRE(fd >= 0);
	CHECK_ERR(write(fd, &c, 1), EBADF);
	CHECK_ERR(pwrite(fd, &c, 1, 0), EBADF);
	close(fd);
	fd = open("f", O_WRONLY);
	REQUIRE(fd >= 0);
	CHECK_ERR(read(fd, &c, 1), EBADF);
	CHECK_ERR(pread(fd, &c, 1, 0), EBADF);
	close(fd);
	CHECK(FILE_IS("f", "abc"));
}

static void t_rw_pwrite_hole(void)
{
	struct stat st;
	int fd = open("f", O_CREAT | O_RDWR, 0644);
	REQUIRE(fd >= 0);
	CHECK_EQ(write(fd, "head", 4), 4);
	CHECK_EQ(pwrite(fd, "tail", 4, 100000), 4);
	CHECK(fstat(fd, &st) == 0);
	CHECK_EQ(st.st_size, 100004);
	CHECK(range_is_zero(fd, 4, 100000 - 4));
	CHECK(fd_equals(fd, 99998, "\0\0tail", 6));
	char buf[4];
	CHECK_EQ(pread(fd, buf, 4, 0), 4);
	CHECK(memcmp(buf, "head", 4) == 0);
	/* a write into the middle of the hole */
	CHECK_EQ(pwrite(fd, "mid", 3, 65535), 3);
	CHECK(range_is_zero(fd, 4, 65535 - 4));
	CHECK(range_is_zero(fd, 65538, 100000 - 65538));
	CHECK_EQ(pread(fd, buf, 3, 65535), 3);
	CHECK(memcmp(buf, "mid", 3) == 0);
	close(fd);
}

static void t_rw_sparse(void)
{
	const off_t far = 8 * MiB + 123;
	struct stat st;
	int fd = open("f", O_CREAT | O_RDWR, 0644);
	REQUIRE(fd >= 0);
	CHECK_EQ(pwrite(fd, "A", 1, 0), 1);
	CHECK_EQ(pwrite(fd, "Z", 1, far), 1);
	close(fd);
	/* read the whole thing back through a fresh descriptor with read() */
	fd = open("f", O_RDONLY);
	REQUIRE(fd >= 0);
	CHECK(fstat(fd, &st) == 0);
	CHECK_EQ(st.st_size, far + 1);
	unsigned char *buf = malloc(1 * MiB);
	REQUIRE(buf != NULL);
	off_t pos = 0;
	int bad = 0;
	for (;;) {
		ssize_t n = read(fd, buf, 1 * MiB);
		if (n <= 0) {
			CHECK_EQ(n, 0);
			break;
		}
		for (ssize_t i = 0; i < n && !bad; i++) {
			off_t o = pos + i;
			unsigned char want = o == 0 ? 'A' : o == far ? 'Z' : 0;
			if (buf[i] != want) {
				printf("  byte at %lld is 0x%02x, want 0x%02x\n", (long long)o, buf[i], want);
				bad = 1;
			}
		}
		pos += n;
	}
	CHECK(!bad);
	CHECK_EQ(pos, far + 1);
	/* unaligned reads that start and end inside the hole */
	CHECK(range_is_zero(fd, 3, (size_t)(far - 6)));
	free(buf);
	close(fd);
}

static void t_rw_beyond_4g(void)
{
	const off_t g4 = 4 * GiB, g5 = 5 * GiB;
	unsigned char buf[8];
	struct stat st;
	int fd = open("f", O_CREAT | O_RDWR, 0644);
	REQUIRE(fd >= 0);
	CHECK_EQ(pwrite(fd, "A", 1, g5), 1);
	CHECK(fstat(fd, &st) == 0);
	CHECK_EQ(st.st_size, g5 + 1);
	CHECK_EQ(pwrite(fd, "BC", 2, g4 - 1), 2); /* straddles the 4 GiB boundary */
	CHECK(fstat(fd, &st) == 0);
	CHECK_EQ(st.st_size, g5 + 1);
	CHECK_EQ(pread(fd, buf, 4, g4 - 2), 4);
	CHECK(memcmp(buf, "\0BC\0", 4) == 0);
	CHECK_EQ(pread(fd, buf, 8, g5 - 1), 2); /* short read at EOF */
	CHECK(memcmp(buf, "\0A", 2) == 0);
	CHECK_EQ(pread(fd, buf, 8, g5 + 1), 0);
	CHECK_EQ(lseek(fd, 0, SEEK_END), g5 + 1);
	CHECK_EQ(lseek(fd, g4 - 1, SEEK_SET), g4 - 1);
	CHECK_EQ(read(fd, buf, 2), 2);
	CHECK(memcmp(buf, "BC", 2) == 0);
	CHECK(range_is_zero(fd, g4 + 1, 100000));
	close(fd);

	CHECK(stat("f", &st) == 0);
	CHECK_EQ(st.st_size, g5 + 1);
	fd = open("f", O_RDWR);
	REQUIRE(fd >= 0);
	CHECK_EQ(pread(fd, buf, 1, g5), 1);
	CHECK_EQ(buf[0], 'A');
	/* shrink to just past 4 GiB: the straddling bytes survive */
	CHECK_OK(ftruncate(fd, g4 + 1));
	CHECK(fstat(fd, &st) == 0);
	CHECK_EQ(st.st_size, g4 + 1);
	CHECK_EQ(pread(fd, buf, 8, g4 - 1), 2);
	CHECK(memcmp(buf, "BC", 2) == 0);
	close(fd);
}

static void t_rw_times(void)
{
	struct stat s0, s1, s2;
	char c;
	int fd = open("f", O_CREAT | O_RDWR, 0644);
	REQUIRE(fd >= 0);
	CHECK_EQ(write(fd, "x", 1), 1);
	CHECK(fstat(fd, &s0) == 0);
	tick();
	CHECK_EQ(write(fd, "y", 1), 1);
	CHECK(fstat(fd, &s1) == 0);
	CHECK(TS_GT(s1.st_mtim, s0.st_mtim));
	CHECK(TS_GT(s1.st_ctim, s0.st_ctim));
	CHECK_EQ(s1.st_size, 2);
	tick();
	CHECK_EQ(pwrite(fd, "z", 1, 0), 1); /* overwrite, no size change */
	CHECK(fstat(fd, &s2) == 0);
	CHECK(TS_GT(s2.st_mtim, s1.st_mtim));
	CHECK(TS_GT(s2.st_ctim, s1.st_ctim));
	close(fd);
	/* reading does not touch mtime/ctime; stat agrees with fstat */
	tick();
	fd = open("f", O_RDONLY);
	REQUIRE(fd >= 0);
	CHECK_EQ(read(fd, &c, 1), 1);
	close(fd);
	CHECK(stat("f", &s1) == 0);
	CHECK(TS_EQ(s1.st_mtim, s2.st_mtim));
	CHECK(TS_EQ(s1.st_ctim, s2.st_ctim));
	CHECK(FILE_IS("f", "zy"));
}

static void t_rw_read_eof(void)
{
	char buf[16];
	REQUIRE(put_str("f", "abc") == 0);
	REQUIRE(put_str("empty", "") == 0);
	int fd = open("f", O_RDONLY);
	REQUIRE(fd >= 0);
	CHECK_EQ(read(fd, buf, 0), 0);
	CHECK_EQ(read(fd, buf, sizeof buf), 3);
	CHECK_EQ(read(fd, buf, sizeof buf), 0);
	CHECK_EQ(read(fd, buf, sizeof buf), 0);
	CHECK_EQ(pread(fd, buf, sizeof buf, 3), 0);
	CHECK_EQ(pread(fd, buf, sizeof buf, 1000), 0);
	CHECK_EQ(pread(fd, buf, sizeof buf, 2), 1);
	CHECK_EQ(lseek(fd, 100, SEEK_SET), 100);
	CHECK_EQ(read(fd, buf, sizeof buf), 0);
	close(fd);
	fd = open("empty", O_RDONLY);
	REQUIRE(fd >= 0);
	CHECK_EQ(read(fd, buf, sizeof buf), 0);
	close(fd);
}

static void t_rw_large(void)
{
	/* single write() calls of sizes around 4 KiB, 64 KiB, 1/3/4 MiB */
	static const size_t sizes[] = {
	    1, 4095, 4097, 65535, 65537, 3 * 65536 + 1, 3 * MiB, 3 * MiB + 5, 4 * MiB - 1, 4 * MiB + 17, 12345, 1 * MiB,
	};
	static const struct {
		off_t off;
		size_t len;
	} over[] = {
	    {4 * MiB - 100, 200},
	    {64 * KiB - 3, 6},
	    {1 * MiB + 7, 3 * MiB + 3},
	    {8 * MiB - 1, 2},
	};
	size_t total = 0;
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
		total += sizes[i];
	const size_t tail = 30; /* the last overwrite extends the file */
	unsigned char *model = malloc(total + tail), *buf = malloc(1 * MiB + 1);
	if (!model || !buf) {
		free(model);
		free(buf);
		REQUIRE(!"out of memory");
	}
	fill_pat(model, total, 11, 0);

	int fd = open("f", O_CREAT | O_RDWR, 0644);
	if (fd < 0)
		goto out;
	size_t off = 0;
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		CHECK_EQ(write(fd, model + off, sizes[i]), (long long)sizes[i]);
		off += sizes[i];
	}
	struct stat st;
	CHECK(fstat(fd, &st) == 0);
	CHECK_EQ(st.st_size, (long long)total);

	for (size_t i = 0; i < sizeof over / sizeof over[0]; i++) {
		fill_pat(model + over[i].off, over[i].len, 12, (uint64_t)over[i].off);
		CHECK_EQ(pwrite(fd, model + over[i].off, over[i].len, over[i].off), (long long)over[i].len);
	}
	fill_pat(model + total - 10, tail, 13, total - 10);
	CHECK_EQ(pwrite_full(fd, model + total - 10, tail, (off_t)(total - 10)), (long long)tail);
	total += tail - 10;
	CHECK(fstat(fd, &st) == 0);
	CHECK_EQ(st.st_size, (long long)total);

	/* read back with read() in odd-sized chunks */
	CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
	off = 0;
	int ok = 1;
	while (ok && off < total) {
		ssize_t n = read_full(fd, buf, 100003);
		if (n <= 0)
			break;
		ok = same_bytes(buf, model + off, (size_t)n, (long long)off);
		off += (size_t)n;
	}
	CHECK(ok);
	CHECK_EQ(off, (long long)total);
	close(fd);

	/* and again through a new descriptor with pread() */
	fd = open("f", O_RDONLY);
	if (fd < 0)
		goto out;
	ok = 1;
	for (off = 0; ok && off < total; off += 1 * MiB + 1) {
		size_t want = total - off < 1 * MiB + 1 ? total - off : 1 * MiB + 1;
		CHECK_EQ(pread_full(fd, buf, 1 * MiB + 1, (off_t)off), (long long)want);
		ok = same_bytes(buf, model + off, want, (long long)off);
	}
	CHECK(ok);
	close(fd);
out:
	CHECK(fd >= 0);
	free(model);
	free(buf);
}

/* ------------------------------------------------------------------------ */
/* truncate                                                                 */
/* ------------------------------------------------------------------------ */

static void t_trunc_shrink(void)
{
	unsigned char data[10000];
	struct stat st;
	fill_pat(data, sizeof data, 3, 0);
	REQUIRE(put_file("f", data, sizeof data, 0644) == 0);
	CHECK_OK(truncate("f", 5000));
	CHECK(stat("f", &st) == 0);
	CHECK_EQ(st.st_size, 5000);
	CHECK(file_equals("f", data, 5000));
	int fd = open("f", O_RDWR);
	REQUIRE(fd >= 0);
	CHECK_OK(ftruncate(fd, 1));
	CHECK(fstat(fd, &st) == 0);
	CHECK_EQ(st.st_size, 1);
	CHECK(fd_equals(fd, 0, data, 1));
	CHECK_OK(ftruncate(fd, 0));
	CHECK(fstat(fd, &st) == 0);
	CHECK_EQ(st.st_size, 0);
	close(fd);
}

static void t_trunc_grow(void)
{
	struct stat st;
	REQUIRE(put_str("f", "abc") == 0);
	int fd = open("f", O_RDWR);
	REQUIRE(fd >= 0);
	CHECK_OK(ftruncate(fd, 100000));
	CHECK(fstat(fd, &st) == 0);
	CHECK_EQ(st.st_size, 100000);
	char buf[3];
	CHECK_EQ(pread(fd, buf, 3, 0), 3);
	CHECK(memcmp(buf, "abc", 3) == 0);
	CHECK(range_is_zero(fd, 3, 100000 - 3));
	close(fd);
	CHECK_OK(truncate("f", 5 * MiB + 1));
	CHECK(stat("f", &st) == 0);
	CHECK_EQ(st.st_size, 5 * MiB + 1);
	fd = open("f", O_RDONLY);
	REQUIRE(fd >= 0);
	CHECK(range_is_zero(fd, 3, 5 * MiB - 2));
	close(fd);
}

static void t_trunc_shrink_grow(void)
{
	static const struct {
		off_t small, big;
	} steps[] = {
	    {100, 8192},
	    {3, 4096},
	    {4097, 200000},
	    {65535, 65536 * 2 + 5},
	};
	unsigned char data[200000];
	fill_pat(data, sizeof data, 4, 0);
	int fd = open("f", O_CREAT | O_RDWR, 0644);
	REQUIRE(fd >= 0);
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		off_t s = steps[i].small, b = steps[i].big;
		CHECK_OK(ftruncate(fd, 0));
		CHECK_EQ(pwrite_full(fd, data, (size_t)b, 0), (long long)b);
		CHECK_OK(i % 2 ? truncate("f", s) : ftruncate(fd, s));
		CHECK_OK(i % 2 ? ftruncate(fd, b) : truncate("f", b));
		struct stat st;
		CHECK(fstat(fd, &st) == 0);
		CHECK_EQ(st.st_size, b);
		unsigned char *buf = malloc((size_t)s);
		if (buf) {
			CHECK_EQ(pread_full(fd, buf, (size_t)s, 0), s);
			CHECK(same_bytes(buf, data, (size_t)s, 0));
			free(buf);
		}
		CHECK(range_is_zero(fd, s, (size_t)(b - s))); /* old tail is gone */
	}
	close(fd);
}

static void t_trunc_times(void)
{
	struct stat s0, s1, s2;
	REQUIRE(put_str("f", "0123456789") == 0);
	REQUIRE(stat("f", &s0) == 0);
	tick();
	CHECK_OK(truncate("f", 20));
	CHECK(stat("f", &s1) == 0);
	CHECK(TS_GT(s1.st_mtim, s0.st_mtim));
	CHECK(TS_GT(s1.st_ctim, s0.st_ctim));
	tick();
	int fd = open("f", O_RDWR);
	REQUIRE(fd >= 0);
	CHECK_OK(ftruncate(fd, 5));
	CHECK(fstat(fd, &s2) == 0);
	CHECK(TS_GT(s2.st_mtim, s1.st_mtim));
	CHECK(TS_GT(s2.st_ctim, s1.st_ctim));
	close(fd);
}

static void t_trunc_same_size(void)
{
	struct stat st;
	REQUIRE(put_str("f", "0123456789") == 0);
	CHECK_OK(truncate("f", 10));
	int fd = open("f", O_RDWR);
	REQUIRE(fd >= 0);
	CHECK_OK(ftruncate(fd, 10));
	CHECK(fstat(fd, &st) == 0);
	CHECK_EQ(st.st_size, 10);
	close(fd);
	CHECK(FILE_IS("f", "0123456789"));
}

static void t_trunc_errors(void)
{
	struct stat st;
	REQUIRE(put_str("f", "abc") == 0);
	REQUIRE(mkdir("d", 0755) == 0);
	CHECK_ERR(truncate("f", -1), EINVAL);
	int fd = open("f", O_RDWR);
	REQUIRE(fd >= 0);
	CHECK_ERR(ftruncate(fd, -1), EINVAL);
	close(fd);
	fd = open("f", O_RDONLY);
	REQUIRE(fd >= 0);
	CHECK_ERR2(ftruncate(fd, 0), EINVAL, EBADF); /* not open for writing */
	close(fd);
	CHECK_ERR(truncate("d", 0), EISDIR);
	CHECK_ERR(truncate("nope", 0), ENOENT);
	CHECK(stat("f", &st) == 0);
	CHECK_EQ(st.st_size, 3);
}

/* ------------------------------------------------------------------------ */
/* fallocate                                                                */
/* ------------------------------------------------------------------------ */

static void t_fallocate(void)
{
	struct stat st;
	int fd = open("f", O_CREAT | O_RDWR, 0644);
	REQUIRE(fd >= 0);
	int r = fallocate(fd, 0, 0, 1 * MiB);
	if (r != 0 && (errno == EOPNOTSUPP || errno == ENOSYS)) {
		close(fd);
		SKIP("fallocate not supported");
	}
	CHECK_EQ(r, 0);
	CHECK(fstat(fd, &st) == 0);
	CHECK_EQ(st.st_size, 1 * MiB);
	CHECK(range_is_zero(fd, 0, 1 * MiB));

	/* within existing data: neither data nor size change */
	CHECK_EQ(pwrite(fd, "data", 4, 100), 4);
	CHECK_OK(fallocate(fd, 0, 0, 4096));
	CHECK(fstat(fd, &st) == 0);
	CHECK_EQ(st.st_size, 1 * MiB);
	char buf[4];
	CHECK_EQ(pread(fd, buf, 4, 100), 4);
	CHECK(memcmp(buf, "data", 4) == 0);

	/* past EOF, unaligned: size becomes offset+len, the gap reads as zeros */
	CHECK_OK(fallocate(fd, 0, 2 * MiB + 1, 10));
	CHECK(fstat(fd, &st) == 0);
	CHECK_EQ(st.st_size, 2 * MiB + 11);
	CHECK(range_is_zero(fd, 1 * MiB, 1 * MiB + 11));
	CHECK_ERR(fallocate(fd, 0, 0, 0), EINVAL);
	CHECK_ERR(fallocate(fd, 0, -1, 10), EINVAL);
	close(fd);
}

/* ------------------------------------------------------------------------ */
/* rename                                                                   */
/* ------------------------------------------------------------------------ */

static void t_rename_file_over_file(void)
{
	struct stat sa, sb, st, d0, d1;
	REQUIRE(put_str("a", "AAAA") == 0);
	REQUIRE(put_str("b", "BB") == 0);
	REQUIRE(link("b", "b2") == 0);
	REQUIRE(lstat("a", &sa) == 0 && lstat("b", &sb) == 0);
	CHECK_EQ(sb.st_nlink, 2);
	int fdb = open("b", O_RDONLY);
	REQUIRE(fdb >= 0);
	REQUIRE(stat(".", &d0) == 0);
	tick();
	CHECK_OK(rename("a", "b"));
	CHECK_ERR(lstat("a", &st), ENOENT);
	CHECK(lstat("b", &st) == 0);
	CHECK_EQ(st.st_ino, sa.st_ino);
	CHECK_EQ(st.st_size, 4);
	CHECK(FILE_IS("b", "AAAA"));
	/* the replaced inode lost one link; its other name and open fd still work */
	CHECK(lstat("b2", &st) == 0);
	CHECK_EQ(st.st_ino, sb.st_ino);
	CHECK_EQ(st.st_nlink, 1);
	CHECK(fstat(fdb, &st) == 0);
	CHECK_EQ(st.st_nlink, 1);
	CHECK(stat(".", &d1) == 0);
	CHECK(TS_GT(d1.st_mtim, d0.st_mtim));
	CHECK(TS_GT(d1.st_ctim, d0.st_ctim));

	/* replace the last name of an inode that is still open: it is gone */
	int fda = open("b", O_RDONLY);
	REQUIRE(fda >= 0);
	CHECK_OK(rename("b2", "b"));
	CHECK(fstat(fda, &st) == 0);
	CHECK_EQ(st.st_nlink, 0);
	CHECK(fd_equals(fda, 0, "AAAA", 4));
	CHECK(FILE_IS("b", "BB"));
	CHECK(lstat("b", &st) == 0);
	CHECK_EQ(st.st_ino, sb.st_ino);
	CHECK_EQ(st.st_nlink, 1);
	CHECK_ERR(lstat("b2", &st), ENOENT);
	CHECK_EQ(count_entries("."), 1);
	close(fda);
	close(fdb);
}

static void t_rename_dir_over_empty_dir(void)
{
	struct stat s1, p0, st;
	REQUIRE(mkdir("d1", 0755) == 0 && put_str("d1/f", "in d1") == 0);
	REQUIRE(mkdir("d2", 0755) == 0);
	REQUIRE(stat("d1", &s1) == 0 && stat(".", &p0) == 0);
	CHECK_EQ(p0.st_nlink, 4);
	CHECK_OK(rename("d1", "d2"));
	CHECK_ERR(stat("d1", &st), ENOENT);
	CHECK(stat("d2", &st) == 0);
	CHECK_EQ(st.st_ino, s1.st_ino);
	CHECK_EQ(st.st_nlink, 2);
	CHECK(FILE_IS("d2/f", "in d1"));
	CHECK(stat(".", &st) == 0);
	CHECK_EQ(st.st_nlink, p0.st_nlink - 1);

	/* across parents: the source parent loses a link, the target parent keeps its count */
	REQUIRE(mkdir("p", 0755) == 0 && mkdir("p/e", 0755) == 0 && mkdir("s", 0755) == 0);
	struct stat pp0, dot0;
	REQUIRE(stat("p", &pp0) == 0 && stat(".", &dot0) == 0);
	CHECK_OK(rename("s", "p/e"));
	CHECK(stat("p", &st) == 0);
	CHECK_EQ(st.st_nlink, pp0.st_nlink);
	CHECK(stat(".", &st) == 0);
	CHECK_EQ(st.st_nlink, dot0.st_nlink - 1);
	CHECK(stat("p/e/..", &st) == 0);
	CHECK_EQ(st.st_ino, pp0.st_ino);
}

static void t_rename_dir_over_nonempty(void)
{
	struct stat st;
	REQUIRE(mkdir("a", 0755) == 0 && mkdir("b", 0755) == 0 && put_str("b/x", "x") == 0);
	CHECK_ERR2(rename("a", "b"), ENOTEMPTY, EEXIST);
	CHECK(stat("a", &st) == 0 && S_ISDIR(st.st_mode));
	CHECK(FILE_IS("b/x", "x"));
}

static void t_rename_type_mismatch(void)
{
	struct stat st;
	REQUIRE(put_str("f", "file") == 0);
	REQUIRE(mkdir("d", 0755) == 0);
	CHECK_ERR(rename("f", "d"), EISDIR);
	CHECK_ERR(rename("d", "f"), ENOTDIR);
	CHECK(FILE_IS("f", "file"));
	CHECK(stat("d", &st) == 0 && S_ISDIR(st.st_mode));
}

static void t_rename_self(void)
{
	struct stat st;
	REQUIRE(put_str("f", "self") == 0);
	REQUIRE(mkdir("d", 0755) == 0);
	CHECK_OK(rename("f", "f"));
	CHECK_OK(rename("d", "d"));
	CHECK(FILE_IS("f", "self"));
	CHECK(stat("d", &st) == 0 && S_ISDIR(st.st_mode));
	/* two links to the same inode: rename succeeds and does nothing */
	REQUIRE(link("f", "f2") == 0);
	CHECK_OK(rename("f", "f2"));
	CHECK(lstat("f", &st) == 0);
	CHECK_EQ(st.st_nlink, 2);
	CHECK(lstat("f2", &st) == 0);
	CHECK_EQ(count_entries("."), 3);
}

static void t_rename_into_subdir(void)
{
	struct stat st;
	REQUIRE(mkdir("d", 0755) == 0 && mkdir("d/s", 0755) == 0);
	CHECK_ERR(rename("d", "d/x"), EINVAL);
	CHECK_ERR(rename("d", "d/s/x"), EINVAL);
	CHECK_ERR(rename("d", "d/s"), EINVAL);
	CHECK(stat("d/s", &st) == 0 && S_ISDIR(st.st_mode));
}

static void t_rename_errors(void)
{
	REQUIRE(put_str("f", "x") == 0);
	CHECK_ERR(rename("nope", "x"), ENOENT);
	CHECK_ERR(rename("f", "nodir/x"), ENOENT);
	CHECK_ERR(rename("f", "f/x"), ENOTDIR);
	CHECK(FILE_IS("f", "x"));
}

static void t_rename_noreplace(void)
{
	struct stat st;
	REQUIRE(put_str("a", "A") == 0 && put_str("b", "B") == 0 && mkdir("d", 0755) == 0);
	int r = renameat2_("a", "b", RENAME_NOREPLACE);
	if (r == -1 && errno == ENOSYS)
		SKIP("renameat2 not available");
	CHECK_EQ(r, -1);
	CHECK_EQ(errno, EEXIST);
	CHECK_ERR(renameat2_("a", "d", RENAME_NOREPLACE), EEXIST);
	CHECK(FILE_IS("a", "A"));
	CHECK(FILE_IS("b", "B"));
	CHECK_OK(renameat2_("a", "c", RENAME_NOREPLACE));
	CHECK_ERR(lstat("a", &st), ENOENT);
	CHECK(FILE_IS("c", "A"));
	CHECK_OK(renameat2_("d", "d2", RENAME_NOREPLACE));
	CHECK(stat("d2", &st) == 0 && S_ISDIR(st.st_mode));
}

static void t_rename_exchange(void)
{
	struct stat sf, sd, p0, st;
	REQUIRE(put_str("f", "file") == 0);
	REQUIRE(mkdir("d", 0755) == 0 && put_str("d/inner", "inner") == 0);
	REQUIRE(lstat("f", &sf) == 0 && lstat("d", &sd) == 0 && stat(".", &p0) == 0);
	int r = renameat2_("f", "d", RENAME_EXCHANGE);
	if (r == -1 && errno == ENOSYS)
		SKIP("renameat2 not available");
	CHECK_EQ(r, 0);
	CHECK(lstat("f", &st) == 0);
	CHECK(S_ISDIR(st.st_mode));
	CHECK_EQ(st.st_ino, sd.st_ino);
	CHECK(FILE_IS("f/inner", "inner"));
	CHECK(lstat("d", &st) == 0);
	CHECK(S_ISREG(st.st_mode));
	CHECK_EQ(st.st_ino, sf.st_ino);
	CHECK(FILE_IS("d", "file"));
	CHECK(stat(".", &st) == 0);
	CHECK_EQ(st.st_nlink, p0.st_nlink);
	CHECK_ERR(renameat2_("d", "missing", RENAME_EXCHANGE), ENOENT);

	/* across parents: the subdirectory count moves with the directory */
	struct stat n1, n2;
	REQUIRE(mkdir("p1", 0755) == 0 && mkdir("p2", 0755) == 0);
	REQUIRE(put_str("p1/x", "x") == 0 && mkdir("p2/y", 0755) == 0);
	REQUIRE(stat("p1", &n1) == 0 && stat("p2", &n2) == 0);
	CHECK_OK(renameat2_("p1/x", "p2/y", RENAME_EXCHANGE));
	CHECK(stat("p1", &st) == 0);
	CHECK_EQ(st.st_nlink, n1.st_nlink + 1);
	CHECK(stat("p2", &st) == 0);
	CHECK_EQ(st.st_nlink, n2.st_nlink - 1);
	CHECK(lstat("p1/x", &st) == 0 && S_ISDIR(st.st_mode));
	CHECK(stat("p1/x/..", &st) == 0);
	CHECK_EQ(st.st_ino, n1.st_ino);
	CHECK(FILE_IS("p2/y", "x"));
}

static void t_rename_times(void)
{
	struct stat s0, t0, f0, s1, t1, g1;
	REQUIRE(mkdir("s", 0755) == 0 && mkdir("t", 0755) == 0 && put_str("s/f", "f") == 0);
	REQUIRE(stat("s", &s0) == 0 && stat("t", &t0) == 0 && lstat("s/f", &f0) == 0);
	tick();
	CHECK_OK(rename("s/f", "t/g"));
	CHECK(stat("s", &s1) == 0 && stat("t", &t1) == 0 && lstat("t/g", &g1) == 0);
	CHECK(TS_GT(s1.st_mtim, s0.st_mtim));
	CHECK(TS_GT(s1.st_ctim, s0.st_ctim));
	CHECK(TS_GT(t1.st_mtim, t0.st_mtim));
	CHECK(TS_GT(t1.st_ctim, t0.st_ctim));
	CHECK(TS_GT(g1.st_ctim, f0.st_ctim)); /* the moved inode's ctime */
	CHECK(TS_EQ(g1.st_mtim, f0.st_mtim)); /* ... but not its mtime */
	tick();
	CHECK_OK(rename("t/g", "t/h"));
	struct stat t2;
	CHECK(stat("t", &t2) == 0);
	CHECK(TS_GT(t2.st_mtim, t1.st_mtim));
	CHECK(TS_GT(t2.st_ctim, t1.st_ctim));
}

static void t_rename_dir_nlink(void)
{
	struct stat p1, p2, st, sub;
	REQUIRE(mkdir("p1", 0755) == 0 && mkdir("p2", 0755) == 0 && mkdir("p1/sub", 0755) == 0);
	REQUIRE(put_str("p1/sub/f", "f") == 0 && put_str("p1/file", "x") == 0);
	REQUIRE(stat("p1", &p1) == 0 && stat("p2", &p2) == 0 && stat("p1/sub", &sub) == 0);
	CHECK_EQ(p1.st_nlink, 3);
	CHECK_EQ(p2.st_nlink, 2);
	CHECK_OK(rename("p1/sub", "p2/sub"));
	CHECK(stat("p1", &st) == 0);
	CHECK_EQ(st.st_nlink, 2);
	CHECK(stat("p2", &st) == 0);
	CHECK_EQ(st.st_nlink, 3);
	CHECK(stat("p2/sub", &st) == 0);
	CHECK_EQ(st.st_ino, sub.st_ino);
	CHECK_EQ(st.st_nlink, 2);
	CHECK(stat("p2/sub/..", &st) == 0); /* ".." now names the new parent */
	CHECK_EQ(st.st_ino, p2.st_ino);
	CHECK(FILE_IS("p2/sub/f", "f"));
	/* moving a plain file changes no directory link counts */
	CHECK_OK(rename("p1/file", "p2/file"));
	CHECK(stat("p1", &st) == 0);
	CHECK_EQ(st.st_nlink, 2);
	CHECK(stat("p2", &st) == 0);
	CHECK_EQ(st.st_nlink, 3);
	/* and back, into a subdirectory of the old parent's sibling */
	CHECK_OK(rename("p2/sub", "p1/sub2"));
	CHECK(stat("p1", &st) == 0);
	CHECK_EQ(st.st_nlink, 3);
	CHECK(stat("p2", &st) == 0);
	CHECK_EQ(st.st_nlink, 2);
}

/* ------------------------------------------------------------------------ */
/* link                                                                     */
/* ------------------------------------------------------------------------ */

static void t_link_nlink(void)
{
	struct stat a0, a1, b1, d0, d1, st;
	REQUIRE(put_str("a", "data") == 0);
	REQUIRE(lstat("a", &a0) == 0 && stat(".", &d0) == 0);
	CHECK_EQ(a0.st_nlink, 1);
	tick();
	CHECK_OK(link("a", "b"));
	CHECK(lstat("a", &a1) == 0 && lstat("b", &b1) == 0);
	CHECK_EQ(a1.st_ino, b1.st_ino);
	CHECK_EQ(a1.st_nlink, 2);
	CHECK_EQ(b1.st_nlink, 2);
	CHECK(TS_GT(a1.st_ctim, a0.st_ctim));
	CHECK(TS_EQ(a1.st_mtim, a0.st_mtim));
	CHECK(stat(".", &d1) == 0);
	CHECK(TS_GT(d1.st_mtim, d0.st_mtim));
	CHECK(TS_GT(d1.st_ctim, d0.st_ctim));
	/* writes through one name are visible through the other */
	REQUIRE(put_str("b", "changed") == 0);
	CHECK(FILE_IS("a", "changed"));
	REQUIRE(lstat("b", &b1) == 0);
	tick();
	CHECK_OK(unlink("a"));
	CHECK(lstat("b", &st) == 0);
	CHECK_EQ(st.st_nlink, 1);
	CHECK(TS_GT(st.st_ctim, b1.st_ctim));
	CHECK(FILE_IS("b", "changed"));
	CHECK(stat(".", &d0) == 0);
	CHECK(TS_GT(d0.st_mtim, d1.st_mtim));
}

static void t_link_errors(void)
{
	struct stat st;
	REQUIRE(mkdir("d", 0755) == 0);
	REQUIRE(put_str("a", "a") == 0 && put_str("b", "b") == 0);
	CHECK_ERR(link("d", "dl"), EPERM);
	CHECK_ERR(link("a", "b"), EEXIST);
	CHECK_ERR(link("a", "d"), EEXIST);
	CHECK_ERR(link("nope", "x"), ENOENT);
	CHECK_ERR(link("a", "nodir/x"), ENOENT);
	CHECK(lstat("a", &st) == 0);
	CHECK_EQ(st.st_nlink, 1);
	CHECK(FILE_IS("b", "b"));
}

static void t_link_symlink(void)
{
	struct stat st, sf, sl;
	REQUIRE(put_str("f", "target") == 0 && symlink("f", "l") == 0);
	REQUIRE(lstat("f", &sf) == 0 && lstat("l", &sl) == 0);
	/* linkat without AT_SYMLINK_FOLLOW links the symlink itself */
	CHECK_OK(linkat(AT_FDCWD, "l", AT_FDCWD, "l2", 0));
	CHECK(lstat("l2", &st) == 0 && S_ISLNK(st.st_mode));
	CHECK_EQ(st.st_ino, sl.st_ino);
	CHECK_EQ(st.st_nlink, 2);
	CHECK_OK(linkat(AT_FDCWD, "l", AT_FDCWD, "l3", AT_SYMLINK_FOLLOW));
	CHECK(lstat("l3", &st) == 0 && S_ISREG(st.st_mode));
	CHECK_EQ(st.st_ino, sf.st_ino);
	CHECK_EQ(st.st_nlink, 2);
}

/* ------------------------------------------------------------------------ */
/* symlink / readlink                                                       */
/* ------------------------------------------------------------------------ */

static void t_symlink_basic(void)
{
	const char *t = "some/target with spaces/../x\xc3\xa9";
	char buf[256];
	struct stat st, d0, d1;
	REQUIRE(stat(".", &d0) == 0);
	tick();
	CHECK_OK(symlink(t, "l"));
	CHECK(stat(".", &d1) == 0);
	CHECK(TS_GT(d1.st_mtim, d0.st_mtim));
	CHECK(lstat("l", &st) == 0);
	CHECK(S_ISLNK(st.st_mode));
	CHECK_EQ(st.st_size, (long long)strlen(t));
	CHECK_EQ(readlink("l", buf, sizeof buf), (long long)strlen(t));
	CHECK(memcmp(buf, t, strlen(t)) == 0);
	/* a short buffer gets a truncated target */
	memset(buf, '#', sizeof buf);
	CHECK_EQ(readlink("l", buf, 5), 5);
	CHECK(memcmp(buf, t, 5) == 0 && buf[5] == '#');

	/* symlinks to a file and to a directory are followed */
	REQUIRE(put_str("target", "content") == 0 && mkdir("dir", 0755) == 0);
	REQUIRE(put_str("dir/f", "in dir") == 0);
	CHECK_OK(symlink("target", "lt"));
	CHECK_OK(symlink("dir", "ld"));
	struct stat tt;
	CHECK(stat("lt", &st) == 0 && stat("target", &tt) == 0);
	CHECK_EQ(st.st_ino, tt.st_ino);
	CHECK(FILE_IS("lt", "content"));
	CHECK(FILE_IS("ld/f", "in dir"));
	CHECK_ERR(symlink("x", "target"), EEXIST);
	CHECK_ERR(symlink("x", "l"), EEXIST);
}

static void t_symlink_long(void)
{
	char t[1001], buf[2048];
	struct stat st;
	/* 1000 bytes in components of at most 99 bytes */
	for (int i = 0; i < 1000; i++)
		t[i] = (i % 100 == 99) ? '/' : (char)('a' + i % 26);
	t[1000] = '\0';
	CHECK_OK(symlink(t, "l"));
	CHECK(lstat("l", &st) == 0 && S_ISLNK(st.st_mode));
	CHECK_EQ(st.st_size, 1000);
	memset(buf, 0, sizeof buf);
	CHECK_EQ(readlink("l", buf, sizeof buf), 1000);
	CHECK(memcmp(buf, t, 1000) == 0);
}

static void t_symlink_dangling(void)
{
	struct stat st;
	char buf[64];
	CHECK_OK(symlink("missing-target", "dl"));
	CHECK(lstat("dl", &st) == 0 && S_ISLNK(st.st_mode));
	CHECK_ERR(stat("dl", &st), ENOENT);
	CHECK_ERR(open("dl", O_RDONLY), ENOENT);
	CHECK_ERR(access("dl", F_OK), ENOENT);
	CHECK_EQ(readlink("dl", buf, sizeof buf), 14);
	/* O_CREAT through a dangling symlink creates the target (Linux) or fails
     * with EEXIST (allowed by POSIX) */
	errno = 0;
	int fd = open("dl", O_CREAT | O_WRONLY, 0644);
	if (fd >= 0) {
		CHECK_EQ(write(fd, "now", 3), 3);
		close(fd);
		CHECK(FILE_IS("missing-target", "now"));
		CHECK(lstat("dl", &st) == 0 && S_ISLNK(st.st_mode));
	} else {
		CHECK_EQ(errno, EEXIST);
	}
}

static void t_symlink_readlink_einval(void)
{
	char buf[64];
	REQUIRE(put_str("f", "x") == 0 && mkdir("d", 0755) == 0);
	CHECK_ERR(readlink("f", buf, sizeof buf), EINVAL);
	CHECK_ERR(readlink("d", buf, sizeof buf), EINVAL);
	CHECK_ERR(readlink("nope", buf, sizeof buf), ENOENT);
}

/* ------------------------------------------------------------------------ */
/* unlink                                                                   */
/* ------------------------------------------------------------------------ */

static void t_unlink_errors(void)
{
	struct stat st;
	REQUIRE(put_str("f", "x") == 0 && mkdir("d", 0755) == 0);
	CHECK_ERR(unlink("nope"), ENOENT);
	CHECK_ERR(unlink("nodir/x"), ENOENT);
	CHECK_ERR(unlink("f/x"), ENOTDIR);
	CHECK_ERR2(unlink("d"), EISDIR, EPERM);
	CHECK(stat("d", &st) == 0 && S_ISDIR(st.st_mode));
}

static void t_unlink_times(void)
{
	struct stat d0, d1, st;
	REQUIRE(put_str("f", "x") == 0 && stat(".", &d0) == 0);
	tick();
	CHECK_OK(unlink("f"));
	CHECK_ERR(lstat("f", &st), ENOENT);
	CHECK(stat(".", &d1) == 0);
	CHECK(TS_GT(d1.st_mtim, d0.st_mtim));
	CHECK(TS_GT(d1.st_ctim, d0.st_ctim));
	CHECK_EQ(count_entries("."), 0);
}

static void t_unlink_open_file(void)
{
	struct stat st;
	REQUIRE(put_str("f", "hello") == 0);
	int fd = open("f", O_RDWR);
	REQUIRE(fd >= 0);
	CHECK_OK(unlink("f"));
	CHECK_ERR(lstat("f", &st), ENOENT);
	CHECK_EQ(count_entries("."), 0); /* no hidden placeholder names */
	CHECK(fstat(fd, &st) == 0);
	CHECK_EQ(st.st_nlink, 0);
	CHECK_EQ(st.st_size, 5);
	CHECK(fd_equals(fd, 0, "hello", 5));
	CHECK_EQ(pwrite(fd, " world", 6, 5), 6);
	CHECK(fstat(fd, &st) == 0);
	CHECK_EQ(st.st_size, 11);
	CHECK(fd_equals(fd, 0, "hello world", 11));
	/* a new file under the same name is a different inode */
	REQUIRE(put_str("f", "new") == 0);
	struct stat nst;
	CHECK(stat("f", &nst) == 0);
	CHECK(nst.st_ino != st.st_ino);
	CHECK(FILE_IS("f", "new"));
	CHECK(fd_equals(fd, 0, "hello world", 11));
	CHECK_OK(ftruncate(fd, 3));
	CHECK(fd_equals(fd, 0, "hel", 3));
	CHECK(FILE_IS("f", "new"));
	CHECK_OK(fchmod(fd, 0600));
	CHECK(fstat(fd, &st) == 0);
	CHECK_EQ(st.st_mode & 07777, 0600);
	CHECK_OK(close(fd));
	CHECK_EQ(count_entries("."), 1);
}

/* ------------------------------------------------------------------------ */
/* mkdir / rmdir / readdir                                                  */
/* ------------------------------------------------------------------------ */

static void t_mkdir_basic(void)
{
	struct stat p0, p1, st, dot;
	REQUIRE(stat(".", &p0) == 0);
	tick();
	CHECK_OK(mkdir("d", 0750));
	CHECK(stat("d", &st) == 0);
	CHECK(S_ISDIR(st.st_mode));
	CHECK_EQ(st.st_mode & 07777, 0750);
	CHECK_EQ(st.st_nlink, 2);
	CHECK_EQ(st.st_uid, geteuid());
	CHECK(stat(".", &p1) == 0);
	CHECK_EQ(p1.st_nlink, p0.st_nlink + 1);
	CHECK(TS_GT(p1.st_mtim, p0.st_mtim));
	CHECK(TS_GT(p1.st_ctim, p0.st_ctim));
	CHECK(stat("d/.", &dot) == 0);
	CHECK_EQ(dot.st_ino, st.st_ino);
	CHECK(stat("d/..", &dot) == 0);
	CHECK_EQ(dot.st_ino, p1.st_ino);
	CHECK_EQ(count_entries("d"), 0);
	CHECK_OK(mkdir("m0", 0));
	CHECK(stat("m0", &st) == 0);
	CHECK_EQ(st.st_mode & 07777, 0);
	CHECK_OK(mkdir("slash/", 0755));
	CHECK(stat("slash", &st) == 0 && S_ISDIR(st.st_mode));
	/* a subdirectory adds a link to its parent */
	CHECK_OK(mkdir("d/sub", 0755));
	CHECK(stat("d", &st) == 0);
	CHECK_EQ(st.st_nlink, 3);
}

static void t_mkdir_eexist(void)
{
	REQUIRE(mkdir("d", 0755) == 0 && put_str("f", "x") == 0 && symlink("nope", "l") == 0);
	CHECK_ERR(mkdir("d", 0755), EEXIST);
	CHECK_ERR(mkdir("f", 0755), EEXIST);
	CHECK_ERR(mkdir("l", 0755), EEXIST);
	CHECK_ERR(mkdir("nodir/x", 0755), ENOENT);
}

static void t_rmdir_basic(void)
{
	struct stat p0, p1, st;
	REQUIRE(mkdir("d", 0755) == 0 && stat(".", &p0) == 0);
	tick();
	CHECK_OK(rmdir("d"));
	CHECK_ERR(stat("d", &st), ENOENT);
	CHECK(stat(".", &p1) == 0);
	CHECK_EQ(p1.st_nlink, p0.st_nlink - 1);
	CHECK(TS_GT(p1.st_mtim, p0.st_mtim));
	CHECK(TS_GT(p1.st_ctim, p0.st_ctim));
}

static void t_rmdir_errors(void)
{
	struct stat st;
	REQUIRE(mkdir("d", 0755) == 0 && put_str("d/f", "x") == 0);
	REQUIRE(put_str("f", "x") == 0 && mkdir("e", 0755) == 0 && symlink("e", "le") == 0);
	CHECK_ERR2(rmdir("d"), ENOTEMPTY, EEXIST);
	CHECK(FILE_IS("d/f", "x"));
	CHECK_ERR(rmdir("f"), ENOTDIR);
	CHECK_ERR(rmdir("nope"), ENOENT);
	CHECK_ERR(rmdir("e/."), EINVAL);
	CHECK_ERR(rmdir("le"), ENOTDIR);
	CHECK(stat("e", &st) == 0);
	/* a directory holding only a subdirectory is not empty either */
	REQUIRE(mkdir("e/sub", 0755) == 0);
	CHECK_ERR2(rmdir("e"), ENOTEMPTY, EEXIST);
}

struct dent {
	char name[NAME_MAX + 1];
	unsigned char type;
	ino_t ino;
};

static int list_dir(const char *path, struct dent *out, int max)
{
	DIR *d = opendir(path);
	if (!d)
		return -1;
	int n = 0;
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de)
			break;
		if (n < max) {
			size_t l = strnlen(de->d_name, NAME_MAX);
			memcpy(out[n].name, de->d_name, l);
			out[n].name[l] = '\0';
			out[n].type = de->d_type;
			out[n].ino = de->d_ino;
		}
		n++;
	}
	int err = errno;
	closedir(d);
	errno = err;
	return err ? -1 : n;
}

static void t_readdir_entries(void)
{
	static const struct {
		const char *name;
		unsigned char type;
	} want[] = {
	    {".", DT_DIR}, {"..", DT_DIR}, {"f1", DT_REG}, {"f2", DT_REG},
	    {"d", DT_DIR}, {"l", DT_LNK},  {"p", DT_FIFO}, {"c", DT_CHR},
	};
	const int nwant = (int)(sizeof want / sizeof want[0]);
	struct dent ents[32];
	REQUIRE(mkdir("dir", 0755) == 0);
	int n = list_dir("dir", ents, 32);
	CHECK_EQ(n, 2); /* empty directory: exactly . and .. */
	for (int i = 0; i < n && i < 32; i++)
		CHECK(strcmp(ents[i].name, ".") == 0 || strcmp(ents[i].name, "..") == 0);

	REQUIRE(put_str("dir/f1", "1") == 0 && put_str("dir/f2", "2") == 0);
	REQUIRE(mkdir("dir/d", 0755) == 0 && symlink("f1", "dir/l") == 0);
	REQUIRE(mkfifo("dir/p", 0644) == 0 && mknod("dir/c", S_IFCHR | 0600, makedev(1, 3)) == 0);
	n = list_dir("dir", ents, 32);
	CHECK_EQ(n, nwant);
	for (int w = 0; w < nwant; w++) {
		int seen = 0;
		for (int i = 0; i < n && i < 32; i++) {
			if (strcmp(ents[i].name, want[w].name) != 0)
				continue;
			seen++;
			if (ents[i].type != want[w].type)
				printf("  entry %s: d_type %d, want %d\n", want[w].name, ents[i].type, want[w].type);
			CHECK_EQ(ents[i].type, want[w].type);
			if (strcmp(want[w].name, "..") != 0) {
				char path[64];
				struct stat st;
				snprintf(path, sizeof path, "dir/%s", want[w].name);
				CHECK(lstat(path, &st) == 0);
				CHECK_EQ(ents[i].ino, st.st_ino);
			}
		}
		if (seen != 1)
			printf("  entry %s seen %d times\n", want[w].name, seen);
		CHECK_EQ(seen, 1);
	}
}

/* Names of about 200 bytes so that 200 entries need several getdents calls. */
static void long_name(char *buf, char prefix, int i)
{
	int l = snprintf(buf, NAME_MAX + 1, "%c%03d_", prefix, i);
	memset(buf + l, 'x', 200 - (size_t)l);
	buf[200] = '\0';
}

static int parse_long_name(const char *name, char *prefix)
{
	if (strlen(name) != 200 || (name[0] != 'o' && name[0] != 'n') || name[4] != '_')
		return -1;
	*prefix = name[0];
	return (name[1] - '0') * 100 + (name[2] - '0') * 10 + (name[3] - '0');
}

#define STAB_ORIG 200
#define STAB_NEW 100

struct stab {
	int seen_orig[STAB_ORIG], seen_new[STAB_NEW], removed[STAB_ORIG];
	int created, count, unexpected;
};

/* Account for one entry, then change the directory a little. */
static void stab_entry(struct stab *s, const char *name)
{
	char buf[NAME_MAX + 1], prefix = 0;
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return;
	int i = parse_long_name(name, &prefix);
	if (i < 0 || (prefix == 'o' && i >= STAB_ORIG) || (prefix == 'n' && i >= STAB_NEW)) {
		printf("  unexpected entry %.20s...\n", name);
		s->unexpected++;
		return;
	}
	if (prefix == 'o')
		s->seen_orig[i]++;
	else
		s->seen_new[i]++;
	s->count++;
	if (s->count % 3 == 0 && s->created < STAB_NEW) {
		long_name(buf, 'n', s->created++);
		CHECK(put_str(buf, "") == 0);
	}
	if (s->count % 5 == 0) {
		int victim = (s->count * 37) % STAB_ORIG;
		if (!s->removed[victim]) {
			long_name(buf, 'o', victim);
			CHECK_OK(unlink(buf));
			s->removed[victim] = 1;
		}
	}
}

static void stab_check(const struct stab *s)
{
	CHECK_EQ(s->unexpected, 0);
	int bad = 0;
	for (int i = 0; i < STAB_ORIG; i++) {
		int ok = s->removed[i] ? s->seen_orig[i] <= 1 : s->seen_orig[i] == 1;
		if (!ok && bad++ < 5)
			printf("  original entry o%03d (removed=%d) seen %d times\n", i, s->removed[i],
			       s->seen_orig[i]);
	}
	for (int i = 0; i < STAB_NEW; i++)
		if (s->seen_new[i] > 1 && bad++ < 5)
			printf("  new entry n%03d seen %d times\n", i, s->seen_new[i]);
	CHECK_EQ(bad, 0);
}

static int stab_setup(void)
{
	char buf[NAME_MAX + 1];
	for (int i = 0; i < STAB_ORIG; i++) {
		long_name(buf, 'o', i);
		if (put_str(buf, "") != 0)
			return -1;
	}
	return 0;
}

static void t_readdir_stability(void)
{
	struct stab *s = calloc(1, sizeof *s);
	REQUIRE(s != NULL);
	if (stab_setup() != 0) {
		free(s);
		REQUIRE(!"setup");
	}
	DIR *d = opendir(".");
	CHECK(d != NULL);
	if (d) {
		struct dirent *de;
		for (;;) {
			errno = 0;
			de = readdir(d);
			if (!de)
				break;
			stab_entry(s, de->d_name);
		}
		CHECK_EQ(errno, 0);
		closedir(d);
	}
	stab_check(s);
	free(s);
}

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

/* The same, reading with raw getdents64 and a small buffer (many calls). */
static void t_readdir_stability_small_buf(void)
{
	_Alignas(8) char buf[1024];
	struct stab *s = calloc(1, sizeof *s);
	REQUIRE(s != NULL);
	if (stab_setup() != 0) {
		free(s);
		REQUIRE(!"setup");
	}
	int fd = open(".", O_RDONLY | O_DIRECTORY);
	CHECK(fd >= 0);
	int calls = 0;
	while (fd >= 0) {
		long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
		if (n < 0)
			CHECK_EQ(n, 0);
		if (n <= 0)
			break;
		calls++;
		for (long pos = 0; pos < n;) {
			struct linux_dirent64 *de = (struct linux_dirent64 *)(buf + pos);
			stab_entry(s, de->d_name);
			pos += de->d_reclen;
		}
	}
	xclose(fd);
	CHECK(calls > 20);
	stab_check(s);
	free(s);
}

static void t_readdir_seek(void)
{
	enum { N = 200, MAXE = N + 8 };
	char name[NAME_MAX + 1];
	char(*names)[NAME_MAX + 1] = calloc(MAXE, sizeof *names);
	long *pos = calloc(MAXE + 1, sizeof *pos);
	if (!names || !pos) {
		free(names);
		free(pos);
		REQUIRE(!"out of memory");
	}
	for (int i = 0; i < N; i++) {
		long_name(name, 'o', i);
		CHECK(put_str(name, "") == 0);
	}
	DIR *d = opendir(".");
	CHECK(d != NULL);
	int n = 0;
	while (d && n < MAXE) {
		pos[n] = telldir(d);
		struct dirent *de = readdir(d);
		if (!de)
			break;
		snprintf(names[n], NAME_MAX + 1, "%s", de->d_name);
		n++;
	}
	CHECK_EQ(n, N + 2);
	if (d && n == N + 2) {
		/* seek back to every recorded position, in a scrambled order */
		int bad = 0;
		for (int k = 0; k < n; k++) {
			int j = (k * 73 + 11) % n;
			seekdir(d, pos[j]);
			struct dirent *de = readdir(d);
			if (!de || strcmp(de->d_name, names[j]) != 0) {
				if (bad++ < 3)
					printf("  seekdir to entry %d gave %.12s..., want %.12s...\n", j,
					       de ? de->d_name : "(end)", names[j]);
			}
		}
		CHECK_EQ(bad, 0);
		/* the position after the last entry is the end */
		seekdir(d, pos[n - 1]);
		CHECK(readdir(d) != NULL);
		long end = telldir(d);
		CHECK(readdir(d) == NULL);
		seekdir(d, end);
		CHECK(readdir(d) == NULL);
		rewinddir(d);
		struct dirent *de = readdir(d);
		CHECK(de != NULL && strcmp(de->d_name, names[0]) == 0);
		CHECK_EQ(telldir(d), pos[1]);
	}
	if (d)
		closedir(d);
	free(names);
	free(pos);
}

/* ------------------------------------------------------------------------ */
/* chmod / chown                                                            */
/* ------------------------------------------------------------------------ */

static void t_chmod_bits(void)
{
	static const mode_t fmodes[] = {04755, 02755, 01777, 07777, 0, 0600, 06711, 0444};
	static const mode_t dmodes[] = {01777, 02775, 03777, 0700, 0};
	struct stat s0, s1, st;
	REQUIRE(put_str("f", "x") == 0 && mkdir("d", 0755) == 0 && symlink("f", "l") == 0);
	REQUIRE(stat("f", &s0) == 0);
	tick();
	CHECK_OK(chmod("f", 04755));
	CHECK(stat("f", &s1) == 0);
	CHECK_EQ(s1.st_mode & 07777, 04755);
	CHECK(S_ISREG(s1.st_mode));
	CHECK(TS_GT(s1.st_ctim, s0.st_ctim));
	CHECK(TS_EQ(s1.st_mtim, s0.st_mtim));
	for (size_t i = 0; i < sizeof fmodes / sizeof fmodes[0]; i++) {
		CHECK_OK(chmod("f", fmodes[i]));
		CHECK(stat("f", &st) == 0);
		CHECK_EQ(st.st_mode & 07777, fmodes[i]);
	}
	for (size_t i = 0; i < sizeof dmodes / sizeof dmodes[0]; i++) {
		CHECK_OK(chmod("d", dmodes[i]));
		CHECK(stat("d", &st) == 0);
		CHECK(S_ISDIR(st.st_mode));
		CHECK_EQ(st.st_mode & 07777, dmodes[i]);
	}
	/* fchmod, and chmod through a symlink changes the target only */
	int fd = open("f", O_RDONLY);
	REQUIRE(fd >= 0);
	CHECK_OK(fchmod(fd, 0640));
	CHECK(fstat(fd, &st) == 0);
	CHECK_EQ(st.st_mode & 07777, 0640);
	close(fd);
	CHECK(stat("f", &st) == 0);
	CHECK_EQ(st.st_mode & 07777, 0640);
	struct stat l0;
	REQUIRE(lstat("l", &l0) == 0);
	CHECK_OK(chmod("l", 0604));
	CHECK(stat("f", &st) == 0);
	CHECK_EQ(st.st_mode & 07777, 0604);
	CHECK(lstat("l", &st) == 0);
	CHECK_EQ(st.st_mode, l0.st_mode);
	CHECK_ERR(chmod("nope", 0644), ENOENT);
}

static void t_chown_ids(void)
{
	struct stat s0, s1, st;
	REQUIRE(put_str("f", "x") == 0 && mkdir("d", 0755) == 0);
	REQUIRE(stat("f", &s0) == 0);
	tick();
	CHECK_OK(chown("f", 1234, 1234));
	CHECK(stat("f", &s1) == 0);
	CHECK_EQ(s1.st_uid, 1234);
	CHECK_EQ(s1.st_gid, 1234);
	CHECK(TS_GT(s1.st_ctim, s0.st_ctim));
	CHECK(TS_EQ(s1.st_mtim, s0.st_mtim));
	CHECK_OK(chown("f", (uid_t)-1, 4321));
	CHECK(stat("f", &st) == 0);
	CHECK_EQ(st.st_uid, 1234);
	CHECK_EQ(st.st_gid, 4321);
	CHECK_OK(chown("f", 0, (gid_t)-1));
	CHECK(stat("f", &st) == 0);
	CHECK_EQ(st.st_uid, 0);
	CHECK_EQ(st.st_gid, 4321);
	CHECK_OK(chown("f", (uid_t)-1, (gid_t)-1));
	CHECK(stat("f", &st) == 0);
	CHECK_EQ(st.st_uid, 0);
	CHECK_EQ(st.st_gid, 4321);
	CHECK_OK(chown("f", 0, 0));
	CHECK(stat("f", &st) == 0);
	CHECK_EQ(st.st_uid, 0);
	CHECK_EQ(st.st_gid, 0);
	CHECK_OK(chown("d", 1234, 1234));
	CHECK(stat("d", &st) == 0);
	CHECK_EQ(st.st_uid, 1234);
	CHECK_EQ(st.st_gid, 1234);
	CHECK_EQ(st.st_mode & 07777, 0755);
	CHECK_ERR(chown("nope", 0, 0), ENOENT);
}

static void t_fchown_lchown(void)
{
	struct stat st;
	REQUIRE(put_str("f", "x") == 0 && symlink("f", "l") == 0);
	int fd = open("f", O_RDONLY);
	REQUIRE(fd >= 0);
	CHECK_OK(fchown(fd, 1234, 1234));
	CHECK(fstat(fd, &st) == 0);
	CHECK_EQ(st.st_uid, 1234);
	CHECK_EQ(st.st_gid, 1234);
	CHECK_OK(fchown(fd, (uid_t)-1, 0));
	CHECK(stat("f", &st) == 0);
	CHECK_EQ(st.st_uid, 1234);
	CHECK_EQ(st.st_gid, 0);
	CHECK_OK(fchown(fd, 0, 0));
	close(fd);
	/* lchown changes the link, chown through the link changes the target */
	CHECK_OK(lchown("l", 1234, 4321));
	CHECK(lstat("l", &st) == 0);
	CHECK_EQ(st.st_uid, 1234);
	CHECK_EQ(st.st_gid, 4321);
	CHECK(stat("f", &st) == 0);
	CHECK_EQ(st.st_uid, 0);
	CHECK_EQ(st.st_gid, 0);
	CHECK_OK(chown("l", 99, 98));
	CHECK(stat("f", &st) == 0);
	CHECK_EQ(st.st_uid, 99);
	CHECK_EQ(st.st_gid, 98);
	CHECK(lstat("l", &st) == 0);
	CHECK_EQ(st.st_uid, 1234);
}

/* ------------------------------------------------------------------------ */
/* utimens                                                                  */
/* ------------------------------------------------------------------------ */

static void t_utimens_explicit(void)
{
	static const struct timespec sets[][2] = {
	    {{1000000000, 123456789}, {1234567890, 987654321}},
	    {{1, 1}, {2, 999999999}},
	    {{0, 0}, {0, 0}},
	    {{1700000000, 500}, {1600000000, 0}},
	    {{4102444800, 42}, {4102444800, 999999998}}, /* 2100-01-01, past 2038 */
	};
	struct stat s0, st;
	REQUIRE(put_str("f", "x") == 0 && stat("f", &s0) == 0);
	for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
		tick();
		CHECK_OK(utimensat(AT_FDCWD, "f", sets[i], 0));
		CHECK(stat("f", &st) == 0);
		CHECK_EQ(st.st_atim.tv_sec, sets[i][0].tv_sec);
		CHECK_EQ(st.st_atim.tv_nsec, sets[i][0].tv_nsec);
		CHECK_EQ(st.st_mtim.tv_sec, sets[i][1].tv_sec);
		CHECK_EQ(st.st_mtim.tv_nsec, sets[i][1].tv_nsec);
		CHECK(TS_GT(st.st_ctim, s0.st_ctim)); /* ctime is set to now */
		s0 = st;
	}
	/* directories too */
	REQUIRE(mkdir("d", 0755) == 0);
	CHECK_OK(utimensat(AT_FDCWD, "d", sets[0], 0));
	CHECK(stat("d", &st) == 0);
	CHECK(TS_EQ(st.st_atim, sets[0][0]));
	CHECK(TS_EQ(st.st_mtim, sets[0][1]));
	const struct timespec bad[2] = {{0, 1000000000}, {0, 0}};
	CHECK_ERR(utimensat(AT_FDCWD, "f", bad, 0), EINVAL);
	CHECK_ERR(utimensat(AT_FDCWD, "nope", sets[0], 0), ENOENT);
}

static void t_utimens_now(void)
{
	static const struct timespec old[2] = {{1000000000, 1}, {1000000000, 2}};
	const struct timespec now2[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};
	struct stat st;
	REQUIRE(put_str("f", "x") == 0);
	CHECK_OK(utimensat(AT_FDCWD, "f", old, 0));
	struct timespec lo = now_rt();
	CHECK_OK(utimensat(AT_FDCWD, "f", NULL, 0));
	struct timespec hi = now_rt();
	CHECK(stat("f", &st) == 0);
	CHECK(ts_near(st.st_atim, lo, hi));
	CHECK(ts_near(st.st_mtim, lo, hi));
	CHECK(ts_near(st.st_ctim, lo, hi));

	CHECK_OK(utimensat(AT_FDCWD, "f", old, 0));
	lo = now_rt();
	CHECK_OK(utimensat(AT_FDCWD, "f", now2, 0));
	hi = now_rt();
	CHECK(stat("f", &st) == 0);
	CHECK(ts_near(st.st_atim, lo, hi));
	CHECK(ts_near(st.st_mtim, lo, hi));
}

static void t_utimens_omit(void)
{
	static const struct timespec base[2] = {{1000000000, 111}, {1100000000, 222}};
	struct stat st;
	REQUIRE(put_str("f", "x") == 0);
	CHECK_OK(utimensat(AT_FDCWD, "f", base, 0));

	const struct timespec m_only[2] = {{0, UTIME_OMIT}, {1200000000, 333}};
	CHECK_OK(utimensat(AT_FDCWD, "f", m_only, 0));
	CHECK(stat("f", &st) == 0);
	CHECK(TS_EQ(st.st_atim, base[0]));
	CHECK(TS_EQ(st.st_mtim, m_only[1]));

	const struct timespec a_only[2] = {{1300000000, 444}, {0, UTIME_OMIT}};
	CHECK_OK(utimensat(AT_FDCWD, "f", a_only, 0));
	CHECK(stat("f", &st) == 0);
	CHECK(TS_EQ(st.st_atim, a_only[0]));
	CHECK(TS_EQ(st.st_mtim, m_only[1]));

	struct stat before;
	REQUIRE(stat("f", &before) == 0);
	const struct timespec none[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
	CHECK_OK(utimensat(AT_FDCWD, "f", none, 0));
	CHECK(stat("f", &st) == 0);
	CHECK(TS_EQ(st.st_atim, before.st_atim));
	CHECK(TS_EQ(st.st_mtim, before.st_mtim));

	const struct timespec now_omit[2] = {{0, UTIME_NOW}, {0, UTIME_OMIT}};
	struct timespec lo = now_rt();
	CHECK_OK(utimensat(AT_FDCWD, "f", now_omit, 0));
	struct timespec hi = now_rt();
	CHECK(stat("f", &st) == 0);
	CHECK(ts_near(st.st_atim, lo, hi));
	CHECK(TS_EQ(st.st_mtim, m_only[1]));
}

static void t_futimens(void)
{
	static const struct timespec ts[2] = {{1111111111, 123}, {1222222222, 456789}};
	struct stat st;
	int fd = open("f", O_CREAT | O_RDWR, 0644);
	REQUIRE(fd >= 0);
	CHECK_OK(futimens(fd, ts));
	CHECK(fstat(fd, &st) == 0);
	CHECK(TS_EQ(st.st_atim, ts[0]));
	CHECK(TS_EQ(st.st_mtim, ts[1]));
	CHECK(stat("f", &st) == 0);
	CHECK(TS_EQ(st.st_mtim, ts[1]));
	struct timespec lo = now_rt();
	CHECK_OK(futimens(fd, NULL));
	struct timespec hi = now_rt();
	CHECK(fstat(fd, &st) == 0);
	CHECK(ts_near(st.st_mtim, lo, hi));
	/* explicit times survive a later close */
	CHECK_OK(futimens(fd, ts));
	close(fd);
	CHECK(stat("f", &st) == 0);
	CHECK(TS_EQ(st.st_mtim, ts[1]));
}

static void t_utimens_nofollow(void)
{
	static const struct timespec ft[2] = {{1000000000, 1}, {1000000000, 2}};
	static const struct timespec lt[2] = {{1500000000, 12345}, {1500000001, 67890}};
	struct stat st;
	REQUIRE(put_str("f", "x") == 0 && symlink("f", "l") == 0);
	CHECK_OK(utimensat(AT_FDCWD, "f", ft, 0));
	int r = utimensat(AT_FDCWD, "l", lt, AT_SYMLINK_NOFOLLOW);
	if (r != 0 && (errno == EOPNOTSUPP || errno == ENOSYS))
		SKIP("utimensat(AT_SYMLINK_NOFOLLOW) refused by the platform");
	CHECK_EQ(r, 0);
	CHECK(lstat("l", &st) == 0);
	CHECK(TS_EQ(st.st_atim, lt[0]));
	CHECK(TS_EQ(st.st_mtim, lt[1]));
	CHECK(stat("f", &st) == 0);
	CHECK(TS_EQ(st.st_atim, ft[0]));
	CHECK(TS_EQ(st.st_mtim, ft[1]));
}

/* ------------------------------------------------------------------------ */
/* permissions (as uid/gid 65534 in a child)                                */
/* ------------------------------------------------------------------------ */

static void perm_child(void *arg)
{
	(void)arg;
	struct stat st;
	REQUIRE(setgroups(0, NULL) == 0);
	REQUIRE(setgid(65534) == 0);
	REQUIRE(setuid(65534) == 0);

	CHECK_ERR(open("secret", O_RDONLY), EACCES);
	CHECK_ERR(open("secret", O_WRONLY), EACCES);
	CHECK_ERR(truncate("secret", 0), EACCES);
	CHECK_ERR(access("secret", R_OK), EACCES);
	CHECK_ERR(open("rootdir/new", O_CREAT | O_WRONLY, 0644), EACCES);
	CHECK_ERR(mkdir("rootdir/newdir", 0755), EACCES);
	CHECK_ERR(unlink("rootdir/file"), EACCES);
	CHECK_ERR(rename("rootdir/file", "rootdir/file2"), EACCES);
	CHECK_ERR(open("private/file", O_RDONLY), EACCES); /* no search permission */
	CHECK_ERR(stat("private/file", &st), EACCES);
	int fd = open("rootdir/file", O_RDONLY); /* 0644 in 0755: readable */
	CHECK(fd >= 0);
	xclose(fd);
	CHECK_ERR(open("rootdir/file", O_WRONLY), EACCES);

	fd = open("public", O_RDWR); /* 0666 root-owned: writable */
	CHECK(fd >= 0);
	if (fd >= 0) {
		CHECK_EQ(write(fd, "hi", 2), 2);
		close(fd);
	}
	CHECK_OK(access("public", W_OK));
	CHECK_ERR(chmod("public", 0777), EPERM);
	CHECK_ERR(chown("public", 65534, 65534), EPERM);
	CHECK_OK(utimensat(AT_FDCWD, "public", NULL, 0)); /* write access suffices for "now" */
	const struct timespec ts[2] = {{1, 0}, {1, 0}};
	CHECK_ERR(utimensat(AT_FDCWD, "public", ts, 0), EPERM);

	fd = open("world/new", O_CREAT | O_EXCL | O_WRONLY, 0640); /* 0777 dir */
	CHECK(fd >= 0);
	if (fd >= 0) {
		CHECK(fstat(fd, &st) == 0);
		CHECK_EQ(st.st_uid, 65534);
		CHECK_EQ(st.st_gid, 65534);
		CHECK_EQ(st.st_mode & 07777, 0640);
		CHECK_EQ(write(fd, "mine", 4), 4);
		close(fd);
	}
	CHECK_OK(mkdir("world/sub", 0700));
	CHECK_OK(rmdir("world/sub"));
	/* the sticky bit stops removing other users' files */
	CHECK_ERR2(unlink("sticky/rootfile"), EPERM, EACCES);
	CHECK_ERR2(rename("sticky/rootfile", "sticky/x"), EPERM, EACCES);
	CHECK(put_str("sticky/mine", "m") == 0);
	CHECK_OK(unlink("sticky/mine"));
}

static void t_permissions(void)
{
	struct stat st;
	if (geteuid() != 0)
		SKIP("needs root");
	REQUIRE(put_file("secret", "s", 1, 0600) == 0);
	REQUIRE(mkdir("rootdir", 0755) == 0 && put_file("rootdir/file", "r", 1, 0644) == 0);
	REQUIRE(mkdir("private", 0700) == 0 && put_file("private/file", "p", 1, 0644) == 0);
	REQUIRE(put_file("public", "", 0, 0666) == 0);
	REQUIRE(mkdir("world", 0777) == 0);
	REQUIRE(mkdir("sticky", 01777) == 0 && put_file("sticky/rootfile", "r", 1, 0666) == 0);
	REQUIRE(chmod(".", 0755) == 0);
	run_child(perm_child, NULL);
	CHECK(FILE_IS("public", "hi"));
	CHECK(FILE_IS("secret", "s"));
	CHECK(FILE_IS("world/new", "mine"));
	CHECK(stat("world/new", &st) == 0);
	CHECK_EQ(st.st_uid, 65534);
	CHECK(FILE_IS("rootdir/file", "r"));
	CHECK(FILE_IS("sticky/rootfile", "r"));
}

/* ------------------------------------------------------------------------ */
/* xattr                                                                    */
/* ------------------------------------------------------------------------ */

/* How often does name occur in a listxattr result? */
static int xlist_count(const char *list, ssize_t len, const char *name)
{
	int n = 0;
	for (ssize_t p = 0; p < len; p += (ssize_t)strlen(list + p) + 1)
		if (strcmp(list + p, name) == 0)
			n++;
	return n;
}

static void t_xattr_basic(void)
{
	char buf[256], list[1024];
	ssize_t n;
	REQUIRE(put_str("f", "x") == 0);
	CHECK_OK(setxattr("f", "user.foo", "bar", 3, 0));
	CHECK_EQ(getxattr("f", "user.foo", buf, sizeof buf), 3);
	CHECK(memcmp(buf, "bar", 3) == 0);
	CHECK_OK(setxattr("f", "user.two", "2", 1, 0));
	n = listxattr("f", list, sizeof list);
	CHECK(n > 0);
	CHECK_EQ(xlist_count(list, n, "user.foo"), 1);
	CHECK_EQ(xlist_count(list, n, "user.two"), 1);
	CHECK_OK(removexattr("f", "user.foo"));
	CHECK_ERR(getxattr("f", "user.foo", buf, sizeof buf), ENODATA);
	CHECK_ERR(removexattr("f", "user.foo"), ENODATA);
	n = listxattr("f", list, sizeof list);
	CHECK(n > 0);
	CHECK_EQ(xlist_count(list, n, "user.foo"), 0);
	CHECK_EQ(xlist_count(list, n, "user.two"), 1);
	/* replacing with a shorter value */
	CHECK_OK(setxattr("f", "user.two", "a longer value", 14, 0));
	CHECK_OK(setxattr("f", "user.two", "s", 1, 0));
	CHECK_EQ(getxattr("f", "user.two", buf, sizeof buf), 1);
	CHECK_EQ(buf[0], 's');

	/* through a descriptor */
	int fd = open("f", O_RDONLY);
	REQUIRE(fd >= 0);
	CHECK_OK(fsetxattr(fd, "user.fd", "via fd", 6, 0));
	CHECK_EQ(fgetxattr(fd, "user.fd", buf, sizeof buf), 6);
	CHECK(memcmp(buf, "via fd", 6) == 0);
	n = flistxattr(fd, list, sizeof list);
	CHECK_EQ(xlist_count(list, n, "user.fd"), 1);
	CHECK_OK(fremovexattr(fd, "user.fd"));
	CHECK_ERR(fgetxattr(fd, "user.fd", buf, sizeof buf), ENODATA);
	close(fd);

	/* xattrs move with the inode */
	CHECK_OK(rename("f", "g"));
	CHECK_EQ(getxattr("g", "user.two", buf, sizeof buf), 1);
	CHECK_OK(link("g", "h"));
	CHECK_EQ(getxattr("h", "user.two", buf, sizeof buf), 1);
}

static void t_xattr_flags(void)
{
	char buf[16];
	REQUIRE(put_str("f", "x") == 0);
	CHECK_OK(setxattr("f", "user.a", "1", 1, 0));
	CHECK_ERR(setxattr("f", "user.a", "2", 1, XATTR_CREATE), EEXIST);
	CHECK_EQ(getxattr("f", "user.a", buf, sizeof buf), 1);
	CHECK_EQ(buf[0], '1');
	CHECK_ERR(setxattr("f", "user.b", "x", 1, XATTR_REPLACE), ENODATA);
	CHECK_ERR(getxattr("f", "user.b", buf, sizeof buf), ENODATA);
	CHECK_OK(setxattr("f", "user.a", "22", 2, XATTR_REPLACE));
	CHECK_EQ(getxattr("f", "user.a", buf, sizeof buf), 2);
	CHECK(memcmp(buf, "22", 2) == 0);
	CHECK_OK(setxattr("f", "user.b", "b", 1, XATTR_CREATE));
	CHECK_EQ(getxattr("f", "user.b", buf, sizeof buf), 1);
	CHECK_ERR(getxattr("f", "user.missing", buf, sizeof buf), ENODATA);
	CHECK_ERR(getxattr("f", "user.missing", NULL, 0), ENODATA);
}

static void t_xattr_sizes(void)
{
	unsigned char val[2000], buf[2048];
	char list[1024];
	REQUIRE(put_str("f", "x") == 0 && put_str("g", "x") == 0 && put_str("h", "x") == 0);
	fill_pat(val, 100, 5, 0);
	CHECK_OK(setxattr("f", "user.v", val, 100, 0));
	CHECK_EQ(getxattr("f", "user.v", NULL, 0), 100);
	CHECK_ERR(getxattr("f", "user.v", buf, 10), ERANGE);
	CHECK_EQ(getxattr("f", "user.v", buf, 100), 100);
	CHECK(memcmp(buf, val, 100) == 0);
	ssize_t need = listxattr("f", NULL, 0);
	CHECK(need >= (ssize_t)sizeof "user.v");
	CHECK_ERR(listxattr("f", list, 1), ERANGE);
	CHECK_EQ(listxattr("f", list, sizeof list), need);

	/* empty value */
	CHECK_OK(setxattr("g", "user.empty", "", 0, 0));
	CHECK_EQ(getxattr("g", "user.empty", NULL, 0), 0);
	CHECK_EQ(getxattr("g", "user.empty", buf, sizeof buf), 0);
	ssize_t n = listxattr("g", list, sizeof list);
	CHECK_EQ(xlist_count(list, n, "user.empty"), 1);

	/* binary value with NULs, and a larger one */
	for (int i = 0; i < 256; i++)
		val[i] = (unsigned char)i;
	CHECK_OK(setxattr("g", "user.bin", val, 256, 0));
	CHECK_EQ(getxattr("g", "user.bin", NULL, 0), 256);
	memset(buf, 0xee, sizeof buf);
	CHECK_EQ(getxattr("g", "user.bin", buf, sizeof buf), 256);
	CHECK(memcmp(buf, val, 256) == 0);
	fill_pat(val, sizeof val, 6, 0);
	CHECK_OK(setxattr("h", "user.big", val, sizeof val, 0));
	CHECK_EQ(getxattr("h", "user.big", buf, sizeof buf), (long long)sizeof val);
	CHECK(memcmp(buf, val, sizeof val) == 0);
}

static void t_xattr_dir(void)
{
	char buf[64], list[1024];
	REQUIRE(mkdir("d", 0755) == 0);
	CHECK_OK(setxattr("d", "user.d", "dirval", 6, 0));
	CHECK_EQ(getxattr("d", "user.d", buf, sizeof buf), 6);
	CHECK(memcmp(buf, "dirval", 6) == 0);
	ssize_t n = listxattr("d", list, sizeof list);
	CHECK_EQ(xlist_count(list, n, "user.d"), 1);
	int fd = open("d", O_RDONLY | O_DIRECTORY);
	CHECK(fd >= 0);
	CHECK_EQ(fgetxattr(fd, "user.d", buf, sizeof buf), 6);
	xclose(fd);
	CHECK_OK(removexattr("d", "user.d"));
	CHECK_ERR(getxattr("d", "user.d", buf, sizeof buf), ENODATA);
}

static void t_xattr_symlink(void)
{
	char buf[64], list[1024];
	REQUIRE(put_str("f", "x") == 0 && symlink("f", "l") == 0);
	CHECK_OK(setxattr("f", "user.t", "target", 6, 0));
	/* getxattr follows the link */
	CHECK_EQ(getxattr("l", "user.t", buf, sizeof buf), 6);
	CHECK(memcmp(buf, "target", 6) == 0);
	/* the link itself has no user.t; Linux refuses user.* on symlinks */
	CHECK_ERR2(lgetxattr("l", "user.t", buf, sizeof buf), ENODATA, EPERM);
	errno = 0;
	int r = lsetxattr("l", "user.x", "v", 1, 0);
	if (r == 0) {
		CHECK_EQ(lgetxattr("l", "user.x", buf, sizeof buf), 1);
		CHECK_ERR(getxattr("f", "user.x", buf, sizeof buf), ENODATA);
	} else {
		CHECK_EQ(errno, EPERM);
	}
	ssize_t n = llistxattr("l", list, sizeof list);
	CHECK(n >= 0);
	CHECK_EQ(xlist_count(list, n, "user.t"), 0);
}

/* ------------------------------------------------------------------------ */
/* locks                                                                    */
/* ------------------------------------------------------------------------ */

static void flock_child(void *arg)
{
	(void)arg;
	int fd = open("f", O_RDWR);
	REQUIRE(fd >= 0);
	CHECK_ERR(flock(fd, LOCK_EX | LOCK_NB), EWOULDBLOCK);
	CHECK_ERR(flock(fd, LOCK_SH | LOCK_NB), EWOULDBLOCK);
	close(fd);
}

static void t_flock(void)
{
	REQUIRE(put_str("f", "x") == 0);
	int fd1 = open("f", O_RDWR), fd2 = open("f", O_RDWR);
	REQUIRE(fd1 >= 0 && fd2 >= 0);
	CHECK_OK(flock(fd1, LOCK_EX));
	CHECK_ERR(flock(fd2, LOCK_EX | LOCK_NB), EWOULDBLOCK);
	CHECK_ERR(flock(fd2, LOCK_SH | LOCK_NB), EWOULDBLOCK);
	int fd3 = dup(fd1); /* same open file description: same lock */
	CHECK(fd3 >= 0);
	CHECK_OK(flock(fd3, LOCK_EX | LOCK_NB));
	run_child(flock_child, NULL);
	CHECK_OK(flock(fd1, LOCK_UN));
	CHECK_OK(flock(fd2, LOCK_EX | LOCK_NB));
	CHECK_ERR(flock(fd1, LOCK_SH | LOCK_NB), EWOULDBLOCK);
	CHECK_OK(flock(fd2, LOCK_UN));
	/* shared locks coexist and keep exclusive ones out */
	CHECK_OK(flock(fd1, LOCK_SH | LOCK_NB));
	CHECK_OK(flock(fd2, LOCK_SH | LOCK_NB));
	int fd4 = open("f", O_RDWR);
	REQUIRE(fd4 >= 0);
	CHECK_ERR(flock(fd4, LOCK_EX | LOCK_NB), EWOULDBLOCK);
	/* closing the last descriptor of a description releases its lock */
	close(fd1);
	xclose(fd3);
	close(fd2);
	CHECK_OK(flock(fd4, LOCK_EX | LOCK_NB));
	close(fd4);
}

static int lk(int fd, int cmd, short type, off_t start, off_t len)
{
	struct flock fl;
	memset(&fl, 0, sizeof fl);
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = start;
	fl.l_len = len;
	return fcntl(fd, cmd, &fl);
}

static int getlk(int fd, short type, off_t start, off_t len, struct flock *fl)
{
	memset(fl, 0, sizeof *fl);
	fl->l_type = type;
	fl->l_whence = SEEK_SET;
	fl->l_start = start;
	fl->l_len = len;
	return fcntl(fd, F_GETLK, fl);
}

static void lock_probe_child(void *arg)
{
	pid_t holder = *(pid_t *)arg;
	struct flock g;
	int fd = open("f", O_RDWR);
	REQUIRE(fd >= 0);
	CHECK_ERR2(lk(fd, F_SETLK, F_WRLCK, 50, 10), EAGAIN, EACCES);
	CHECK_ERR2(lk(fd, F_SETLK, F_RDLCK, 99, 1), EAGAIN, EACCES);
	CHECK_ERR2(lk(fd, F_SETLK, F_WRLCK, 0, 0), EAGAIN, EACCES);
	CHECK_OK(getlk(fd, F_WRLCK, 0, 0, &g));
	CHECK_EQ(g.l_type, F_WRLCK);
	CHECK_EQ(g.l_pid, holder);
	CHECK_EQ(g.l_whence, SEEK_SET);
	CHECK_EQ(g.l_start, 0);
	CHECK_EQ(g.l_len, 100);
	CHECK_OK(getlk(fd, F_WRLCK, 200, 10, &g));
	CHECK_EQ(g.l_type, F_UNLCK);
	CHECK_OK(lk(fd, F_SETLK, F_WRLCK, 100, 50)); /* adjacent, no overlap */
	CHECK_OK(lk(fd, F_SETLK, F_UNLCK, 100, 50));
	close(fd);
}

static void lock_take_child(void *arg)
{
	int keep = arg != NULL; /* keep: exit while holding the lock */
	int fd = open("f", O_RDWR);
	REQUIRE(fd >= 0);
	CHECK_OK(lk(fd, F_SETLK, F_WRLCK, 0, 100));
	if (!keep) {
		CHECK_OK(lk(fd, F_SETLK, F_UNLCK, 0, 100));
		close(fd);
	}
}

static void t_fcntl_lock(void)
{
	unsigned char data[1000];
	struct flock g;
	memset(data, 'd', sizeof data);
	REQUIRE(put_file("f", data, sizeof data, 0644) == 0);
	int fd = open("f", O_RDWR);
	REQUIRE(fd >= 0);
	CHECK_OK(lk(fd, F_SETLK, F_WRLCK, 0, 100));
	CHECK_OK(getlk(fd, F_WRLCK, 0, 0, &g)); /* own locks never conflict */
	CHECK_EQ(g.l_type, F_UNLCK);
	pid_t me = getpid();
	run_child(lock_probe_child, &me);
	CHECK_OK(lk(fd, F_SETLK, F_UNLCK, 0, 100));
	run_child(lock_take_child, NULL); /* released: the child gets it */
	run_child(lock_take_child, &me);  /* ... and a lock dies with its process */
	CHECK_OK(lk(fd, F_SETLK, F_WRLCK, 0, 100));
	CHECK_OK(lk(fd, F_SETLK, F_UNLCK, 0, 100));

	/* the other way round: a child holds [10,30), the parent probes */
	int up[2], down[2];
	REQUIRE(pipe(up) == 0);
	if (pipe(down) != 0) {
		close(up[0]);
		close(up[1]);
		REQUIRE(!"pipe");
	}
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		char c = 'E';
		close(up[0]);
		close(down[1]);
		alarm(30);
		int cfd = open("f", O_RDWR);
		if (cfd >= 0 && lk(cfd, F_SETLK, F_WRLCK, 10, 20) == 0)
			c = 'L';
		if (write(up[1], &c, 1) != 1 || read(down[0], &c, 1) != 1)
			_exit(2);
		c = lk(cfd, F_SETLK, F_UNLCK, 10, 20) == 0 ? 'U' : 'E';
		if (write(up[1], &c, 1) != 1 || read(down[0], &c, 1) != 1)
			_exit(2);
		_exit(0);
	}
	close(up[1]);
	close(down[0]);
	CHECK(pid > 0);
	if (pid > 0) {
		char c = 0;
		CHECK(read(up[0], &c, 1) == 1 && c == 'L');
		CHECK_OK(getlk(fd, F_RDLCK, 0, 0, &g));
		CHECK_EQ(g.l_type, F_WRLCK);
		CHECK_EQ(g.l_pid, pid);
		CHECK_EQ(g.l_start, 10);
		CHECK_EQ(g.l_len, 20);
		CHECK_ERR2(lk(fd, F_SETLK, F_RDLCK, 29, 1), EAGAIN, EACCES);
		CHECK_OK(lk(fd, F_SETLK, F_WRLCK, 30, 1));
		CHECK(write(down[1], "g", 1) == 1);
		CHECK(read(up[0], &c, 1) == 1 && c == 'U');
		CHECK_OK(lk(fd, F_SETLK, F_WRLCK, 0, 100)); /* release worked */
		CHECK(write(down[1], "g", 1) == 1);
		int status = 0;
		CHECK(waitpid(pid, &status, 0) == pid);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	close(up[0]);
	close(down[1]);
	close(fd);
}

static void t_fcntl_lock_wait(void)
{
	REQUIRE(put_str("f", "0123456789") == 0);
	int fd = open("f", O_RDWR);
	REQUIRE(fd >= 0);
	CHECK_OK(lk(fd, F_SETLK, F_WRLCK, 0, 0));
	int up[2];
	REQUIRE(pipe(up) == 0);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		close(up[0]);
		alarm(20);
		int cfd = open("f", O_RDWR);
		char c = cfd >= 0 && lk(cfd, F_SETLKW, F_WRLCK, 0, 0) == 0 ? 'G' : 'E';
		_exit(write(up[1], &c, 1) == 1 ? 0 : 2);
	}
	close(up[1]);
	CHECK(pid > 0);
	if (pid > 0) {
		struct pollfd p = {.fd = up[0], .events = POLLIN};
		CHECK_EQ(poll(&p, 1, 200), 0); /* the child is blocked */
		CHECK_OK(lk(fd, F_SETLK, F_UNLCK, 0, 0));
		CHECK_EQ(poll(&p, 1, 10000), 1);
		char c = 0;
		CHECK(read(up[0], &c, 1) == 1 && c == 'G');
		int status = 0;
		CHECK(waitpid(pid, &status, 0) == pid);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	close(up[0]);
	close(fd);
}

static void t_fcntl_lock_close(void)
{
	REQUIRE(put_str("f", "0123456789") == 0);
	int fd1 = open("f", O_RDWR);
	REQUIRE(fd1 >= 0);
	CHECK_OK(lk(fd1, F_SETLK, F_WRLCK, 0, 100));
	/* closing any descriptor of the file drops the process's locks on it */
	int fd2 = open("f", O_RDONLY);
	CHECK(fd2 >= 0);
	xclose(fd2);
	run_child(lock_take_child, NULL);
	close(fd1);
}

/* ------------------------------------------------------------------------ */
/* mmap                                                                     */
/* ------------------------------------------------------------------------ */

static void t_mmap_shared_write(void)
{
	size_t len = 3 * (size_t)g_pagesize + 100;
	unsigned char *want = malloc(len), *buf = malloc(len + 1);
	if (!want || !buf) {
		free(want);
		free(buf);
		REQUIRE(!"out of memory");
	}
	fill_pat(want, len, 7, 0);
	int fd = open("f", O_CREAT | O_RDWR, 0644);
	CHECK(fd >= 0);
	if (fd >= 0) {
		CHECK_OK(ftruncate(fd, (off_t)len));
		unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		CHECK(p != MAP_FAILED);
		if (p != MAP_FAILED) {
			memcpy(p, want, len);
			CHECK_OK(msync(p, len, MS_SYNC));
			CHECK_OK(munmap(p, len));
		}
		CHECK_OK(close(fd));
		fd = open("f", O_RDONLY);
		CHECK(fd >= 0);
		CHECK_EQ(read_full(fd, buf, len + 1), (long long)len);
		CHECK(same_bytes(buf, want, len, 0));
		struct stat st;
		CHECK(fstat(fd, &st) == 0);
		CHECK_EQ(st.st_size, (long long)len);
		xclose(fd);
	}
	free(want);
	free(buf);
}

static void t_mmap_read_after_write(void)
{
	size_t len = 5 * (size_t)g_pagesize + 7;
	unsigned char *want = malloc(len);
	REQUIRE(want != NULL);
	fill_pat(want, len, 8, 0);
	int fd = open("f", O_CREAT | O_RDWR, 0644);
	CHECK(fd >= 0);
	if (fd >= 0) {
		CHECK_EQ(write_full(fd, want, len), (long long)len);
		unsigned char *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
		CHECK(p != MAP_FAILED);
		if (p != MAP_FAILED) {
			CHECK(same_bytes(p, want, len, 0));
			CHECK_OK(munmap(p, len));
		}
		close(fd);
	}
	free(want);
}

/* Linux has one page cache: write() shows in a live mapping and stores to a
 * MAP_SHARED mapping show in read() even before msync. */
static void t_mmap_coherence(void)
{
	size_t len = 2 * (size_t)g_pagesize;
	unsigned char buf[8];
	int fd = open("f", O_CREAT | O_RDWR, 0644);
	REQUIRE(fd >= 0);
	CHECK_OK(ftruncate(fd, (off_t)len));
	unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(p != MAP_FAILED);
	if (p != MAP_FAILED) {
		CHECK_EQ(pwrite(fd, "ZZZZ", 4, g_pagesize + 1), 4);
		CHECK(memcmp(p + g_pagesize + 1, "ZZZZ", 4) == 0);
		memcpy(p + 10, "mapped", 6);
		CHECK_EQ(pread(fd, buf, 6, 10), 6);
		CHECK(memcmp(buf, "mapped", 6) == 0);
		CHECK_OK(munmap(p, len));
	}
	close(fd);
}

static void t_mmap_page_boundary(void)
{
	long ps = g_pagesize;
	size_t flen = (size_t)ps + 100, mlen = 2 * (size_t)ps;
	unsigned char buf[8];
	struct stat st;
	int fd = open("f", O_CREAT | O_RDWR, 0644);
	REQUIRE(fd >= 0);
	CHECK_OK(ftruncate(fd, (off_t)flen));
	unsigned char *p = mmap(NULL, mlen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(p != MAP_FAILED);
	if (p != MAP_FAILED) {
		memcpy(p + ps - 4, "ABCDEFGH", 8); /* straddles the first page boundary */
		/* the part of the last page beyond EOF reads as zeros */
		int zero = 1;
		for (size_t i = flen; i < mlen; i++)
			zero &= p[i] == 0;
		CHECK(zero);
		CHECK_OK(msync(p, mlen, MS_SYNC));
		CHECK_OK(munmap(p, mlen));
	}
	CHECK_EQ(pread(fd, buf, 8, ps - 4), 8);
	CHECK(memcmp(buf, "ABCDEFGH", 8) == 0);
	CHECK(fstat(fd, &st) == 0);
	CHECK_EQ(st.st_size, (long long)flen);
	/* a mapping at a page-aligned offset */
	unsigned char *q = mmap(NULL, (size_t)ps, PROT_READ, MAP_SHARED, fd, ps);
	CHECK(q != MAP_FAILED);
	if (q != MAP_FAILED) {
		CHECK(memcmp(q, "EFGH", 4) == 0);
		CHECK_OK(munmap(q, (size_t)ps));
	}
	close(fd);
}

static void t_mmap_16mib(void)
{
	const size_t len = 16 * MiB;
	unsigned char *want = malloc(len), *got = malloc(len);
	if (!want || !got) {
		free(want);
		free(got);
		REQUIRE(!"out of memory");
	}
	fill_pat(want, len, 9, 0);
	int fd = open("f", O_CREAT | O_RDWR, 0644);
	CHECK(fd >= 0);
	if (fd >= 0) {
		for (size_t off = 0; off < len; off += 1 * MiB)
			CHECK_EQ(write_full(fd, want + off, 1 * MiB), 1 * MiB);
		close(fd);
	}
	fd = open("f", O_RDONLY);
	CHECK(fd >= 0);
	if (fd >= 0) {
		CHECK_EQ(read_full(fd, got, len), (long long)len);
		uint64_t sum_read = fnv1a(got, len, FNV_INIT);
		CHECK(sum_read == fnv1a(want, len, FNV_INIT));
		unsigned char *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
		CHECK(p != MAP_FAILED);
		if (p != MAP_FAILED) {
			CHECK(fnv1a(p, len, FNV_INIT) == sum_read);
			CHECK(same_bytes(p, got, len, 0));
			CHECK_OK(munmap(p, len));
		}
		close(fd);
	}
	free(want);
	free(got);
}

/* ------------------------------------------------------------------------ */
/* mknod / mkfifo                                                           */
/* ------------------------------------------------------------------------ */

static void t_mkfifo(void)
{
	struct stat st;
	char buf[8];
	CHECK_OK(mkfifo("p", 0640));
	CHECK(lstat("p", &st) == 0);
	CHECK(S_ISFIFO(st.st_mode));
	CHECK_EQ(st.st_mode & 07777, 0640);
	CHECK_EQ(st.st_size, 0);
	CHECK_ERR(mkfifo("p", 0640), EEXIST);
	int fd = open("p", O_RDWR); /* O_RDWR on a FIFO: Linux opens without blocking */
	REQUIRE(fd >= 0);
	CHECK_EQ(write(fd, "hello", 5), 5);
	CHECK_EQ(read(fd, buf, 5), 5);
	CHECK(memcmp(buf, "hello", 5) == 0);
	CHECK_ERR(lseek(fd, 0, SEEK_SET), ESPIPE);
	close(fd);
	CHECK(lstat("p", &st) == 0);
	CHECK_EQ(st.st_size, 0);
}

static void t_mknod(void)
{
	struct stat st;
	if (geteuid() != 0)
		SKIP("needs root");
	CHECK_OK(mknod("c", S_IFCHR | 0644, makedev(1, 3)));
	CHECK(lstat("c", &st) == 0);
	CHECK(S_ISCHR(st.st_mode));
	CHECK_EQ(st.st_mode & 07777, 0644);
	CHECK_EQ(st.st_rdev, makedev(1, 3));
	CHECK_EQ(major(st.st_rdev), 1);
	CHECK_EQ(minor(st.st_rdev), 3);
	/* a large minor number (needs the 32-bit dev_t encoding) */
	CHECK_OK(mknod("big", S_IFCHR | 0600, makedev(259, 70000)));
	CHECK(lstat("big", &st) == 0);
	CHECK_EQ(major(st.st_rdev), 259);
	CHECK_EQ(minor(st.st_rdev), 70000);
	CHECK_OK(mknod("b", S_IFBLK | 0600, makedev(7, 0)));
	CHECK(lstat("b", &st) == 0);
	CHECK(S_ISBLK(st.st_mode));
	CHECK_EQ(st.st_rdev, makedev(7, 0));
	CHECK_OK(mknod("r", S_IFREG | 0600, 0));
	CHECK(lstat("r", &st) == 0);
	CHECK(S_ISREG(st.st_mode));
	CHECK_EQ(st.st_mode & 07777, 0600);
	CHECK_EQ(st.st_size, 0);
	CHECK_OK(mknod("q", S_IFIFO | 0604, 0));
	CHECK(lstat("q", &st) == 0);
	CHECK(S_ISFIFO(st.st_mode));
	CHECK_EQ(st.st_mode & 07777, 0604);
	CHECK_ERR(mknod("c", S_IFCHR | 0644, makedev(1, 3)), EEXIST);
}

/* ------------------------------------------------------------------------ */
/* statvfs / fsync                                                          */
/* ------------------------------------------------------------------------ */

static void t_statvfs(void)
{
	struct statvfs sv, fsv;
	CHECK_OK(statvfs(".", &sv));
	CHECK(sv.f_bsize > 0);
	CHECK(sv.f_frsize > 0);
	CHECK(sv.f_namemax >= 255);
	CHECK(sv.f_blocks >= sv.f_bfree);
	CHECK(sv.f_bfree >= sv.f_bavail);
	int fd = open(".", O_RDONLY | O_DIRECTORY);
	REQUIRE(fd >= 0);
	CHECK_OK(fstatvfs(fd, &fsv));
	CHECK_EQ(fsv.f_namemax, sv.f_namemax);
	CHECK_EQ(fsv.f_bsize, sv.f_bsize);
	close(fd);
}

static void t_fsync(void)
{
	int fd = open("f", O_CREAT | O_RDWR, 0644);
	REQUIRE(fd >= 0);
	CHECK_EQ(write(fd, "data", 4), 4);
	CHECK_OK(fsync(fd));
	CHECK_EQ(pwrite(fd, "more", 4, 4096), 4);
	CHECK_OK(fdatasync(fd));
	close(fd);
	fd = open("f", O_RDONLY);
	REQUIRE(fd >= 0);
	CHECK_OK(fsync(fd));
	CHECK_OK(fdatasync(fd));
	close(fd);
	REQUIRE(mkdir("d", 0755) == 0);
	fd = open("d", O_RDONLY | O_DIRECTORY);
	REQUIRE(fd >= 0);
	CHECK_OK(fsync(fd));
	CHECK_OK(fdatasync(fd));
	CHECK_OK(syncfs(fd));
	close(fd);
	fd = open(".", O_RDONLY | O_DIRECTORY);
	REQUIRE(fd >= 0);
	CHECK_OK(fsync(fd));
	close(fd);
}

/* ------------------------------------------------------------------------ */
/* misc                                                                     */
/* ------------------------------------------------------------------------ */

static void t_lseek(void)
{
	unsigned char data[1000];
	char buf[32];
	struct stat st;
	fill_pat(data, sizeof data, 10, 0);
	REQUIRE(put_file("f", data, sizeof data, 0644) == 0);
	int fd = open("f", O_RDWR);
	REQUIRE(fd >= 0);
	CHECK_EQ(lseek(fd, 0, SEEK_END), 1000);
	CHECK_EQ(lseek(fd, -10, SEEK_END), 990);
	CHECK_EQ(read(fd, buf, 20), 10);
	CHECK(memcmp(buf, data + 990, 10) == 0);
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 1000);
	CHECK_EQ(lseek(fd, -500, SEEK_CUR), 500);
	CHECK_ERR(lseek(fd, -1, SEEK_SET), EINVAL);
	CHECK_ERR(lseek(fd, -2000, SEEK_END), EINVAL);
	CHECK_ERR(lseek(fd, 0, 12345), EINVAL);
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 500); /* failed seeks leave the offset */
	/* seeking past EOF is fine; writing there makes a hole */
	CHECK_EQ(lseek(fd, 5000, SEEK_SET), 5000);
	CHECK(fstat(fd, &st) == 0);
	CHECK_EQ(st.st_size, 1000);
	CHECK_EQ(write(fd, "x", 1), 1);
	CHECK(fstat(fd, &st) == 0);
	CHECK_EQ(st.st_size, 5001);
	CHECK_EQ(lseek(fd, 0, SEEK_END), 5001);
	CHECK(range_is_zero(fd, 1000, 4000));
	close(fd);
}

static void t_stat_hardlinks(void)
{
	struct stat a, b;
	REQUIRE(put_str("a", "some data") == 0 && link("a", "b") == 0);
	REQUIRE(stat("a", &a) == 0 && stat("b", &b) == 0);
	CHECK_EQ(a.st_dev, b.st_dev);
	CHECK_EQ(a.st_ino, b.st_ino);
	CHECK_EQ(a.st_mode, b.st_mode);
	CHECK_EQ(a.st_nlink, 2);
	CHECK_EQ(b.st_nlink, 2);
	CHECK_EQ(a.st_uid, b.st_uid);
	CHECK_EQ(a.st_gid, b.st_gid);
	CHECK_EQ(a.st_rdev, b.st_rdev);
	CHECK_EQ(a.st_size, b.st_size);
	CHECK_EQ(a.st_blksize, b.st_blksize);
	CHECK_EQ(a.st_blocks, b.st_blocks);
	CHECK(TS_EQ(a.st_atim, b.st_atim));
	CHECK(TS_EQ(a.st_mtim, b.st_mtim));
	CHECK(TS_EQ(a.st_ctim, b.st_ctim));
	/* fstat through either name agrees too */
	int fd = open("b", O_RDONLY);
	REQUIRE(fd >= 0);
	CHECK(fstat(fd, &b) == 0);
	CHECK_EQ(a.st_ino, b.st_ino);
	CHECK_EQ(a.st_size, b.st_size);
	CHECK(TS_EQ(a.st_mtim, b.st_mtim));
	close(fd);
}

static void t_name_max(void)
{
	char n255[256], m255[256], n256[257], path[300];
	struct stat st;
	memset(n255, 'a', 255);
	n255[255] = '\0';
	memset(m255, 'b', 255);
	m255[255] = '\0';
	memset(n256, 'c', 256);
	n256[256] = '\0';

	int fd = open(n255, O_CREAT | O_EXCL | O_WRONLY, 0644);
	CHECK(fd >= 0);
	xclose(fd);
	CHECK(stat(n255, &st) == 0 && S_ISREG(st.st_mode));
	struct dent ents[8];
	int n = list_dir(".", ents, 8);
	CHECK_EQ(n, 3);
	int found = 0;
	for (int i = 0; i < n && i < 8; i++)
		found += strcmp(ents[i].name, n255) == 0;
	CHECK_EQ(found, 1);
	CHECK_OK(rename(n255, m255));
	CHECK(stat(m255, &st) == 0);
	CHECK_OK(mkdir(n255, 0755));
	snprintf(path, sizeof path, "%s/x", n255);
	CHECK(put_str(path, "deep") == 0);
	CHECK(FILE_IS(path, "deep"));
	CHECK_OK(unlink(path));
	CHECK_OK(rmdir(n255));
	CHECK_OK(symlink(m255, n255));
	CHECK(stat(n255, &st) == 0 && S_ISREG(st.st_mode));

	CHECK_ERR(open(n256, O_CREAT | O_WRONLY, 0644), ENAMETOOLONG);
	CHECK_ERR(stat(n256, &st), ENAMETOOLONG);
	CHECK_ERR(mkdir(n256, 0755), ENAMETOOLONG);
	CHECK_ERR(rename(m255, n256), ENAMETOOLONG);
	CHECK_ERR(link(m255, n256), ENAMETOOLONG);
	CHECK_ERR(symlink("x", n256), ENAMETOOLONG);
	CHECK_ERR(mknod(n256, S_IFIFO | 0644, 0), ENAMETOOLONG);
	snprintf(path, sizeof path, "%s/x", n256);
	CHECK_ERR(stat(path, &st), ENAMETOOLONG);
	CHECK(stat(m255, &st) == 0);

	/* a path longer than PATH_MAX */
	char *longpath = malloc(PATH_MAX + 16);
	REQUIRE(longpath != NULL);
	for (int i = 0; i < PATH_MAX + 14; i += 2)
		memcpy(longpath + i, "a/", 2);
	longpath[PATH_MAX + 14] = '\0';
	CHECK_ERR(stat(longpath, &st), ENAMETOOLONG);
	free(longpath);
}

/* ------------------------------------------------------------------------ */
/* Driver                                                                   */
/* ------------------------------------------------------------------------ */

struct tcase {
	const char *name;
	void (*fn)(void);
};

#define CASE(n)           \
	{                 \
#n, t_##n \
	}
static const struct tcase cases[] = {
    CASE(open_creat_mode),
    CASE(open_excl),
    CASE(open_trunc),
    CASE(open_append),
    CASE(open_enoent),
    CASE(open_enotdir),
    CASE(open_eisdir),
    CASE(open_directory),
    CASE(rw_offsets),
    CASE(rw_ebadf),
    CASE(rw_pwrite_hole),
    CASE(rw_sparse),
    CASE(rw_beyond_4g),
    CASE(rw_times),
    CASE(rw_read_eof),
    CASE(rw_large),
    CASE(trunc_shrink),
    CASE(trunc_grow),
    CASE(trunc_shrink_grow),
    CASE(trunc_times),
    CASE(trunc_same_size),
    CASE(trunc_errors),
    CASE(fallocate),
    CASE(rename_file_over_file),
    CASE(rename_dir_over_empty_dir),
    CASE(rename_dir_over_nonempty),
    CASE(rename_type_mismatch),
    CASE(rename_self),
    CASE(rename_into_subdir),
    CASE(rename_errors),
    CASE(rename_noreplace),
    CASE(rename_exchange),
    CASE(rename_times),
    CASE(rename_dir_nlink),
    CASE(link_nlink),
    CASE(link_errors),
    CASE(link_symlink),
    CASE(symlink_basic),
    CASE(symlink_long),
    CASE(symlink_dangling),
    CASE(symlink_readlink_einval),
    CASE(unlink_errors),
    CASE(unlink_times),
    CASE(unlink_open_file),
    CASE(mkdir_basic),
    CASE(mkdir_eexist),
    CASE(rmdir_basic),
    CASE(rmdir_errors),
    CASE(readdir_entries),
    CASE(readdir_stability),
    CASE(readdir_stability_small_buf),
    CASE(readdir_seek),
    CASE(chmod_bits),
    CASE(chown_ids),
    CASE(fchown_lchown),
    CASE(utimens_explicit),
    CASE(utimens_now),
    CASE(utimens_omit),
    CASE(futimens),
    CASE(utimens_nofollow),
    CASE(permissions),
    CASE(xattr_basic),
    CASE(xattr_flags),
    CASE(xattr_sizes),
    CASE(xattr_dir),
    CASE(xattr_symlink),
    CASE(flock),
    CASE(fcntl_lock),
    CASE(fcntl_lock_wait),
    CASE(fcntl_lock_close),
    CASE(mmap_shared_write),
    CASE(mmap_read_after_write),
    CASE(mmap_coherence),
    CASE(mmap_page_boundary),
    CASE(mmap_16mib),
    CASE(mkfifo),
    CASE(mknod),
    CASE(statvfs),
    CASE(fsync),
    CASE(lseek),
    CASE(stat_hardlinks),
    CASE(name_max),
};

/* A case that hangs (say, a stuck FUSE request) is reported by name. */
#define CASE_TIMEOUT 300

static void on_alarm(int sig)
{
	(void)sig;
	static const char msg[] = "TIMEOUT in case ";
	ssize_t r = write(STDOUT_FILENO, msg, sizeof msg - 1);
	r = write(STDOUT_FILENO, g_case, strlen(g_case));
	r = write(STDOUT_FILENO, "\n", 1);
	(void)r;
	_exit(1);
}

static int g_rm_errors;

static int rm_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb, (void)type, (void)ftw;
	if (remove(path) != 0) {
		printf("  cleanup: remove %s: %s\n", path, strerror(errno));
		g_rm_errors++;
	}
	return 0;
}

static int rm_tree(const char *path)
{
	g_rm_errors = 0;
	if (nftw(path, rm_cb, 32, FTW_DEPTH | FTW_PHYS) != 0) {
		printf("  cleanup: nftw %s: %s\n", path, strerror(errno));
		return -1;
	}
	return g_rm_errors ? -1 : 0;
}

/* mkdir -p; returns 0 if path is (now) a directory. */
static int mkdir_p(const char *path)
{
	char buf[PATH_MAX];
	if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, 0755) != 0 && errno != EEXIST)
		return -1;
	return 0;
}

static double elapsed(struct timespec t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
}

static void usage(const char *argv0)
{
	fprintf(stderr, "usage: %s [-v] [-k NAME] DIR\n", argv0);
}

int main(int argc, char **argv)
{
	const char *filter = NULL;
	int opt;
	while ((opt = getopt(argc, argv, "vk:h")) != -1) {
		switch (opt) {
		case 'v':
			g_verbose = 1;
			break;
		case 'k':
			filter = optarg;
			break;
		default:
			usage(argv[0]);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(argv[0]);
		return 2;
	}
	const char *dir = argv[optind];

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, on_alarm);
	umask(0);
	g_pagesize = sysconf(_SC_PAGESIZE);
	if (geteuid() != 0)
		printf("warning: not running as root; ownership, mknod and permission cases will "
		       "fail or skip\n");

	struct stat st;
	int created_dir = 0;
	if (stat(dir, &st) != 0) {
		if (mkdir_p(dir) != 0) {
			fprintf(stderr, "posix_suite: cannot create %s: %s\n", dir, strerror(errno));
			return 2;
		}
		created_dir = 1;
	}
	char base[PATH_MAX];
	snprintf(base, sizeof base, "%s/posix_suite.%ld", dir, (long)getpid());
	if (mkdir(base, 0755) != 0) {
		fprintf(stderr, "posix_suite: mkdir %s: %s\n", base, strerror(errno));
		return 2;
	}
	int orig_fd = open(".", O_RDONLY | O_DIRECTORY);
	int base_fd = open(base, O_RDONLY | O_DIRECTORY);
	if (orig_fd < 0 || base_fd < 0 || fchdir(base_fd) != 0) {
		fprintf(stderr, "posix_suite: cannot enter %s: %s\n", base, strerror(errno));
		return 2;
	}

	/* descriptors open now stay open; anything a case leaks is closed after it */
	enum { MAXFD = 1024 };
	static char keep_fd[MAXFD];
	for (int fd = 0; fd < MAXFD; fd++)
		keep_fd[fd] = fcntl(fd, F_GETFD) != -1;

	int npass = 0, nfail = 0, nskip = 0;
	struct timespec t_all;
	clock_gettime(CLOCK_MONOTONIC, &t_all);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct tcase *c = &cases[i];
		if (filter && !strstr(c->name, filter))
			continue;
		g_case = c->name;
		g_failed = 0;
		g_skipped = 0;
		if (g_verbose)
			printf("RUN  %s\n", c->name);
		struct timespec t0;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (mkdir(c->name, 0755) != 0 || chdir(c->name) != 0) {
			fail_at(__FILE__, __LINE__, "mkdir/chdir into the case directory", errno);
		} else {
			umask(0);
			alarm(CASE_TIMEOUT);
			c->fn();
			alarm(0);
		}
		fflush(stdout);
		umask(0);
		if (fchdir(base_fd) != 0) {
			fprintf(stderr, "posix_suite: cannot return to %s: %s\n", base, strerror(errno));
			return 2;
		}
		for (int fd = 0; fd < MAXFD; fd++)
			if (!keep_fd[fd] && fd != base_fd && fd != orig_fd)
				close(fd);
		if (rm_tree(c->name) != 0) {
			printf("  [%s] cleanup of the case directory failed\n", c->name);
			g_failed = 1;
		}
		if (g_failed) {
			printf("FAIL %s\n", c->name);
			nfail++;
		} else if (g_skipped) {
			printf("SKIP %s\n", c->name);
			nskip++;
		} else {
			npass++;
			if (g_verbose)
				printf("ok   %s (%.2fs)\n", c->name, elapsed(t0));
		}
	}
	g_case = "-";

	if (fchdir(orig_fd) != 0)
		fprintf(stderr, "posix_suite: cannot return to the starting directory\n");
	close(base_fd);
	close(orig_fd);
	if (rm_tree(base) != 0) {
		printf("cleanup of %s failed\n", base);
		nfail++;
	}
	if (created_dir)
		rmdir(dir);

	if (npass + nfail + nskip == 0) {
		printf("no case matches \"%s\"\n", filter ? filter : "");
		return 2;
	}
	if (g_verbose)
		printf("total %.1fs\n", elapsed(t_all));
	if (nskip)
		printf("%d passed, %d failed, %d skipped\n", npass, nfail, nskip);
	else
		printf("%d passed, %d failed\n", npass, nfail);
	return nfail ? 1 : 0;
}
