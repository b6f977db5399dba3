/*
 * utimensat [-h] PATH ATIME MTIME
 *
 * Set timestamps with utimensat(2).  ATIME and MTIME are each "now"
 * (UTIME_NOW), "omit" (UTIME_OMIT) or SECONDS[.NANOSECONDS] (seconds may
 * be negative).  -h: do not follow a final symlink (AT_SYMLINK_NOFOLLOW).
 * Prints "utimensat: <strerror>" and exits 1 on error.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

static int parse(const char *s, struct timespec *ts)
{
	char *end;

	if (!strcmp(s, "now")) {
		ts->tv_sec = 0;
		ts->tv_nsec = UTIME_NOW;
		return 0;
	}
	if (!strcmp(s, "omit")) {
		ts->tv_sec = 0;
		ts->tv_nsec = UTIME_OMIT;
		return 0;
	}
	ts->tv_sec = strtoll(s, &end, 10);
	ts->tv_nsec = 0;
	if (*end == '.') {
		/* fraction, right padded to 9 digits */
		char buf[10] = "000000000";
		size_t n = strlen(end + 1);

		if (n > 9)
			return -1;
		memcpy(buf, end + 1, n);
		ts->tv_nsec = strtol(buf, NULL, 10);
	} else if (*end) {
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct timespec ts[2];
	int flags = 0, c;

	while ((c = getopt(argc, argv, "h")) != -1) {
		if (c == 'h')
			flags |= AT_SYMLINK_NOFOLLOW;
		else
			goto usage;
	}
	if (argc - optind != 3 || parse(argv[optind + 1], &ts[0]) ||
	    parse(argv[optind + 2], &ts[1]))
		goto usage;
	if (utimensat(AT_FDCWD, argv[optind], ts, flags) < 0) {
		printf("utimensat: %s\n", strerror(errno));
		return 1;
	}
	return 0;
usage:
	fprintf(stderr, "usage: utimensat [-h] path atime|now|omit mtime|now|omit\n");
	return 2;
}
