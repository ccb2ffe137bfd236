/*
 * log.h - leveled logging for the daemon, the CLI and the tests.
 *
 * Calling sequence: rfs_log_open() once (optional: without it messages go to stderr),
 * then RFS_LOG(level, fmt, ...) anywhere, from any thread. rfs_log_close() at exit.
 * The macro checks the level before formatting, so debug lines cost nothing when off.
 *
 * Levels are syslog's (LOG_ERR .. LOG_DEBUG). Sinks: a log file (append, one line per
 * message with a timestamp), stderr, and syslog when the daemon has detached.
 */
#ifndef RFS_LOG_H
#define RFS_LOG_H

#include <syslog.h>

extern int rfs_log_level;

/* path: log file to append to (NULL: none). to_stderr: also echo to stderr.
 * to_syslog: also send to syslog (when daemonized). Returns 0 or -errno. */
int rfs_log_open(const char *path, int to_stderr, int to_syslog);
void rfs_log_close(void);
void rfs_log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define RFS_LOG(level, ...)                                  \
	do {                                                 \
		if ((level) <= rfs_log_level)                \
			rfs_log_write((level), __VA_ARGS__); \
	} while (0)

#endif
