#include "fs/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int rfs_log_level = LOG_INFO;

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_file;     /* protected by log_lock */
static int log_stderr = 1; /* protected by log_lock */
static int log_syslog;     /* protected by log_lock */

int rfs_log_open(const char *path, int to_stderr, int to_syslog)
{
	int rc = 0;
	pthread_mutex_lock(&log_lock);
	if (path) {
		FILE *f = fopen(path, "ae");
		if (!f) {
			rc = -errno;
		} else {
			setvbuf(f, NULL, _IOLBF, 0);
			if (log_file)
				fclose(log_file);
			log_file = f;
		}
	}
	log_stderr = to_stderr;
	log_syslog = to_syslog;
	if (to_syslog)
		openlog("roamfs", LOG_PID, LOG_DAEMON);
	pthread_mutex_unlock(&log_lock);
	return rc;
}

void rfs_log_close(void)
{
	pthread_mutex_lock(&log_lock);
	if (log_file)
		fclose(log_file);
	log_file = NULL;
	if (log_syslog)
		closelog();
	log_syslog = 0;
	pthread_mutex_unlock(&log_lock);
}

static const char *level_name(int level)
{
	switch (level) {
	case LOG_EMERG:
	case LOG_ALERT:
	case LOG_CRIT:
	case LOG_ERR:
		return "error";
	case LOG_WARNING:
		return "warning";
	case LOG_NOTICE:
	case LOG_INFO:
		return "info";
	default:
		return "debug";
	}
}

void rfs_log_write(int level, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	struct timespec ts;
	struct tm tm;
	char stamp[32];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);

	pthread_mutex_lock(&log_lock);
	if (log_file)
		fprintf(log_file, "%s.%03ldZ %s: %s\n", stamp, ts.tv_nsec / 1000000, level_name(level), msg);
	if (log_stderr)
		fprintf(stderr, "roamfs: %s: %s\n", level_name(level), msg);
	if (log_syslog)
		syslog(level, "%s", msg);
	pthread_mutex_unlock(&log_lock);
}
