/*
 * faults_shim.c - an LD_PRELOAD library for test_staging_faults.sh: makes I/O on the staging
 * arenas (CACHE/staging/arena.*) fail while a trigger file exists in $ROAMFS_FAULTS_DIR:
 *   arena-write-fail   pwrite/pwritev return ENOSPC
 *   arena-read-fail    pread returns EIO
 *   arena-no-punch     fallocate returns EOPNOTSUPP (a file system without hole punching)
 *   arena-torn-kill    a write of more than 8 KiB lands only its first 4 KiB, then the
 *                      process gets SIGKILL (a daemon killed in the middle of a write)
 *   cache-read-fail    pread and splice of block files of the SSD cache (CACHE/blocks/...)
 *                      return EIO (a failing cache disk)
 * While a file "match" exists there, only files whose path contains its first line are
 * affected (e.g. "arena.1", or the cache dir for cache-read-fail).
 * Build: cc -shared -fPIC -o faults_shim.so faults_shim.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

static int fd_path_has(int fd, const char *what, const char *match)
{
	char link[64], target[4096];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return 0;
	target[n] = 0;
	return strstr(target, what) != NULL && (!match[0] || strstr(target, match));
}

static int is_arena(int fd, const char *match)
{
	return fd_path_has(fd, "/staging/arena.", match);
}

static int armed(int fd, const char *what)
{
	const char *dir = getenv("ROAMFS_FAULTS_DIR");
	if (!dir)
		return 0;
	char path[4096], match[256] = "";
	snprintf(path, sizeof(path), "%s/%s", dir, what);
	if (access(path, F_OK) != 0)
		return 0;
	snprintf(path, sizeof(path), "%s/match", dir);
	FILE *f = fopen(path, "re");
	if (f) {
		if (fgets(match, sizeof(match), f))
			match[strcspn(match, "\n")] = 0;
		fclose(f);
	}
	if (!strncmp(what, "cache-", 6))
		return fd_path_has(fd, "/blocks/", match);
	return is_arena(fd, match);
}

#define REAL(name)                            \
	static __typeof__(name) *real_##name; \
	if (!real_##name)                     \
	real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

static ssize_t torn(int fd, const void *buf, size_t len, off_t off)
{
	REAL(pwrite);
	real_pwrite(fd, buf, 4096, off);
	kill(getpid(), SIGKILL);
	(void)len;
	return -1;
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off)
{
	REAL(pwrite);
	if (armed(fd, "arena-write-fail")) {
		errno = ENOSPC;
		return -1;
	}
	if (len > 8192 && armed(fd, "arena-torn-kill"))
		return torn(fd, buf, len, off);
	return real_pwrite(fd, buf, len, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off_t off)
{
	return pwrite(fd, buf, len, off);
}

ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
	REAL(pwritev);
	if (armed(fd, "arena-write-fail")) {
		errno = ENOSPC;
		return -1;
	}
	size_t total = 0;
	for (int i = 0; i < n; i++)
		total += iov[i].iov_len;
	if (total > 8192 && armed(fd, "arena-torn-kill")) {
		/* the first 4 KiB of the concatenation */
		char first[4096];
		size_t got = 0;
		for (int i = 0; i < n && got < sizeof(first); i++) {
			size_t c = iov[i].iov_len < sizeof(first) - got ? iov[i].iov_len : sizeof(first) - got;
			memcpy(first + got, iov[i].iov_base, c);
			got += c;
		}
		return torn(fd, first, total, off);
	}
	return real_pwritev(fd, iov, n, off);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int n, off_t off)
{
	return pwritev(fd, iov, n, off);
}

ssize_t pread(int fd, void *buf, size_t len, off_t off)
{
	REAL(pread);
	if (armed(fd, "arena-read-fail") || armed(fd, "cache-read-fail")) {
		errno = EIO;
		return -1;
	}
	return real_pread(fd, buf, len, off);
}

ssize_t pread64(int fd, void *buf, size_t len, off_t off)
{
	return pread(fd, buf, len, off);
}

int fallocate(int fd, int mode, off_t off, off_t len)
{
	REAL(fallocate);
	if (armed(fd, "arena-no-punch")) {
		errno = EOPNOTSUPP;
		return -1;
	}
	return real_fallocate(fd, mode, off, len);
}

int fallocate64(int fd, int mode, off_t off, off_t len)
{
	return fallocate(fd, mode, off, len);
}

ssize_t splice(int fd_in, loff_t *off_in, int fd_out, loff_t *off_out, size_t len, unsigned int flags)
{
	REAL(splice);
	if (armed(fd_in, "cache-read-fail")) {
		errno = EIO;
		return -1;
	}
	return real_splice(fd_in, off_in, fd_out, off_out, len, flags);
}
