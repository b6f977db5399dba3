/*
 * renameat2 [-n|-x|-w] OLD NEW
 *
 * Call renameat2(2) with RENAME_NOREPLACE (-n), RENAME_EXCHANGE (-x),
 * RENAME_WHITEOUT (-w) or no flag.  Prints nothing on success; on error
 * prints "renameat2: <strerror>" and exits 1.  Used because Debian 12's
 * mv has no --exchange and mv adds its own checks we do not want to test.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/fs.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#define RENAME_EXCHANGE (1 << 1)
#define RENAME_WHITEOUT (1 << 2)
#endif

int main(int argc, char **argv)
{
	unsigned int flags = 0;
	int c;

	while ((c = getopt(argc, argv, "nxw")) != -1) {
		switch (c) {
		case 'n': flags |= RENAME_NOREPLACE; break;
		case 'x': flags |= RENAME_EXCHANGE; break;
		case 'w': flags |= RENAME_WHITEOUT; break;
		default: goto usage;
		}
	}
	if (argc - optind != 2)
		goto usage;
	/* raw syscall: works with any glibc */
	if (syscall(SYS_renameat2, AT_FDCWD, argv[optind], AT_FDCWD,
		    argv[optind + 1], flags) < 0) {
		printf("renameat2: %s\n", strerror(errno));
		return 1;
	}
	return 0;
usage:
	fprintf(stderr, "usage: renameat2 [-n|-x|-w] old new\n");
	return 2;
}
